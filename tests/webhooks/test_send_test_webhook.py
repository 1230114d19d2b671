"""The `stripe trigger`-like command sends correctly signed events to a live endpoint."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

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


def test_pays_every_open_invoice_of_the_settings_entities_with_one_event_each(live_server, settings):
    """`--open-invoices` (what scripts/compose_scale_check.py sends to a scaled stack): one signed event per open invoice
    of the entities the setting serves, none for another entity's invoice or one already paid."""
    from billing.constants import InvoiceStatus
    from tests.factories import BusinessEntityFactory

    entity, other = BusinessEntityFactory(), BusinessEntityFactory()
    setting = ProviderSettingFactory()
    setting.business_entities.set([entity])
    mine = [InvoiceFactory(account__business_entity=entity) for _ in range(3)]
    InvoiceFactory(account__business_entity=other)
    settings.SITE_URL = live_server.url
    out = StringIO()
    call_command("send_test_webhook", "--setting", str(setting.pk), "--open-invoices", stdout=out)
    assert out.getvalue().count("HTTP 200") == 3
    assert WebhookEvent.objects.count() == 3
    for invoice in mine:
        assert Balance.objects.get(invoice=invoice).amount == -invoice.amount
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
    out = StringIO()
    with pytest.raises(CommandError, match="no open invoice"):
        call_command("send_test_webhook", "--setting", str(setting.pk), "--open-invoices", stdout=out)


def test_one_charge_id_cannot_pay_several_invoices():
    setting = ProviderSettingFactory()
    first, second = InvoiceFactory(), InvoiceFactory()
    with pytest.raises(CommandError, match="at most one invoice"):
        call_command("send_test_webhook", "--setting", str(setting.pk), "--invoice", str(first.pk), "--invoice", str(second.pk),
                     "--charge", "ch_same")
    assert not WebhookEvent.objects.exists()
