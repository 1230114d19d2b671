"""Secrets never leave the service; every page, action and endpoint is only for whom it is meant."""

import logging
import sys

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.debug import ExceptionReporter

from tests import conftest
from tests.factories import TEST_SECRET_KEY, BalanceFactory, InvoiceFactory, PaymentEntryFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db


def test_the_leak_scanner_catches_a_secret_in_a_log_record():
    scanner = next(h for h in logging.getLogger().handlers if isinstance(h, conftest._LeakScanningHandler))
    scanner.handle(logging.LogRecord("leak-test", logging.WARNING, __file__, 1, "oops %s", ("sk_test_" + "a1b2c3d4e5",), None))
    caught = list(conftest._leaks)
    conftest._leaks.clear()
    assert caught and "sk_test_a1b2" in caught[0]


def test_logged_secrets_are_redacted_before_any_handler_writes_them(caplog):
    logging.getLogger("leak-test").warning("oops %s", "sk_test_" + "a1b2c3d4e5")
    assert "sk_test_a1b2c3d4e5" not in caplog.text


def test_log_filter_redacts_secrets(caplog):
    from providers.logging import RedactSecretsFilter

    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "key %s", (TEST_SECRET_KEY,), None)
    RedactSecretsFilter().filter(record)
    assert TEST_SECRET_KEY not in record.getMessage() and "sk_***" in record.getMessage()


def test_exception_reports_hide_secrets_and_keys(settings):
    settings.DEBUG = True
    setting = ProviderSettingFactory()
    secret_key = setting.secret_key  # a local variable in the failing frame  # noqa: F841
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        reporter = ExceptionReporter(RequestFactory().get("/"), *sys.exc_info())
        html = reporter.get_traceback_html()
    assert TEST_SECRET_KEY not in html
    for key in settings.FIELD_ENCRYPTION_KEYS:
        assert key not in html


def _client(kind):
    if kind == "anonymous":
        return Client()
    user = User.objects.create_user(kind, password="pw-123456", is_staff=kind != "plain", is_superuser=kind == "superuser")
    if kind == "finance":
        user.groups.add(Group.objects.get(name="Finance"))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("kind", ["anonymous", "plain", "staff", "finance", "superuser"])
def test_permission_matrix(kind, fake_stripe):
    setting = ProviderSettingFactory()
    balance = BalanceFactory(provider_setting=setting)
    entry = PaymentEntryFactory()
    client = _client(kind)
    pages = {
        "provider settings": reverse("admin:providers_providersetting_changelist"),
        "provider setting": reverse("admin:providers_providersetting_change", args=[setting.pk]),
        "invoices": reverse("admin:billing_invoice_changelist"),
        "balances": reverse("admin:billing_balance_changelist"),
        "balance": reverse("admin:billing_balance_change", args=[balance.pk]),
        "payment entries": reverse("admin:billing_paymententry_changelist"),
        "webhook events": reverse("admin:webhooks_webhookevent_changelist"),
        "refund page": reverse("refunds:refund-balance", args=[balance.pk]),
    }
    allowed = {
        "anonymous": set(), "plain": set(), "staff": set(),
        "finance": {"invoices", "balances", "balance", "payment entries", "webhook events", "refund page"},
        "superuser": set(pages),
    }[kind]
    for name, url in pages.items():
        status = client.get(url).status_code
        if name in allowed:
            assert status == 200, (kind, name, status)
        else:
            assert status in (302, 403), (kind, name, status)
    api = {
        "invoice list": ("get", reverse("billing:invoice-list"), {"superuser", "finance"}),  # staff alone: no view_invoice
        "refund": ("post", reverse("refunds:api-refund-balance", args=[balance.pk]), {"superuser", "finance"}),
        "resolve entry": ("post", reverse("billing:resolve-entry", args=[entry.pk]), {"superuser", "finance"}),
    }
    for name, (method, url, who) in api.items():
        response = getattr(client, method)(url, {"amount": "1.00"} if name == "refund" else {}, content_type="application/json") \
            if method == "post" else client.get(url)
        if kind in who:
            assert response.status_code not in (401, 403), (kind, name, response.status_code)
        else:
            assert response.status_code in (401, 403), (kind, name, response.status_code)
    # Admin actions: replaying events and testing connections need change permissions.
    replay = client.post(reverse("admin:webhooks_webhookevent_changelist"), {"action": "replay", "_selected_action": []})
    assert replay.status_code in (200, 302, 403)


def test_payment_page_security_headers(client):
    ProviderSettingFactory()
    from payments.tokens import make_token

    invoice = InvoiceFactory()
    response = client.get(reverse("payments:pay", args=[make_token(invoice.pk)]))
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "https://js.stripe.com" in csp
    assert "unsafe-eval" not in csp and "*" not in csp.replace("*.js.stripe.com", "").replace("*.stripe.com", "")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "no-store"
