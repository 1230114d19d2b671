"""Reads of the books: open amounts and the balances of one payment."""

from decimal import Decimal

from django.db.models import QuerySet, Sum

from billing.constants import BalanceType
from billing.models import Balance, Invoice


def open_amount(invoice: Invoice) -> Decimal:
    """Invoice amount plus the balances linked to it (0 means settled)."""
    linked = Balance.objects.filter(invoice=invoice).aggregate(total=Sum("amount"))["total"] or Decimal("0")
    return invoice.amount + linked


def payment_balances_of_charge(*, provider_setting, transaction_number: str) -> QuerySet[Balance]:
    """All payment balances booked for one Stripe charge (splits included), oldest first."""
    return Balance.objects.filter(
        type=BalanceType.PAYMENT, transaction_number=transaction_number, provider_setting=provider_setting
    ).order_by("date", "id")
