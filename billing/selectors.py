"""Reads of the books: open amounts, a charge's balances and the entry that holds its money."""

from decimal import Decimal

from django.db.models import QuerySet

from billing.constants import MONEY_RECEIVED_KINDS, BalanceType, PaymentEntryStatus
from billing.ledger import sql
from billing.models import Balance, Invoice, PaymentEntry


def open_amount(invoice: Invoice) -> Decimal:
    """Invoice amount plus the balances linked to it (0 means settled)."""
    return sql.open_amount(invoice)


def invoice_with_open_amount(invoice_id: int) -> tuple[Invoice, Decimal] | None:
    """An invoice with its account, business entity and open amount (one statement), or None."""
    if not 0 < invoice_id < 2**63:
        return None
    return sql.invoice_with_open_amount(invoice_id)


def payment_balances_of_charge(*, provider_setting, transaction_number: str) -> QuerySet[Balance]:
    """All payment balances booked for one Stripe charge (splits included), oldest first."""
    return Balance.objects.filter(
        type=BalanceType.PAYMENT, transaction_number=transaction_number, provider_setting=provider_setting
    ).order_by("date", "id")


def open_money_entry(*, charge_id: str) -> PaymentEntry | None:
    """The open entry holding a charge's money received, if its money was not booked as balances."""
    return (PaymentEntry.objects.filter(transaction_number=charge_id, kind__in=MONEY_RECEIVED_KINDS, status=PaymentEntryStatus.OPEN,
                                        parent=None).order_by("id").first())


def money_entry_of_charge(*, charge_id: str) -> PaymentEntry | None:
    """The entry that held a charge's money received, open or resolved."""
    return PaymentEntry.objects.filter(transaction_number=charge_id, kind__in=MONEY_RECEIVED_KINDS, parent=None).order_by("id").first()
