"""Reads of the books: open amounts and the balances of one payment."""

from decimal import Decimal

from django.db.models import QuerySet

from billing.constants import BalanceType
from billing.models import Balance, Invoice
from billing.sql import converted, prepared_cursor


def open_amount(invoice: Invoice) -> Decimal:
    """Invoice amount plus the balances linked to it (0 means settled). Plain SQL: every booked payment asks."""
    with prepared_cursor() as cursor:
        cursor.execute(OPEN_AMOUNT_SQL, [invoice.pk])
        linked = cursor.fetchone()[0]
    return open_amount_from_sum(invoice, linked)


def open_amount_from_sum(invoice: Invoice, linked_sum) -> Decimal:
    """The open amount from a SUM of the invoice's balances read with plain SQL (NULL when it has none)."""
    return invoice.amount + (converted(Balance, "amount", linked_sum) if linked_sum is not None else Decimal("0"))


OPEN_AMOUNT_SQL = f"SELECT SUM(amount) FROM {Balance._meta.db_table} WHERE invoice_id = %s"  # noqa: S608 - model names


def payment_balances_of_charge(*, provider_setting, transaction_number: str) -> QuerySet[Balance]:
    """All payment balances booked for one Stripe charge (splits included), oldest first."""
    return Balance.objects.filter(
        type=BalanceType.PAYMENT, transaction_number=transaction_number, provider_setting=provider_setting
    ).order_by("date", "id")
