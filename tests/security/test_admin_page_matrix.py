"""Every registered admin page (list, add, change of one object) × every kind of user.

Rule: anonymous users are sent to the login page; staff without permissions get 403; the Finance group sees
exactly the books it has view permissions for (and adds nothing there); superusers see everything.
"""

import pytest
from django.contrib import admin
from django.urls import NoReverseMatch, reverse

from payments.services.payouts import fetch_and_reconcile
from tests.factories import BalanceFactory, PaymentEntryFactory, ProviderSettingFactory
from tests.helpers import booked_charges
from tests.security.test_admin_action_matrix import client_for

pytestmark = pytest.mark.django_db

FINANCE_VIEWS = {"billing.businessentity", "billing.account", "billing.invoice", "billing.balance", "billing.paymententry",
                 "webhooks.webhookevent", "refunds.refundrequest", "receipts.receipt", "reminders.reminder", "payments.payout",
                 "payments.payoutline", "payments.stripefee", "payments.paymenttransaction", "payments.dispute", "billing.auditentry"}


def admin_pages():
    pages = []
    for model in admin.site._registry:
        label = f"{model._meta.app_label}.{model._meta.model_name}"
        base = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        pages.append((label, "list", reverse(f"{base}_changelist")))
        try:
            pages.append((label, "add", reverse(f"{base}_add")))
        except NoReverseMatch:
            pass
    return pages


def test_every_registered_model_is_in_the_matrix():
    labels = {label for label, _, _ in admin_pages()}
    assert FINANCE_VIEWS <= labels and len(labels) >= 15


@pytest.mark.parametrize("kind", ["anonymous", "staff", "finance", "superuser"])
def test_admin_pages(kind, fake_stripe):
    setting = ProviderSettingFactory()
    BalanceFactory()
    PaymentEntryFactory()
    booked_charges(fake_stripe, setting, 2)
    fetch_and_reconcile(setting, fake_stripe.run_payout()["id"])  # a payout with lines and fees
    client = client_for(kind)
    for label, page, url in admin_pages():
        status = client.get(url).status_code
        if kind == "anonymous":
            assert status == 302, (kind, label, page, status)
        elif kind == "superuser":
            # Add pages of read-only records (events, transactions, refund requests...) are refused even to superusers.
            assert status in ((200, 403) if page == "add" else (200,)), (kind, label, page, status)
        elif kind == "finance" and label in FINANCE_VIEWS and page == "list":
            assert status == 200, (kind, label, page, status)
        else:
            assert status == 403, (kind, label, page, status)
    # Change pages of one real object each.
    for model, model_admin in admin.site._registry.items():
        obj = model._default_manager.first()
        if obj is None:
            continue
        label = f"{model._meta.app_label}.{model._meta.model_name}"
        status = client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])).status_code
        if kind == "anonymous":
            assert status == 302, (kind, label, "change", status)
        elif kind == "superuser" or (kind == "finance" and label in FINANCE_VIEWS):
            assert status == 200, (kind, label, "change", status)
        else:
            assert status == 403, (kind, label, "change", status)
