"""The `stripe trigger`-like command sends correctly signed events to a live endpoint."""

from io import StringIO

import pytest
from django.core.management import call_command

from billing.models import Balance
from tests.factories import InvoiceFactory, ProviderSettingFactory
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_sends_a_signed_event_that_books_the_payment(live_server, settings):
    setting = ProviderSettingFactory()
    invoice = InvoiceFactory()
    settings.SITE_URL = live_server.url
    out = StringIO()
    call_command("send_test_webhook", "--setting", str(setting.pk), "--type", "charge.succeeded", "--invoice", str(invoice.pk), stdout=out)
    assert "HTTP 200" in out.getvalue()
    assert WebhookEvent.objects.get().type == "charge.succeeded"
    assert Balance.objects.get(invoice=invoice).amount == -invoice.amount
