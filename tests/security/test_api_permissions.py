"""Least privilege in the API: the same rule as the admin (staff AND the model's permission), reads included."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from tests.factories import BalanceFactory, PaymentEntryFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db

LISTS = {"invoice": "billing:invoice-list", "balance": "billing:balance-list", "paymententry": "billing:paymententry-list"}


def client_for(*, staff: bool, permissions: tuple[str, ...] = ()) -> Client:
    user = User.objects.create_user(f"user-{User.objects.count()}", password="pw-123456", is_staff=staff)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_staff_without_model_permissions_reads_nothing_the_admin_refuses_them():
    invoice = BalanceFactory().invoice
    PaymentEntryFactory()
    client = client_for(staff=True)
    for model, route in LISTS.items():
        assert client.get(reverse(route)).status_code == 403, model
    assert client.get(reverse("billing:invoice-detail", args=[invoice.pk])).status_code == 403
    assert client.get(reverse("admin:billing_invoice_changelist")).status_code == 403  # the admin's answer, for comparison


@pytest.mark.parametrize("model", list(LISTS))
def test_a_view_permission_opens_exactly_its_own_list(model):
    client = client_for(staff=True, permissions=(f"billing.view_{model}",))
    for other, route in LISTS.items():
        assert client.get(reverse(route)).status_code == (200 if other == model else 403), other


def test_a_view_permission_without_staff_status_opens_nothing():
    client = client_for(staff=False, permissions=tuple(f"billing.view_{model}" for model in LISTS))
    for route in LISTS.values():
        assert client.get(reverse(route)).status_code == 403


def test_the_refund_api_requires_staff_and_the_refund_permission(fake_stripe):
    balance = BalanceFactory(provider_setting=ProviderSettingFactory())
    url = reverse("refunds:api-refund-balance", args=[balance.pk])
    not_staff = client_for(staff=False, permissions=("refunds.add_refundrequest",))
    assert not_staff.post(url, {"amount": "1.00"}, content_type="application/json").status_code == 403
    staff_without_permission = client_for(staff=True)
    assert staff_without_permission.post(url, {"amount": "1.00"}, content_type="application/json").status_code == 403
    assert fake_stripe.requests == []
    both = client_for(staff=True, permissions=("refunds.add_refundrequest",))
    assert both.post(url, {"amount": "1.00"}, content_type="application/json").status_code not in (401, 403)


@pytest.mark.parametrize("route", ["api-schema", "api-docs"])
def test_the_schema_and_its_docs_are_for_staff_only(route):
    url = reverse(route)
    assert Client().get(url).status_code in (401, 403)
    assert client_for(staff=False).get(url).status_code == 403
    assert client_for(staff=True).get(url).status_code == 200
