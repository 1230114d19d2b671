"""What the security review found sound, kept covered (SPEC §5-§7): CSRF on API calls made with a session, and the
webhook signature compared in constant time. (Also covered elsewhere: the offline demo refused outside a local test
setup, tests/payments/test_offline_demo.py; payment-link purpose and expiry, tests/payments/test_page.py; no secret in
the admin history, tests/providers/test_settings_admin.py.)"""

import hmac
import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from refunds.models import RefundRequest
from tests.factories import BalanceFactory, ProviderSettingFactory
from tests.helpers import make_charge, make_event
from tests.stripe_fake.signing import sign_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance_user():
    user = User.objects.create_user("finance-csrf", password="pw-123456", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    return user


def test_api_calls_with_a_session_need_the_csrf_token(finance_user, fake_stripe):
    balance = BalanceFactory(provider_setting=ProviderSettingFactory())
    browser = Client(enforce_csrf_checks=True)  # a page on another site posting with the clerk's session cookie
    browser.force_login(finance_user)
    for url, body in [(reverse("refunds:api-refund-balance", args=[balance.pk]), {"amount": "1.00"}),
                      (reverse("billing:assign-balance", args=[balance.pk]), {"document": balance.invoice_id or 1})]:
        response = browser.post(url, json.dumps(body), content_type="application/json")
        assert response.status_code == 403 and "CSRF" in response.json()["detail"], url
    assert not RefundRequest.objects.exists() and fake_stripe.requests == []
    # An integration with a token sends no cookie, so it needs no CSRF token.
    token = Token.objects.create(user=finance_user).key
    integration = Client(enforce_csrf_checks=True)
    response = integration.post(reverse("refunds:api-refund-balance", args=[balance.pk]), json.dumps({"amount": "1.00"}),
                                content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code not in (401, 403)


def test_the_webhook_signature_is_compared_in_constant_time(client, monkeypatch):
    from tests.factories import TEST_WEBHOOK_SECRET
    from webhooks import services

    compared, real_compare_digest = [], hmac.compare_digest

    def spy(expected, candidate):
        compared.append((len(expected), len(candidate)))
        return real_compare_digest(expected, candidate)

    monkeypatch.setattr(services.hmac, "compare_digest", spy)
    setting = ProviderSettingFactory()
    body = json.dumps(make_event("charge.succeeded", make_charge())).encode()
    header = sign_payload(body, TEST_WEBHOOK_SECRET)
    forged = header.rsplit("v1=", 1)[0] + "v1=" + "0" * 64
    url = reverse("webhooks:stripe-webhook", args=[setting.webhook_id])
    assert client.post(url, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=forged).status_code == 400
    assert compared == [(64, 64)]
