"""Money received through a Stripe charge: booked on its invoice, held in an entry, confirmed, or taken out again
when the charge fails (SPEC §3, §7).

The payments app decides which invoice a charge names and whether its setting may touch that invoice (tenancy);
the ledger decides how the money is booked. Called under the charge's PaymentTransaction row lock, in its
transaction (no savepoint of their own: an error aborts the caller's transaction as a whole).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from billing.constants import BalanceStatus, PaymentEntryKind
from billing.ledger import locks, sql
from billing.ledger.balances import book_payment_locked
from billing.ledger.invoices import recompute_invoice_status
from billing.models import Invoice, PaymentEntry
from billing.money import MoneyError, bookable_amount, format_amount, from_minor_units

logger = logging.getLogger(__name__)


@dataclass
class NamedInvoice:
    """The invoice a charge names, row-locked with its open amount (locks.lock_invoice_for_payment), and whether the
    charge's setting serves its business entity in the same mode (SPEC §7 Tenancy)."""

    invoice: Invoice
    open_amount: Decimal
    in_scope: bool


@dataclass
class Booked:
    """Where a charge's money went: the invoice and account it was booked for (None when it is held in an entry)."""

    invoice: Invoice | None = None
    account_id: int | None = None
    entry_kind: str = ""


def book_charge_money(*, setting_id: int, charge_id: str, amount_minor: int, currency: str, date: datetime, pending: bool,
                      named: NamedInvoice | None, raw: dict) -> Booked:
    """Book the money of one charge once (the caller guards "once" under the charge's lock).

    Payment balances on the named invoice (surplus unlinked) when everything fits; otherwise the money is held in one
    open PaymentEntry, never an error: an amount or currency the books cannot take, no invoice, an invoice the setting
    does not serve, another currency than the invoice's.
    """
    status = BalanceStatus.PENDING if pending else BalanceStatus.CONFIRMED
    try:
        amount = bookable_amount(amount_minor, currency)
        if amount <= 0:
            raise MoneyError("Stripe charge without an amount.")
    except MoneyError as exc:
        return _hold(PaymentEntryKind.UNUSABLE_AMOUNT, charge_id=charge_id, setting_id=setting_id, amount_minor=amount_minor,
                     currency=currency, date=date, status=status, raw=raw,
                     error=f"The books cannot take this charge of {amount_minor} minor units of {currency or '?'}: {exc}")
    common = {"charge_id": charge_id, "setting_id": setting_id, "amount": amount, "currency": currency.upper(), "date": date,
              "status": status, "raw": raw}
    if named is None:
        return _hold(PaymentEntryKind.UNMATCHED_PAYMENT, error="No invoice matches this payment (no or unknown metadata.invoice_id).",
                     **common)
    invoice = named.invoice
    if not named.in_scope:
        logger.warning("Charge %s of setting %s names invoice %s of an entity (or mode) the setting does not serve; held in an entry.",
                       charge_id, setting_id, invoice.pk)
        return _hold(PaymentEntryKind.FOREIGN_INVOICE, error=f"The charge names invoice id {invoice.pk}, which belongs to a business "
                     "entity (or mode) this Stripe setting does not serve.", **common)
    if invoice.currency != currency.upper():
        return _hold(PaymentEntryKind.CURRENCY_MISMATCH, invoice=invoice,
                     error=f"Paid {format_amount(amount, currency)}, but invoice {invoice.number} is in {invoice.currency}.", **common)
    book_payment_locked(account_id=invoice.account_id, invoice=invoice, amount=amount, currency=invoice.currency, date=date,
                 transaction_number=charge_id, provider_setting_id=setting_id, status=status, open_amount_under_lock=named.open_amount)
    return Booked(invoice=invoice, account_id=invoice.account_id)


def _hold(kind: str, *, charge_id: str, setting_id: int, currency: str, date: datetime, status: str, raw: dict, error: str,
          amount: Decimal | None = None, amount_minor: int = 0, invoice: Invoice | None = None) -> Booked:
    if amount is None:  # what Stripe reported, as far as the currency is known
        try:
            amount, currency = from_minor_units(amount_minor, currency), currency.upper()
        except MoneyError:
            amount, currency = Decimal(amount_minor), "XXX"  # kept in minor units: finance decides (last_error says so)
    PaymentEntry.objects.get_or_create(
        provider="stripe", kind=kind, transaction_number=charge_id, stripe_refund_id=None, dispute_id=None,
        defaults={"provider_setting_id": setting_id, "amount": -abs(amount), "currency": currency, "date": date,
                  "last_error": error, "raw": raw, "payment_status": status, "invoice": invoice,
                  "account_id": invoice.account_id if invoice else None},
    )
    return Booked(invoice=invoice, account_id=invoice.account_id if invoice else None, entry_kind=kind)


def confirm_charge_money(*, setting_id: int, charge_id: str) -> None:
    """The charge succeeded: its pending payment balances and the entries holding its money become confirmed."""
    sql.confirm_pending_payments(setting_id=setting_id, charge_id=charge_id)


def remove_failed_charge_money(*, setting_id: int, charge_id: str, failure: str) -> list[int]:
    """The charge failed (a SEPA debit returned): every unlocked payment balance of it goes (splits included), the
    invoices they paid reopen, and entries holding its money are closed (it never arrived). Locked balances (refunded,
    disputed) stay. Returns the ids of the invoices recomputed."""
    invoices, balances = locks.lock_unlocked_payments_of_charge(setting_id=setting_id, charge_id=charge_id)
    if balances:
        sums = sql.delete_balances([pk for pk, _ in balances], then_sum_invoices=[invoice.pk for invoice in invoices])
        for invoice in invoices:  # still locked, by this transaction
            linked = sums.get(invoice.pk)
            recompute_invoice_status(invoice, known_open_amount=invoice.amount + (linked if linked is not None else Decimal("0")))
    sql.void_open_money_entries(charge_id=charge_id, reason=f"Payment failed: {failure}", now=timezone.now())
    return [invoice.pk for invoice in invoices]
