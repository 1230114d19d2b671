"""Payment entries: money that could not be booked automatically, resolved by finance (SPEC §4, §7).

Resolving an entry of money received books it as payment balances with the charge's transaction number — pending
while the charge's SEPA debit is still in flight — and then books what happened to that money meanwhile (refunds,
a dispute's withdrawal), which was kept beside the entry until now. Other entries (a failed refund, a refund of money
on no account) are closed by hand with a note.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from billing.audit import record_audit
from billing.constants import MONEY_RECEIVED_KINDS, AuditAction, PaymentEntryStatus
from billing.ledger import hooks, locks
from billing.ledger.balances import book_payment_locked, takes_payments
from billing.ledger.base import BillingError
from billing.ledger.disputes import rebook_withdrawals_of_entry
from billing.ledger.refunds import book_refund, open_refund_movements
from billing.models import Account, Balance, Invoice, PaymentEntry
from billing.money import format_amount


@transaction.atomic
def resolve_payment_entry(entry: PaymentEntry, *, invoice: Invoice | None = None, account: Account | None = None,
                          user=None) -> Balance:
    """Turn an open entry of money received into payment balances on `invoice` (or the entry's invoice) when that
    invoice matches it, else unassigned on `account` (or the entry's account). Returns the first payment balance."""
    target = invoice or entry.invoice
    movements = list(entry.movements.values_list("id", flat=True))
    hooks.lock_charge(entry.transaction_number)  # first in the lock order: no event of the charge runs meanwhile
    books = locks.lock_books(invoices=[target.pk] if target else [], entries=[entry.pk, *movements])
    entry = next(row for row in books.entries if row.pk == entry.pk)
    target = books.invoices.get(target.pk) if target else None
    if entry.status != PaymentEntryStatus.OPEN:
        raise BillingError("This payment entry is already resolved.")
    if entry.kind not in MONEY_RECEIVED_KINDS or entry.parent_id is not None or entry.amount >= 0:
        raise BillingError("Only entries of money received can become a payment balance; close this one by hand.")
    if entry.currency == "XXX":
        raise BillingError("This entry's currency is unknown to the books; it cannot become a balance.")
    account = account or (target.account if target else entry.account)
    if account is None:
        raise BillingError("Choose the account (or invoice) the payment belongs to.")
    if target is not None:
        if target.account_id != account.pk:
            raise BillingError(f"{target.number} belongs to another account.")
        if not hooks.serves_invoice(entry.provider_setting_id, target):
            raise BillingError(f"This payment's Stripe setting does not serve {target.number}'s business entity; "
                               "book it on the account instead.")
        if target.currency != entry.currency or not takes_payments(target):
            target = None  # booked unassigned on the account (another currency; a document that takes no payment)
    booked = book_payment_locked(account_id=account.pk, invoice=target, amount=-entry.amount, currency=entry.currency,
                          date=entry.date or timezone.now(), transaction_number=entry.transaction_number,
                          provider_setting_id=entry.provider_setting_id, status=entry.payment_status)
    entry.status, entry.resolved_at, entry.resolved_balance = PaymentEntryStatus.RESOLVED, timezone.now(), booked[0]
    entry.save(update_fields=["status", "resolved_at", "resolved_balance"])
    _book_refunds_kept_beside(entry)
    rebook_withdrawals_of_entry(entry, booked=list(Balance.objects.filter(pk__in=[b.pk for b in booked])))
    where = f"on {target.number}" if target else f"unassigned on {account}"
    record_audit(AuditAction.ENTRY_RESOLVED, obj=entry, user=user, invoice=target, balance=booked[0], before=entry.amount,
                 after=booked[0].amount, currency=entry.currency, label=f"Payment entry {entry.transaction_number}",
                 detail=f"Booked as a payment balance of {format_amount(abs(entry.amount), entry.currency)} {where}.")
    return booked[0]


def _book_refunds_kept_beside(entry: PaymentEntry) -> None:
    for movement in open_refund_movements(entry):
        booking = book_refund(setting_id=entry.provider_setting_id, charge_id=entry.transaction_number, amount=movement.amount,
                              currency=movement.currency, date=movement.date or timezone.now(),
                              stripe_refund_id=movement.stripe_refund_id,
                              planner=lambda rows, amount=movement.amount: hooks.refund_planner()(
                                  rows, amount=amount, currency=entry.currency, first_balance_id=None),
                              fallback_account=lambda: entry.account_id)
        movement.status, movement.resolved_at = PaymentEntryStatus.RESOLVED, timezone.now()
        movement.resolved_balance_id = booking.refund_ids[0] if booking.refund_ids else None
        movement.save(update_fields=["status", "resolved_at", "resolved_balance"])


@transaction.atomic
def close_entry(entry: PaymentEntry, *, note: str, user=None) -> PaymentEntry:
    """Close an entry that needs no balance (a failed refund finance has dealt with, a refund of money on no account)."""
    if not note.strip():
        raise BillingError("Say how this entry was dealt with.")
    entry = locks.lock_books(entries=[entry.pk]).entries[0]
    if entry.status != PaymentEntryStatus.OPEN:
        raise BillingError("This payment entry is already resolved.")
    if entry.kind in MONEY_RECEIVED_KINDS:
        raise BillingError("This entry holds a customer's money: resolve it into a balance instead.")
    if entry.parent_id is not None:
        raise BillingError("This movement is booked when the entry holding its payment is resolved.")
    entry.status, entry.resolved_at = PaymentEntryStatus.RESOLVED, timezone.now()
    entry.last_error = f"{entry.last_error} — Closed: {note.strip()}"[:4000]
    entry.save(update_fields=["status", "resolved_at", "last_error"])
    amount = entry.amount if entry.currency != "XXX" else None
    record_audit(AuditAction.ENTRY_CLOSED, obj=entry, user=user, invoice=entry.invoice, before=amount, currency=entry.currency,
                 label=f"Payment entry {entry.transaction_number}", detail=f"Closed: {note.strip()}")
    return entry

