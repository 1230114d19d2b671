from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.constants import BalanceType
from billing.models import Balance
from billing.services import recompute_invoices
from providers.stripe import gateway
from tests.factories import BalanceFactory, InvoiceFactory, ProviderSettingFactory


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory()


@pytest.fixture
def stripe_charge(setting):
    """A succeeded charge on the fake Stripe; returns its id."""

    def _charge(amount=Decimal("100.00"), currency="EUR"):
        pi = gateway.create_payment_intent(setting, amount=amount, currency=currency, idempotency_key=f"charge-{amount}-{currency}-{id(amount)}",
                                           payment_method_types=["card"], metadata={}, payment_method="pm_card_visa", confirm=True)
        return pi["latest_charge"]

    return _charge


@pytest.fixture
def payment_balances(setting):
    """Payment balances of one charge, oldest first, e.g. payment_balances("ch_x", "-75", "-25")."""

    def _balances(charge_id, *amounts, invoice=None, currency="EUR"):
        total = -sum(Decimal(a) for a in amounts)
        invoice = invoice or InvoiceFactory(amount=total, currency=currency)
        start = timezone.now() - timedelta(days=10)
        balances = [BalanceFactory(invoice=invoice, amount=Decimal(a), currency=currency, transaction_number=charge_id,
                                   provider_setting=setting, date=start + timedelta(days=i)) for i, a in enumerate(amounts)]
        recompute_invoices([invoice.pk])
        return balances

    return _balances


def rows(charge_id):
    """(type, amount, locked, linked to an invoice) of every balance of the charge, ordered for comparison."""
    return sorted((b.type, b.amount, b.locked, b.invoice_id is not None)
                  for b in Balance.objects.filter(transaction_number=charge_id))


def payment(amount, locked=False, linked=True):
    return (BalanceType.PAYMENT, Decimal(amount), locked, linked)


def refund(amount):
    return (BalanceType.REFUND, Decimal(amount), True, False)
