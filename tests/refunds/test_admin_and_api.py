"""The Refund button, preview and confirm in the admin, and the refund API: permissions, CSRF, errors."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from billing.models import Balance
from refunds.models import RefundRequest

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    user = User.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def balance(stripe_charge, payment_balances):
    return payment_balances(stripe_charge(), "-100")[0]


def refund_url(balance):
    return reverse("refunds:refund-balance", args=[balance.pk])


def test_finance_sees_the_button_previews_and_confirms(finance_client, balance, fake_stripe):
    page = finance_client.get(reverse("admin:billing_balance_change", args=[balance.pk])).content.decode()
    assert refund_url(balance) in page
    form = finance_client.get(refund_url(balance))
    assert form.status_code == 200 and "100.00 EUR" in form.content.decode()
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', form.content.decode()).group(1)
    preview = finance_client.post(refund_url(balance), {"amount": "25", "idempotency_key": key, "preview": "1"})
    text = preview.content.decode()
    assert "Balances after the refund" in text and "-75" in text
    assert fake_stripe.count("POST", "/v1/refunds") == 0 and not RefundRequest.objects.exists()
    done = finance_client.post(refund_url(balance), {"amount": "25", "idempotency_key": key, "confirm": "1"})
    assert done.status_code == 302
    again = finance_client.post(refund_url(balance), {"amount": "25", "idempotency_key": key, "confirm": "1"})  # double submit
    assert again.status_code in (200, 302)
    assert fake_stripe.count("POST", "/v1/refunds") == 1
    assert Balance.objects.filter(type="refund").get().amount == Decimal("25")


def test_overrefund_must_be_confirmed(finance_client, stripe_charge, payment_balances, fake_stripe):
    available, locked = payment_balances(stripe_charge(), "-60", "-40")
    Balance.objects.filter(pk=locked.pk).update(locked=True, lock_reason="Refund via payment provider")
    response = finance_client.post(refund_url(available), {"amount": "100", "idempotency_key": "k1", "confirm": "1"})
    assert "overrefund" in response.content.decode()
    assert fake_stripe.count("POST", "/v1/refunds") == 0
    response = finance_client.post(refund_url(available), {"amount": "100", "idempotency_key": "k1", "confirm": "1",
                                                           "confirm_overrefund": "on"})
    assert response.status_code == 302
    assert Balance.objects.filter(is_overrefund=True).count() == 1


def test_bad_amount_is_a_form_error(finance_client, balance, fake_stripe):
    response = finance_client.post(refund_url(balance), {"amount": "0", "idempotency_key": "k", "confirm": "1"})
    assert response.status_code == 200 and "greater than zero" in response.content.decode()
    assert fake_stripe.count("POST", "/v1/refunds") == 0


def test_staff_without_finance_cannot_refund(staff_client, balance, client):
    assert staff_client.get(refund_url(balance)).status_code == 403
    assert client.get(refund_url(balance)).status_code == 302  # anonymous: to the login page
    api = reverse("refunds:api-refund-balance", args=[balance.pk])
    assert staff_client.post(api, {"amount": "10"}, content_type="application/json").status_code == 403
    assert client.post(api, {"amount": "10"}, content_type="application/json").status_code in (401, 403)
    assert not RefundRequest.objects.exists()


def test_form_is_csrf_protected(balance):
    user = User.objects.create_user("fin2", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(refund_url(balance), {"amount": "10", "idempotency_key": "k", "confirm": "1"}).status_code == 403
    assert not RefundRequest.objects.exists()


def test_api_refund_and_errors(finance_client, balance, fake_stripe):
    api = reverse("refunds:api-refund-balance", args=[balance.pk])
    response = finance_client.post(api, {"amount": "25.00"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="api-1")
    assert response.status_code == 201
    body = response.json()
    assert [b["amount"] for b in body["refund_balances"]] == ["25.000"] and body["stripe_refund_id"].startswith("re_")
    repeat = finance_client.post(api, {"amount": "25.00"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="api-1")
    assert repeat.status_code == 201 and fake_stripe.count("POST", "/v1/refunds") == 1
    for payload, reason in [({"amount": "-1"}, "greater than zero"), ({"amount": "1.234"}, "more decimals"),
                            ({"amount": "500"}, "exceeds"), ({}, "decimal string")]:
        bad = finance_client.post(api, payload, content_type="application/json")
        assert bad.status_code == 400 and reason in bad.json()["detail"]
    assert finance_client.post(reverse("refunds:api-refund-balance", args=[999999]), {"amount": "1"},
                               content_type="application/json").status_code == 404
