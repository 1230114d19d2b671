"""Refunds in the books (SPEC §8): a refund plan applied as splits, locks and refund balances; a refund of money
held in an entry kept beside that entry; a failed refund as one entry.

The refunds app computes the plan (a pure function of the available balances) and asks the ledger to apply it, in
its transaction, with the charge's PaymentTransaction row locked first. Every function here writes in the caller's
transaction without a savepoint of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from billing.constants import BalanceStatus, BalanceType, LockReason, PaymentEntryKind, PaymentEntryStatus
from billing.ledger import locks, sql
from billing.ledger.balances import insert_balance, lock_balances, split_balance
from billing.models import Balance, PaymentEntry
from billing.selectors import open_money_entry

# planner(available balances as (id, amount, invoice id), oldest first) -> a plan with `.steps` (each with
# `.balance.pk`, `.balance.amount`, `.refund_amount`, `.splits`) and `.overrefund` (refunds.selectors.refund_plan).
Planner = Callable[[list[tuple[int, Decimal, int | None]]], object]


@dataclass
class RefundBooking:
    refund_ids: list[int] = field(default_factory=list)  # the refund balances written
    payment_ids: list[int] = field(default_factory=list)  # the payment balances (or split-off parts) they refund
    entry: PaymentEntry | None = None  # where the refund is kept when the charge's money is held in an entry


def book_refund(*, setting_id: int, charge_id: str, amount: Decimal, currency: str, date: datetime, stripe_refund_id: str,
                planner: Planner, fallback_account: Callable[[], int | None] = lambda: None) -> RefundBooking:
    """Book one Stripe refund of a charge, once (the caller guards "once" under the charge's lock).

    The plan takes the charge's available payment balances (SPEC §8 rules 1-6: split the last, lock, overrefund the
    rest with a locked payment/refund pair on the account the charge's money is on, else `fallback_account()`). When
    the charge's money is held in an open entry (unmatched, other currency, foreign invoice), nothing is booked as
    balances: the refund is kept as a movement of that entry and booked when finance resolves it, so a resolution never
    credits money already refunded. A refund of money the books never held on any account is an entry of its own.
    """
    available = locks.lock_available_payments(setting_id=setting_id, charge_id=charge_id)
    if not available:
        held = open_money_entry(charge_id=charge_id)
        if held is not None:
            return RefundBooking(entry=_keep_beside_entry(held, amount=amount, currency=currency, date=date, refund_id=stripe_refund_id))
    plan = planner(available)
    refunded_ids: list[int] = []  # payment balances (whole, or the split-off part) that the refund covers
    whole_ids: list[int] = []  # those of them that must still be locked
    for step in plan.steps:
        if step.splits:
            row = Balance(pk=step.balance.pk, amount=step.balance.amount, currency=currency)  # locked above, unlocked
            _rest, part = split_balance(row, part_amount=-step.refund_amount, part_lock_reason=LockReason.REFUND)
            refunded_ids.append(part.pk)
        else:
            refunded_ids.append(step.balance.pk)
            whole_ids.append(step.balance.pk)
    lock_balances(whole_ids, reason=LockReason.REFUND)
    if plan.overrefund:
        account_id = _account_of_charge(setting_id, charge_id) or fallback_account()
        if account_id is None:
            entry = _keep_beside_entry(None, amount=plan.overrefund, currency=currency, date=date, refund_id=stripe_refund_id,
                                       charge_id=charge_id, setting_id=setting_id)
            return RefundBooking(payment_ids=sorted(refunded_ids), entry=entry,
                                 refund_ids=_refund_balances(refunded_ids, date, charge_id, setting_id, stripe_refund_id))
        refunded_ids.append(insert_balance(
            account_id=account_id, invoice=None, type=BalanceType.PAYMENT, amount=-plan.overrefund, currency=currency, date=date,
            transaction_number=charge_id, provider_setting_id=setting_id, is_overrefund=True, locked=True,
            lock_reason=LockReason.REFUND, status=BalanceStatus.CONFIRMED).pk)
    return RefundBooking(refund_ids=_refund_balances(refunded_ids, date, charge_id, setting_id, stripe_refund_id),
                         payment_ids=sorted(refunded_ids))


def _refund_balances(payment_ids: list[int], date, charge_id: str, setting_id: int, refund_id: str) -> list[int]:
    return sql.insert_refund_balances(payment_ids, date=date, charge_id=charge_id, setting_id=setting_id, refund_id=refund_id,
                                      now=timezone.now())


def _account_of_charge(setting_id: int, charge_id: str) -> int | None:
    """The account the charge's money was booked on (the overrefund half goes there)."""
    return (Balance.objects.filter(provider_setting_id=setting_id, transaction_number=charge_id, type=BalanceType.PAYMENT)
            .values_list("account_id", flat=True).first())


def _keep_beside_entry(held: PaymentEntry | None, *, amount: Decimal, currency: str, date, refund_id: str, charge_id: str = "",
                       setting_id: int | None = None) -> PaymentEntry:
    """A refund of money held in `held` (or of money on no account at all when None): one entry per refund id."""
    if held is not None:
        locks.lock_entries([held.pk])
        charge_id, setting_id = held.transaction_number, held.provider_setting_id
    error = ("Refund of a payment held in an entry: booked when that entry is resolved." if held is not None
             else "Refund of a payment that is not booked on any account.")
    entry, _ = PaymentEntry.objects.get_or_create(
        stripe_refund_id=refund_id, kind=PaymentEntryKind.REFUND_OF_UNBOOKED,
        defaults={"provider": "stripe", "parent": held, "provider_setting_id": setting_id, "transaction_number": charge_id,
                  "amount": amount, "currency": currency, "date": date, "last_error": error,
                  "account_id": held.account_id if held else None, "invoice_id": held.invoice_id if held else None},
    )
    return entry


def record_failed_refund(*, setting_id: int, charge_id: str, stripe_refund_id: str, amount: Decimal, currency: str, date,
                         reason: str, raw: dict, account_id: int | None, invoice_id: int | None) -> PaymentEntry:
    """SPEC §7: one PaymentEntry per failed refund id (amount = -refund amount: the money came back); the refund's
    balances stay locked. Finance decides (refund again, or credit the customer)."""
    entry, _ = PaymentEntry.objects.get_or_create(
        stripe_refund_id=stripe_refund_id, kind=PaymentEntryKind.REFUND_FAILED,
        defaults={"provider": "stripe", "provider_setting_id": setting_id, "transaction_number": charge_id, "amount": -amount,
                  "currency": currency, "date": date, "last_error": f"Refund failed: {reason}", "raw": raw,
                  "account_id": account_id, "invoice_id": invoice_id},
    )
    return entry


def refund_balances_of(stripe_refund_id: str) -> Sequence[Balance]:
    return list(Balance.objects.filter(stripe_refund_id=stripe_refund_id, type=BalanceType.REFUND).order_by("id"))


def open_refund_movements(parent: PaymentEntry) -> list[PaymentEntry]:
    return list(parent.movements.filter(kind=PaymentEntryKind.REFUND_OF_UNBOOKED, status=PaymentEntryStatus.OPEN).order_by("id"))
