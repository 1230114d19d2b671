"""Alipay end to end without a browser: the redirect flow on the fake Stripe (next_action, Alipay's page, the return
URL), the return page, the books from the webhooks, and never a saved method (the browser test drives the page)."""

import json
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.urls import reverse

from billing.constants import InvoiceStatus
from payments.models import PaymentAttempt, PaymentInstrument, StripeCustomer
from payments.tokens import make_token
from providers.stripe import gateway
from receipts.models import Receipt
from tests.factories import InvoiceFactory, ProviderSettingFactory
from tests.helpers import deliver

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(fake_stripe):
    # Future payments forced on: still never for Alipay.
    return ProviderSettingFactory(method_card=True, method_alipay=True, enable_future_payments=True, future_payments_active=True,
                                  future_payments_changeable=False)


def start_alipay_payment(client, invoice):
    token = make_token(invoice.pk)
    answer = client.post(reverse("payments:create-intent", args=[token]), data=json.dumps({"method_type": "alipay", "save_for_future": True}),
                         content_type="application/json")
    assert answer.status_code == 200, answer.content
    return token, answer.json()["paymentIntentId"]


def test_alipay_redirects_returns_and_is_booked_by_its_webhooks(client, setting, fake_stripe, django_capture_on_commit_callbacks):
    invoice = InvoiceFactory(amount=Decimal("88.00"))
    token, pi_id = start_alipay_payment(client, invoice)
    pi = fake_stripe.objects[pi_id]
    assert pi["payment_method_types"] == ["alipay"] and pi["setup_future_usage"] is None and pi["customer"] is None
    return_url = "http://testserver" + reverse("payments:return", args=[token])
    # What Stripe.js does on confirm: Stripe answers with the redirect to Alipay's page.
    confirmed = gateway.confirm_payment_intent(setting, pi_id, idempotency_key="browser", payment_method="pm_alipay", return_url=return_url)
    redirect = confirmed["next_action"]["alipay_handle_redirect"]
    assert confirmed["status"] == "requires_action" and confirmed["latest_charge"] is None and redirect["return_url"] == return_url
    assert fake_stripe.events_of("charge.succeeded") == []  # no money before the customer authorizes
    # The customer authorizes on Alipay's page and is sent back to the return URL.
    back = requests.get(redirect["url"], params={"outcome": "authorize"}, allow_redirects=False, timeout=5)
    assert back.status_code == 302
    location = urlsplit(back.headers["Location"])
    query = parse_qs(location.query)
    assert location.path == reverse("payments:return", args=[token])
    assert query["payment_intent"] == [pi_id] and query["redirect_status"] == ["succeeded"]
    page = client.get(f"{location.path}?{location.query}")
    text = page.content.decode()
    assert page.status_code == 200 and "succeeded" in text and "€88.00" in text and text.count("Thank you") == 1
    for event in fake_stripe.events_of("charge.succeeded", "payment_intent.succeeded"):
        deliver(client, setting, event, django_capture_on_commit_callbacks)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert Receipt.objects.get().method_type == "alipay"
    assert not PaymentInstrument.objects.exists() and not StripeCustomer.objects.exists()  # never saved


def test_alipay_refused_on_its_page_leaves_the_invoice_open(client, setting, fake_stripe, django_capture_on_commit_callbacks):
    invoice = InvoiceFactory()
    token, pi_id = start_alipay_payment(client, invoice)
    confirmed = gateway.confirm_payment_intent(setting, pi_id, idempotency_key="browser", payment_method="pm_alipay",
                                               return_url="http://testserver/back/")
    back = requests.get(confirmed["next_action"]["alipay_handle_redirect"]["url"], params={"outcome": "fail"}, allow_redirects=False,
                        timeout=5)
    assert parse_qs(urlsplit(back.headers["Location"]).query)["redirect_status"] == ["failed"]
    page = client.get(reverse("payments:return", args=[token]), {"payment_intent": pi_id})
    assert "did not approve" in page.content.decode() and "Try again" in page.content.decode()
    for event in fake_stripe.events_of():
        deliver(client, setting, event, django_capture_on_commit_callbacks)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN and PaymentAttempt.objects.get().status == "failed"


def test_confirming_alipay_without_a_return_url_is_refused_like_stripe_does(setting, fake_stripe, client):
    _, pi_id = start_alipay_payment(client, InvoiceFactory())
    with pytest.raises(gateway.StripeRequestRefused, match="return_url"):
        gateway.confirm_payment_intent(setting, pi_id, idempotency_key="no-return", payment_method="pm_alipay")
