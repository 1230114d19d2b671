import pytest

from providers.stripe import gateway
from tests.factories import InvoiceFactory, ProviderSettingFactory


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
