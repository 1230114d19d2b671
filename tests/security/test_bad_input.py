"""Generated bad input at every entry point: never a 5xx, never a write. Prints the figures."""

import json
import time

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Balance
from payments.models import PaymentAttempt
from payments.tokens import make_token
from refunds.models import RefundRequest
from tests.factories import TEST_WEBHOOK_SECRET, InvoiceFactory, ProviderSettingFactory
from tests.helpers import make_charge, make_event
from tests.stripe_fake.signing import sign_payload
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db
FIGURES = {"inputs": 0, "5xx": 0}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
                           max_leaves=12)


def record(status):
    FIGURES["inputs"] += 1
    FIGURES["5xx"] += status >= 500
    assert status < 500


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory()


@SETTINGS
@given(body=st.binary(max_size=300), header=st.text(max_size=120))
def test_webhook_random_bodies_and_headers(client, setting, body, header):
    url = reverse("webhooks:stripe-webhook", args=[setting.webhook_id])
    record(client.post(url, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header).status_code)
    assert not WebhookEvent.objects.exists()


@SETTINGS
@given(value=json_values, truncate=st.integers(0, 50))
def test_webhook_signed_but_malformed_events(client, setting, value, truncate):
    body = json.dumps(value).encode()
    body = body[: max(1, len(body) - truncate)]
    url = reverse("webhooks:stripe-webhook", args=[setting.webhook_id])
    status = client.post(url, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign_payload(body, TEST_WEBHOOK_SECRET)).status_code
    record(status)
    assert status == 400 and not WebhookEvent.objects.exists()


@SETTINGS
@given(event_type=st.sampled_from(["charge.succeeded", "charge.refunded", "refund.updated", "charge.dispute.created",
                                   "payment_intent.succeeded", "source.chargeable", "some.unknown_type"]),
       drop=st.sets(st.sampled_from(["amount", "currency", "metadata", "created", "status", "payment_method_details", "charge"])),
       amount=st.one_of(st.integers(-10, 10**12), st.text(max_size=5), st.none()),
       currency=st.one_of(st.sampled_from(["eur", "jpy", "xxx", "", "EURO"]), st.none()))
def test_valid_signature_with_odd_objects_is_stored_and_never_loops(client, setting, django_capture_on_commit_callbacks,
                                                                    event_type, drop, amount, currency):
    obj = make_charge(metadata={"invoice_id": "999999"})
    obj.update(amount=amount, currency=currency)
    for key in drop:
        obj.pop(key, None)
    event = make_event(event_type, obj)
    body = json.dumps(event).encode()
    with django_capture_on_commit_callbacks(execute=True):
        status = client.post(reverse("webhooks:stripe-webhook", args=[setting.webhook_id]), data=body, content_type="application/json",
                             HTTP_STRIPE_SIGNATURE=sign_payload(body, TEST_WEBHOOK_SECRET, timestamp=int(time.time()))).status_code
    record(status)
    assert status == 200
    assert WebhookEvent.objects.filter(stripe_event_id=event["id"]).get().status in ("processed", "ignored", "failed")
    assert not Balance.objects.exists()  # no invoice 999999: nothing can be booked


@SETTINGS
@given(amount=st.one_of(st.text(max_size=12), st.integers(), st.floats(allow_nan=True), st.none(), st.lists(st.integers(), max_size=2)))
def test_refund_api_amounts(admin_client, setting, amount):
    balance = InvoiceFactory and Balance.objects.first()
    if balance is None:
        from tests.factories import BalanceFactory

        balance = BalanceFactory(provider_setting=setting, transaction_number="ch_fuzz")
    response = admin_client.post(reverse("refunds:api-refund-balance", args=[balance.pk]), {"amount": amount}, content_type="application/json")
    record(response.status_code)
    assert response.status_code in (400, 503) or response.status_code == 201
    if response.status_code == 400:
        assert response.json()["detail"]


@SETTINGS
@given(body=st.one_of(st.binary(max_size=100), json_values.map(lambda v: json.dumps(v).encode())))
def test_payment_intent_endpoint(client, setting, body):
    invoice = InvoiceFactory()
    response = client.post(reverse("payments:create-intent", args=[make_token(invoice.pk)]), data=body, content_type="application/json")
    record(response.status_code)
    assert response.status_code in (200, 400, 409)
    if response.status_code != 200:
        assert not PaymentAttempt.objects.filter(invoice=invoice).exclude(status="failed").exists() or response.status_code == 409


def test_print_figures():
    print(f"\\nbad-input figures: {FIGURES['inputs']} inputs, {FIGURES['5xx']} answers 5xx")
    assert FIGURES["5xx"] == 0
    assert RefundRequest.objects.count() == 0
