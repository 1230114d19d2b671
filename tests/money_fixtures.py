"""Fixtures shared by the tests of money flows (billing, payments, refunds, webhooks): a Stripe setting on the fake
Stripe, invoices paid through it, events delivered to the real endpoint, payment balances of a real fake-Stripe charge."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from providers.stripe import gateway
from tests.factories import BalanceFactory, InvoiceFactory, ProviderSettingFactory


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory(method_sepa_debit=True)


@pytest.fixture
def invoice():
    return InvoiceFactory(amount="100.00", currency="EUR")


@pytest.fixture
def pay(setting):
    """Create and confirm a PaymentIntent on the fake Stripe for an invoice; returns the PI dict."""

    def _pay(invoice, payment_method="pm_card_visa", amount=None, key=None, **extra):
        metadata = {"invoice_id": invoice.pk, "invoice_number": invoice.number, "account_id": invoice.account_id,
                    "provider_setting_id": setting.pk}
        try:
            return gateway.create_payment_intent(
                setting, amount=amount or invoice.amount, currency=invoice.currency, idempotency_key=key or f"test-{invoice.pk}-{payment_method}",
                payment_method_types=["sepa_debit" if "sepa" in payment_method else "card"], metadata=metadata,
                description=invoice.payment_reference, payment_method=payment_method, confirm=True, **extra)
        except gateway.PaymentDeclined as exc:
            return exc.payment_intent

    return _pay


@pytest.fixture
def deliver_all(client, setting, fake_stripe, django_capture_on_commit_callbacks):
    """Deliver the fake server's events (or the given ones) to the real endpoint, in the given order."""
    from tests.helpers import deliver

    def _deliver(events=None):
        events = fake_stripe.events_of() if events is None else events
        for event in events:
            deliver(client, setting, event, django_capture_on_commit_callbacks)
        return events

    return _deliver


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
    from billing.ledger import recompute_invoices

    def _balances(charge_id, *amounts, invoice=None, currency="EUR"):
        total = -sum(Decimal(a) for a in amounts)
        invoice = invoice or InvoiceFactory(amount=total, currency=currency)
        start = timezone.now() - timedelta(days=10)
        balances = [BalanceFactory(invoice=invoice, amount=Decimal(a), currency=currency, transaction_number=charge_id,
                                   provider_setting=setting, date=start + timedelta(days=i)) for i, a in enumerate(amounts)]
        recompute_invoices([invoice.pk])
        return balances

    return _balances


@pytest.fixture
def finance_client():
    """A logged-in member of the Finance group (staff, with the group's permissions)."""
    from django.contrib.auth.models import Group, User
    from django.test import Client

    user = User.objects.create_user("fin", password="pw-finance-123", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client = Client()
    client.force_login(user)
    return client
