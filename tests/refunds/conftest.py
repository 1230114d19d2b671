from decimal import Decimal

from billing.constants import BalanceType
from billing.models import Balance


def rows(charge_id):
    """(type, amount, locked, linked to an invoice) of every balance of the charge, ordered for comparison."""
    return sorted((b.type, b.amount, b.locked, b.invoice_id is not None)
                  for b in Balance.objects.filter(transaction_number=charge_id))


def payment(amount, locked=False, linked=True):
    return (BalanceType.PAYMENT, Decimal(amount), locked, linked)


def refund(amount):
    return (BalanceType.REFUND, Decimal(amount), True, False)
