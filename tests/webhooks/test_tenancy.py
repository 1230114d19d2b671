"""Tenancy (SPEC §7): an event may only touch the books of the business entities its setting serves, in its own mode.

An invoice named in metadata outside that scope is not matched: the money becomes an open `foreign_invoice` entry and
a warning is logged.
"""

import logging
from decimal import Decimal

import pytest

from billing.constants import InvoiceStatus, PaymentEntryKind
from billing.models import Balance, PaymentEntry
from tests.factories import BusinessEntityFactory, InvoiceFactory, ProviderSettingFactory
from tests.helpers import deliver, make_charge, make_event

pytestmark = pytest.mark.django_db
LIVE = {"publishable_key": "pk_live_FAKE_only", "secrets__secret_key": "sk_live_FAKE_key"}


def pay_through(client, setting, invoice, capture, *, livemode=False):
    charge = make_charge(metadata={"invoice_id": str(invoice.pk)})
    charge["livemode"] = livemode
    deliver(client, setting, make_event("charge.succeeded", charge, livemode=livemode), capture)
    return charge


def test_a_setting_cannot_pay_another_entitys_invoice(client, fake_stripe, django_capture_on_commit_callbacks, caplog):
    entity_a, entity_b = BusinessEntityFactory(), BusinessEntityFactory()
    setting_a = ProviderSettingFactory(business_entities=[entity_a])
    ProviderSettingFactory(business_entities=[entity_b])
    invoice_b = InvoiceFactory(account__business_entity=entity_b)
    with caplog.at_level(logging.WARNING):
        charge = pay_through(client, setting_a, invoice_b, django_capture_on_commit_callbacks)
    invoice_b.refresh_from_db()
    assert invoice_b.status == InvoiceStatus.OPEN and not Balance.objects.exists()
    entry = PaymentEntry.objects.get()
    assert (entry.kind, entry.transaction_number, entry.amount, entry.invoice, entry.account) == (
        PaymentEntryKind.FOREIGN_INVOICE, charge["id"], Decimal("-100.00"), None, None)
    assert any("does not serve" in record.getMessage() for record in caplog.records)


def test_a_default_setting_serves_only_entities_without_their_own(client, fake_stripe, django_capture_on_commit_callbacks):
    own, other = BusinessEntityFactory(), BusinessEntityFactory()
    default = ProviderSettingFactory()
    ProviderSettingFactory(business_entities=[own])
    served = InvoiceFactory(account__business_entity=other)
    not_served = InvoiceFactory(account__business_entity=own)
    pay_through(client, default, served, django_capture_on_commit_callbacks)
    pay_through(client, default, not_served, django_capture_on_commit_callbacks)
    served.refresh_from_db(), not_served.refresh_from_db()
    assert (served.status, not_served.status) == (InvoiceStatus.PAID, InvoiceStatus.OPEN)
    assert PaymentEntry.objects.get().kind == PaymentEntryKind.FOREIGN_INVOICE


def test_a_test_mode_event_never_pays_a_live_invoice(client, fake_stripe, django_capture_on_commit_callbacks):
    entity = BusinessEntityFactory()
    ProviderSettingFactory(business_entities=[entity], **LIVE)  # the entity is served live now
    old_test_setting = ProviderSettingFactory(business_entities=[entity], active=False)  # its test setting, kept for late events
    invoice = InvoiceFactory(account__business_entity=entity)
    pay_through(client, old_test_setting, invoice, django_capture_on_commit_callbacks)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN and not Balance.objects.exists()
    assert PaymentEntry.objects.get().kind == PaymentEntryKind.FOREIGN_INVOICE


def test_an_inactive_setting_still_books_for_its_own_entity(client, fake_stripe, django_capture_on_commit_callbacks):
    """Inactive means no new payments; late events (a SEPA outcome) of its entity's invoices are still booked."""
    entity = BusinessEntityFactory()
    inactive = ProviderSettingFactory(business_entities=[entity], active=False)
    invoice = InvoiceFactory(account__business_entity=entity)
    pay_through(client, inactive, invoice, django_capture_on_commit_callbacks)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
