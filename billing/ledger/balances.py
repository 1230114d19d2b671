"""Balances: the one split, the one bulk lock, and booking money received as payment balances (SPEC §3).

Callers hold the row locks (billing.ledger.locks) of what they change; these helpers write in the caller's
transaction and keep the books' sign and invoice rules.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.constants import BalanceStatus, BalanceType, InvoiceKind, InvoiceStatus
from billing.ledger import locks, sql
from billing.ledger.base import BillingError, checked_amount, checked_currency
from billing.ledger.invoices import recompute_invoice_status
from billing.models import Account, Balance, Invoice
from billing.money import format_amount


def split_balance(balance: Balance, *, part_amount: Decimal, part_lock_reason: str = "", allow_locked: bool = False,
                  **part_fields) -> tuple[Balance, Balance]:
    """Split `part_amount` (the balance's sign) off into a new row; the original keeps the rest. The caller holds the
    balance's row lock.

    Both rows keep the invoice link, type, status, dates and lock; the part may be locked with `part_lock_reason`
    (a refunded part) or get other `part_fields` (an invoice link of its own). Locked balances are split only by
    assignment of locked refund balances (`allow_locked`).
    """
    if balance.locked and not allow_locked:
        raise BillingError(f"This balance is locked ({balance.lock_reason}) and cannot be split.")
    part_amount = checked_amount(part_amount, balance.currency)
    if part_amount == 0 or (part_amount > 0) != (balance.amount > 0) or abs(part_amount) >= abs(balance.amount):
        raise BillingError(
            f"A split part must have the balance's sign and be smaller than {format_amount(abs(balance.amount), balance.currency)}."
        )
    original = sql.set_amount_returning(balance.pk, balance.amount - part_amount)
    fields = {
        "account_id": original.account_id, "invoice_id": original.invoice_id, "type": original.type, "amount": part_amount,
        "currency": original.currency, "date": original.date, "transaction_number": original.transaction_number,
        "provider_setting_id": original.provider_setting_id, "locked": original.locked, "lock_reason": original.lock_reason,
        "split_from": original, "refunds_balance_id": original.refunds_balance_id, "stripe_refund_id": original.stripe_refund_id,
        "is_overrefund": original.is_overrefund, "status": original.status, "dispute_id": original.dispute_id,
        "adjusts_balance_id": original.adjusts_balance_id, "note": original.note,
    }
    if part_lock_reason:
        fields.update(locked=True, lock_reason=part_lock_reason)
    fields.update(part_fields)
    return original, sql.insert(Balance(**fields))


def lock_balances(balance_ids: list[int], *, reason: str) -> int:
    """Lock the unlocked ones of these balances with `reason` (the caller holds their row locks)."""
    if not reason:
        raise BillingError("Locking a balance needs a reason.")
    return sql.lock_with_reason(balance_ids, reason)


def unlock_balances(balance_ids: list[int], *, reason: str) -> int:
    """Unlock those of these balances that `reason` locked (a dispute won unlocks `Disputed`, SPEC §11 invariant 3)."""
    return Balance.objects.filter(id__in=balance_ids, locked=True, lock_reason=reason).update(locked=False, lock_reason="")


def insert_balance(**fields) -> Balance:
    """One new balance row as given (the caller holds the invoice's lock and recomputes its status)."""
    return sql.insert(Balance(**fields))


@transaction.atomic
def create_balance(*, account: Account, type: str, amount: Decimal, currency: str, date: datetime | None = None,
                   invoice: Invoice | None = None, transaction_number: str = "", provider_setting=None,
                   status: str = BalanceStatus.CONFIRMED, note: str = "") -> Balance:
    """Create one balance by hand (an adjustment, a payment received outside Stripe) and recompute its invoice.
    Signs: payment < 0, refund > 0."""
    currency = checked_currency(currency)
    amount = checked_amount(amount, currency)
    if amount == 0:
        raise BillingError("A balance needs an amount other than zero.")
    if type == BalanceType.PAYMENT and amount > 0:
        raise BillingError("A payment balance is negative (money received).")
    if type == BalanceType.REFUND and amount < 0:
        raise BillingError("A refund balance is positive (money paid back).")
    if invoice is not None:
        invoice = locks.lock_invoices([invoice.pk])[invoice.pk]
        check_same_account_and_currency(invoice, account.pk, currency)
    balance = insert_balance(account=account, invoice=invoice, type=type, amount=amount, currency=currency,
                             date=date or timezone.now(), transaction_number=transaction_number,
                             provider_setting=provider_setting, status=status, note=note)
    if invoice is not None:
        recompute_invoice_status(invoice)
    return balance


def check_same_account_and_currency(invoice: Invoice, account_id: int, currency: str) -> None:
    if invoice.account_id != account_id:
        raise BillingError(f"{invoice.number} belongs to another account.")
    if invoice.currency != currency:
        raise BillingError(f"{invoice.number} is in {invoice.currency}, not {currency}.")


def takes_payments(invoice: Invoice) -> bool:
    return invoice.kind == InvoiceKind.INVOICE and invoice.status in (InvoiceStatus.OPEN, InvoiceStatus.PAID)


@transaction.atomic
def book_payment(*, account: Account, invoice: Invoice | None, amount: Decimal, currency: str, date: datetime,
                 transaction_number: str = "", provider_setting=None, status: str = BalanceStatus.CONFIRMED) -> list[Balance]:
    """Book money received outside the webhook path (a payment recorded by hand, demo and test data): the invoice is
    locked here; see book_payment_locked."""
    if invoice is not None:
        invoice = locks.lock_invoices([invoice.pk])[invoice.pk]
    return book_payment_locked(account_id=account.pk, invoice=invoice, amount=amount, currency=currency, date=date,
                               transaction_number=transaction_number,
                               provider_setting_id=provider_setting.pk if provider_setting is not None else None, status=status)


def book_payment_locked(*, account_id: int, invoice: Invoice | None, amount: Decimal, currency: str, date: datetime,
                        transaction_number: str, provider_setting_id: int | None = None, status: str = BalanceStatus.CONFIRMED,
                        open_amount_under_lock: Decimal | None = None) -> list[Balance]:
    """Book money received (`amount` > 0) as payment balance(s), in the caller's transaction, with the invoice (if
    any) row-locked by the caller (locks.lock_invoice_for_payment gives it with its open amount).

    Linked to the invoice up to its open amount; any surplus is split off into an unlinked payment balance, so money
    received is always booked and an open amount never crosses zero (SPEC §3). An invoice that takes no payment
    (draft, cancelled, credit note, already paid) gets nothing linked. No savepoint of its own: an error must abort
    the caller's transaction.
    """
    currency = checked_currency(currency)
    amount = checked_amount(amount, currency)
    if amount <= 0:
        raise BillingError("A payment must be a positive amount of money received.")
    linkable, open_before = Decimal("0"), None
    if invoice is not None:
        check_same_account_and_currency(invoice, account_id, currency)
        if takes_payments(invoice):
            open_before = sql.open_amount(invoice) if open_amount_under_lock is None else open_amount_under_lock
            linkable = max(open_before, Decimal("0"))
    common = {"account_id": account_id, "type": BalanceType.PAYMENT, "currency": currency, "date": date,
              "transaction_number": transaction_number, "provider_setting_id": provider_setting_id, "status": status}
    linked_amount = min(amount, linkable)
    balances = []
    if linked_amount > 0:
        balances.append(insert_balance(invoice=invoice, amount=-linked_amount, **common))
    surplus = amount - linked_amount
    if surplus > 0:
        balances.append(insert_balance(invoice=None, amount=-surplus, split_from=balances[0] if balances else None, **common))
    if invoice is not None:
        # Only the linked part touches the invoice: its open amount is known without summing again.
        recompute_invoice_status(invoice, known_open_amount=None if open_before is None else open_before - linked_amount)
    return balances
