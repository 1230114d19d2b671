"""The offline demo's test payment (payments/services/offline.py): only with the flag, a test-mode setting and a
Stripe API base on this machine; bad input changes nothing."""

import pytest

from payments.models import PaymentAttempt
from payments.tokens import make_token
from tests.factories import InvoiceFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(fake_stripe):
    ProviderSettingFactory(method_card=True, method_sepa_debit=True)
    return InvoiceFactory()


def post(client, invoice, **data):
    return client.post(f"/pay/{make_token(invoice.pk)}/offline-test-payment/", data=data)


def test_not_offered_without_the_flag(client, invoice, settings):
    settings.STRIPE_OFFLINE_DEMO = False
    page = client.get(f"/pay/{make_token(invoice.pk)}/")
    assert page.status_code == 200 and b"offline-form" not in page.content and b"payment-element" in page.content
    response = post(client, invoice, method="card")
    assert response.status_code == 409 and b"not available" in response.content
    assert not PaymentAttempt.objects.exists()


def test_refused_when_the_api_base_is_not_local(client, invoice, settings):
    settings.STRIPE_OFFLINE_DEMO = True
    settings.STRIPE_API_BASE = "https://api.stripe.com"
    assert post(client, invoice, method="card").status_code == 409
    assert not PaymentAttempt.objects.exists()


def test_refused_for_a_live_setting(settings):
    from payments.services.offline import offline_demo_enabled
    from providers.models import ProviderSetting

    settings.STRIPE_OFFLINE_DEMO, settings.STRIPE_API_BASE = True, "http://127.0.0.1:8420"
    assert offline_demo_enabled(ProviderSetting(publishable_key="pk_test_x"))
    assert not offline_demo_enabled(ProviderSetting(publishable_key="pk_live_x"))
    assert not offline_demo_enabled(None)


def test_unknown_method_is_refused_and_writes_nothing(client, invoice, settings):
    settings.STRIPE_OFFLINE_DEMO = True
    response = post(client, invoice, method="bitcoin")
    assert response.status_code == 409 and b"Choose one of the offered test payment methods" in response.content
    assert not PaymentAttempt.objects.exists()


def test_offline_card_payment_goes_the_normal_way(client, invoice, settings, fake_stripe):
    settings.STRIPE_OFFLINE_DEMO = True
    page = client.get(f"/pay/{make_token(invoice.pk)}/")
    assert b"Offline test payment" in page.content and b"js.stripe.com/v3" not in page.content
    response = post(client, invoice, method="card")
    assert response.status_code == 302 and "/return/?payment_intent=pi_" in response["Location"]
    attempt = PaymentAttempt.objects.get()
    assert attempt.payment_intent_id in response["Location"]
    assert fake_stripe.count("POST", f"/v1/payment_intents/{attempt.payment_intent_id}/confirm") == 1
    result = client.get(response["Location"])
    assert b"succeeded" in result.content
