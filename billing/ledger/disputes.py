"""Disputes in the books (SPEC §7): the charge's balances locked while disputed, the money taken back booked where
the charge's money actually is, and exactly that booking reversed when the funds come back.

Where the money is: the charge's unrefunded payment balances — unlinked surplus first, then invoice-linked balances
newest first — each mirrored by a positive `adjustment` balance on the same invoice (or none), so exactly the invoices
that money paid reopen, by exactly that amount; money held in an open entry (unmatched, other currency, foreign
invoice) is withdrawn beside that entry and no invoice changes. Every adjustment carries the dispute id and the
balance it mirrors, so a withdrawal is booked once per dispute and a reversal once per withdrawal (SPEC §11
invariant 6). Called by the payments app under the charge's PaymentTransaction row lock, in its transaction.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from billing.constants import BalanceType, LockReason, PaymentEntryKind, PaymentEntryStatus
from billing.ledger import locks, sql
from billing.ledger.balances import insert_balance, lock_balances, unlock_balances
from billing.ledger.invoices import recompute_invoice_status
from billing.ledger.locks import LockedBooks
from billing.models import Balance, PaymentEntry
from billing.selectors import open_money_entry


def set_disputed_lock(*, setting_id: int, charge_id: str, disputed: bool) -> None:
    """While a dispute of the charge is open (or lost), every unlocked balance of the charge is locked `Disputed`;
    once none is (all won or closed inquiries), those locks are released."""
    books = locks.lock_charge_books(setting_id=setting_id, charge_id=charge_id)
    if disputed:
        lock_balances([balance.pk for balance in books.balances if not balance.locked], reason=LockReason.DISPUTED)
    else:
        unlock_balances([balance.pk for balance in books.balances if balance.lock_reason == LockReason.DISPUTED
                         and balance.type == BalanceType.PAYMENT], reason=LockReason.DISPUTED)


def _net_withdrawn_per_balance(balances: list[Balance]) -> dict[int, Decimal]:
    """Per payment balance, what disputes have taken back from it and not returned."""
    withdrawals = {b.pk: b for b in balances if b.type == BalanceType.ADJUSTMENT and b.dispute_id and b.amount > 0}
    net: dict[int, Decimal] = defaultdict(Decimal)
    for withdrawal in withdrawals.values():
        net[withdrawal.adjusts_balance_id] += withdrawal.amount
    for balance in balances:
        reverses = balance.adjusts_balance_id in withdrawals
        if balance.type == BalanceType.ADJUSTMENT and balance.dispute_id and balance.amount < 0 and reverses:
            net[withdrawals[balance.adjusts_balance_id].adjusts_balance_id] += balance.amount
    return net


def _withdrawable_balances(books: LockedBooks) -> list[tuple[Balance, Decimal]]:
    """The charge's payment balances that still hold its money (not refunded, not an overrefund half), with what each
    still holds: unlinked surplus first, then invoice-linked balances newest first."""
    net = _net_withdrawn_per_balance(books.balances)
    pots = []
    for balance in books.balances:
        if balance.type != BalanceType.PAYMENT or balance.is_overrefund or balance.lock_reason == LockReason.REFUND:
            continue
        holds = -balance.amount - net.get(balance.pk, Decimal("0"))
        if holds > 0:
            pots.append((balance, holds))
    pots.sort(key=lambda pot: (pot[0].invoice_id is not None, -pot[0].date.timestamp(), -pot[0].pk))
    return pots


def _held_in_entry(entry: PaymentEntry) -> Decimal:
    """What an open entry still holds of its charge's money: less refunds and withdrawals kept beside it."""
    movements = entry.movements.filter(status=PaymentEntryStatus.OPEN,
                                       kind__in=[PaymentEntryKind.REFUND_OF_UNBOOKED, PaymentEntryKind.DISPUTE_WITHDRAWAL])
    return -entry.amount - sum((movement.amount for movement in movements), Decimal("0"))


def book_withdrawal(*, setting_id: int, charge_id: str, dispute_id: str, amount: Decimal, currency: str, date: datetime) -> Decimal:
    """Book a dispute's withdrawn funds once per dispute id, never more in total than the charge still holds.
    Returns what was booked."""
    books = locks.lock_charge_books(setting_id=setting_id, charge_id=charge_id)
    if any(b.dispute_id == dispute_id and b.type == BalanceType.ADJUSTMENT and b.amount > 0 for b in books.balances) or \
            PaymentEntry.objects.filter(dispute_id=dispute_id, kind=PaymentEntryKind.DISPUTE_WITHDRAWAL).exists():
        return Decimal("0")  # booked before: once per dispute id
    remaining, touched = amount, set()
    for balance, holds in _withdrawable_balances(books):
        if remaining <= 0:
            break
        take = min(holds, remaining)
        insert_balance(account_id=balance.account_id, invoice_id=balance.invoice_id, type=BalanceType.ADJUSTMENT, amount=take,
                       currency=balance.currency, date=date, transaction_number=charge_id, provider_setting_id=setting_id,
                       dispute_id=dispute_id, adjusts_balance_id=balance.pk, locked=True, lock_reason=LockReason.DISPUTED,
                       note="Dispute: funds withdrawn")
        touched.add(balance.invoice_id)
        remaining -= take
    if remaining > 0:
        held = open_money_entry(charge_id=charge_id)
        if held is not None:
            take = min(_held_in_entry(held), remaining)
            if take > 0:
                PaymentEntry.objects.create(
                    provider="stripe", kind=PaymentEntryKind.DISPUTE_WITHDRAWAL, parent=held, dispute_id=dispute_id,
                    provider_setting_id=setting_id, transaction_number=charge_id, amount=take, currency=held.currency, date=date,
                    account_id=held.account_id, invoice_id=held.invoice_id,
                    last_error="Dispute: funds withdrawn from a payment held in an entry; booked when that entry is resolved.")
                remaining -= take
    _recompute(books, touched)
    return amount - remaining


def book_reinstatement(*, setting_id: int, charge_id: str, dispute_id: str, date: datetime) -> None:
    """Reverse exactly this dispute's withdrawal, once per withdrawn balance. Where the invoice has been paid again
    meanwhile, the reversal becomes unlinked surplus, so an open amount never crosses zero."""
    books = locks.lock_charge_books(setting_id=setting_id, charge_id=charge_id)
    mine = [b for b in books.balances if b.type == BalanceType.ADJUSTMENT and b.dispute_id == dispute_id]
    reversed_ids = {b.adjusts_balance_id for b in mine if b.amount < 0}
    open_now = {invoice_id: sql.open_amount(invoice) for invoice_id, invoice in books.invoices.items()}
    touched = set()
    for withdrawal in sorted((b for b in mine if b.amount > 0 and b.pk not in reversed_ids), key=lambda b: b.pk):
        common = {"account_id": withdrawal.account_id, "type": BalanceType.ADJUSTMENT, "currency": withdrawal.currency, "date": date,
                  "transaction_number": charge_id, "provider_setting_id": setting_id, "dispute_id": dispute_id,
                  "adjusts_balance_id": withdrawal.pk, "locked": True, "lock_reason": LockReason.DISPUTED,
                  "note": "Dispute: funds reinstated"}
        linked = Decimal("0")
        if withdrawal.invoice_id is not None:
            linked = min(withdrawal.amount, max(open_now[withdrawal.invoice_id], Decimal("0")))
            open_now[withdrawal.invoice_id] -= linked
            touched.add(withdrawal.invoice_id)
        first = insert_balance(invoice_id=withdrawal.invoice_id, amount=-linked, **common) if linked > 0 else None
        if withdrawal.amount > linked:
            insert_balance(invoice_id=None, amount=-(withdrawal.amount - linked), split_from=first, **common)
    PaymentEntry.objects.filter(dispute_id=dispute_id, kind=PaymentEntryKind.DISPUTE_WITHDRAWAL, status=PaymentEntryStatus.OPEN)\
        .update(status=PaymentEntryStatus.RESOLVED, last_error="Dispute: funds reinstated.")
    _recompute(books, touched)


def _recompute(books: LockedBooks, invoice_ids: set) -> None:
    for invoice_id in sorted(i for i in invoice_ids if i is not None):
        recompute_invoice_status(books.invoices[invoice_id])


def rebook_withdrawals_of_entry(entry: PaymentEntry, *, booked: list[Balance]) -> None:
    """An entry holding a disputed charge's money was resolved into `booked` payment balances: each open withdrawal
    kept beside it becomes adjustments mirroring those balances (the invoices they pay reopen by that amount)."""
    for movement in entry.movements.filter(kind=PaymentEntryKind.DISPUTE_WITHDRAWAL, status=PaymentEntryStatus.OPEN).order_by("id"):
        remaining, first, touched = movement.amount, None, set()
        for balance in sorted(booked, key=lambda b: (b.invoice_id is not None, -b.pk)):
            if remaining <= 0:
                break
            take = min(-balance.amount, remaining)
            adjustment = insert_balance(
                account_id=balance.account_id, invoice_id=balance.invoice_id, type=BalanceType.ADJUSTMENT, amount=take,
                currency=balance.currency, date=movement.date, transaction_number=entry.transaction_number,
                provider_setting_id=entry.provider_setting_id, dispute_id=movement.dispute_id, adjusts_balance_id=balance.pk,
                locked=True, lock_reason=LockReason.DISPUTED, note="Dispute: funds withdrawn")
            first = first or adjustment
            touched.add(balance.invoice_id)
            remaining -= take
        movement.status, movement.resolved_balance = PaymentEntryStatus.RESOLVED, first
        movement.save(update_fields=["status", "resolved_balance"])
        for invoice_id in sorted(i for i in touched if i is not None):
            recompute_invoice_status(locks.lock_invoices([invoice_id])[invoice_id])
