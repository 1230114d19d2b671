"""Saved instruments through webhooks, off-session collection (success, authentication, decline), payment-link emails."""

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from billing.constants import InvoiceStatus
from billing.models import Balance
from payments.models import PaymentAttempt, PaymentInstrument
from payments.services.collection import collect_due_invoices, collect_invoice_off_session
from payments.tokens import SAVE_METHOD, make_token
from tests.factories import InvoiceFactory, ProviderSettingFactory
from tests.helpers import deliver

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory(method_card=True, method_sepa_debit=True, enable_future_payments=True,
                                  future_payments_active=True, future_payments_changeable=True)


@pytest.fixture
def deliver_all(client, setting, fake_stripe, django_capture_on_commit_callbacks):
    def _deliver(since=0):
        for event in fake_stripe.events_of()[since:]:
            deliver(client, setting, event, django_capture_on_commit_callbacks)
        return len(fake_stripe.events)

    return _deliver


def pay_on_page(client, setting, invoice, payment_method, save=True):
    from providers.stripe import gateway

    body = client.post(reverse("payments:create-intent", args=[make_token(invoice.pk)]),
                       data=json.dumps({"method_type": "sepa_debit" if "sepa" in payment_method else "card", "save_for_future": save}),
                       content_type="application/json").json()
    return gateway.confirm_payment_intent(setting, body["paymentIntentId"], idempotency_key=f"confirm-{invoice.pk}",
                                          payment_method=payment_method, return_url="https://example.test/return")


def test_card_saved_on_success_then_next_invoice_collected_off_session(client, setting, fake_stripe, deliver_all):
    first = InvoiceFactory()
    pay_on_page(client, setting, first, "pm_card_visa")
    seen = deliver_all()
    instrument = PaymentInstrument.objects.get()
    assert (instrument.active, instrument.method_type, instrument.brand, instrument.last4) == (True, "card", "visa", "4242")
    assert instrument.account == first.account and instrument.stripe_customer is not None
    second = InvoiceFactory(account=first.account, due_date=date.today() - timedelta(days=1), amount=Decimal("42.00"))
    assert collect_due_invoices() == {"succeeded": 1}
    deliver_all(seen)
    second.refresh_from_db()
    assert second.status == InvoiceStatus.PAID
    assert Balance.objects.filter(invoice=second).get().amount == Decimal("-42.00")
    request = [r for r in fake_stripe.requests if r["path"] == "/v1/payment_intents"][-1]
    assert request["params"]["off_session"] == "True" or request["params"]["off_session"] == "true"
    assert request["idempotency_key"] == f"pi-{second.pk}-1"
    assert collect_due_invoices() == {}  # paid now: nothing more to collect


def test_sepa_mandate_saved_while_processing(client, setting, fake_stripe, deliver_all):
    invoice = InvoiceFactory()
    pay_on_page(client, setting, invoice, "pm_sepa_debit")
    deliver_all()
    instrument = PaymentInstrument.objects.get()
    assert instrument.active and instrument.method_type == "sepa_debit" and instrument.mandate_id.startswith("mandate_")


def test_not_saved_when_the_customer_opted_out(client, setting, fake_stripe, deliver_all):
    pay_on_page(client, setting, InvoiceFactory(), "pm_card_visa", save=False)
    deliver_all()
    assert not PaymentInstrument.objects.exists()


@pytest.mark.parametrize("payment_method, outcome", [("pm_card_authenticationRequired", "authentication_required"),
                                                     ("pm_card_chargeDeclined", "declined")])
def test_off_session_failure_flags_the_instrument_and_emails_a_link(client, setting, fake_stripe, deliver_all, payment_method, outcome):
    first = InvoiceFactory()
    pay_on_page(client, setting, first, "pm_card_visa")
    deliver_all()
    instrument = PaymentInstrument.objects.get()
    # The card on file starts failing (the fake decides by the payment method's kind).
    pm = fake_stripe.objects[instrument.stripe_payment_method_id]
    from tests.stripe_fake.server import MAGIC_METHODS
    pm["_spec"] = MAGIC_METHODS[payment_method]
    due = InvoiceFactory(account=first.account, due_date=date.today())
    assert collect_invoice_off_session(due) == outcome
    instrument.refresh_from_db()
    assert instrument.needs_attention and instrument.attention_reason
    attempt = PaymentAttempt.objects.get(invoice=due)
    assert attempt.status == "failed"
    link_emails = [message for message in mail.outbox if "receipt" not in message.subject]  # the first payment's receipt too
    assert len(link_emails) == 1 and due.number in link_emails[0].subject
    assert "/pay/" in link_emails[0].body and link_emails[0].alternatives
    assert collect_due_invoices() == {}  # a flagged instrument is not charged again


def test_email_payment_link_admin_action(admin_client, setting):
    invoice = InvoiceFactory()
    response = admin_client.post(reverse("admin:billing_invoice_changelist"),
                                 {"action": "email_payment_link_action", "_selected_action": [invoice.pk]}, follow=True)
    assert response.status_code == 200 and len(mail.outbox) == 1
    assert invoice.account.email in mail.outbox[0].to
    page = admin_client.get(reverse("admin:billing_invoice_change", args=[invoice.pk])).content.decode()
    assert "/pay/" in page


def test_save_method_page_and_setup_intent(client, setting, fake_stripe, deliver_all):
    from providers.stripe import gateway

    invoice = InvoiceFactory()
    token = make_token(invoice.pk, purpose=SAVE_METHOD)
    assert client.get(reverse("payments:save-method", args=[token])).status_code == 200
    assert client.get(reverse("payments:save-method", args=[make_token(invoice.pk)])).status_code == 400  # a pay token
    body = client.post(reverse("payments:create-setup-intent", args=[token]), data="{}", content_type="application/json").json()
    setup_intent_id = body["clientSecret"].split("_secret_")[0]
    gateway_client = gateway.client_for(setting)
    gateway_client.v1.setup_intents.confirm(setup_intent_id, {"payment_method": "pm_card_visa"})
    deliver_all()
    assert PaymentInstrument.objects.get().active
