"""An invoice's status: derived from its open amount (SPEC §3), written only here, in the transaction that moved it."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.constants import InvoiceStatus
from billing.ledger import locks, sql
from billing.ledger.base import BillingError
from billing.models import Invoice


def derived_status(invoice: Invoice, open_amount: Decimal) -> str:
    """`open` while something is open, `paid` when the open amount is 0; drafts and cancelled documents keep theirs."""
    if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.CANCELLED):
        return invoice.status
    return InvoiceStatus.PAID if open_amount == 0 else InvoiceStatus.OPEN


def recompute_invoice_status(invoice: Invoice, *, known_open_amount: Decimal | None = None) -> Invoice:
    """Write the status the balances decide. In the transaction that changed the balances, with the invoice row
    locked; a caller that has just computed the open amount under that lock may pass it (saves a query)."""
    if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.CANCELLED):
        return invoice
    remaining = sql.open_amount(invoice) if known_open_amount is None else known_open_amount
    new_status = derived_status(invoice, remaining)
    if new_status != invoice.status:
        invoice.status = new_status
        sql.update_fields(invoice, ["status"])
    return invoice


@transaction.atomic
def recompute_invoices(invoice_ids: Iterable[int]) -> None:
    for invoice in locks.lock_invoices(invoice_ids).values():
        recompute_invoice_status(invoice)


@transaction.atomic
def finalize_invoice(invoice: Invoice) -> Invoice:
    """A draft becomes open (or paid, if balances already settle it) and takes payments."""
    invoice = locks.lock_invoices([invoice.pk])[invoice.pk]
    if invoice.status != InvoiceStatus.DRAFT:
        raise BillingError(f"{invoice.number} is {invoice.get_status_display().lower()}, only drafts can be finalized.")
    invoice.status = InvoiceStatus.OPEN
    invoice.finalized_at = timezone.now()
    invoice.save(update_fields=["status", "finalized_at"])
    return recompute_invoice_status(invoice)


@transaction.atomic
def cancel_invoice(invoice: Invoice) -> Invoice:
    """A document without balances is cancelled and takes no payment any more."""
    invoice = locks.lock_invoices([invoice.pk])[invoice.pk]
    if invoice.status == InvoiceStatus.CANCELLED:
        return invoice
    if invoice.balances.exists():
        raise BillingError(f"{invoice.number} has balances linked to it; unassign them before cancelling.")
    invoice.status = InvoiceStatus.CANCELLED
    invoice.cancelled_at = timezone.now()
    invoice.save(update_fields=["status", "cancelled_at"])
    return invoice
