"""Payload shapes seen in the wild (SPEC §3, §7): odd currencies, older API versions, authorizations, legacy Sources.

Money that Stripe reports in a shape the books cannot take still becomes an open PaymentEntry, never a failed event.
"""

from decimal import Decimal

import pytest

from billing.constants import BalanceStatus, BalanceType, InvoiceStatus, PaymentEntryKind
from billing.models import Balance, PaymentEntry
from payments.constants import TransactionStatus
from payments.models import PaymentTransaction
from refunds.models import RefundRequest
from tests.factories import InvoiceFactory
from tests.helpers import make_charge, make_event
from webhooks.models import EventStatus, WebhookEvent

pytestmark = pytest.mark.django_db


def charge_for(invoice, **fields) -> dict:
    return make_charge(metadata={"invoice_id": str(invoice.pk)}, currency=invoice.currency.lower(), **fields)


@pytest.mark.parametrize("currency, minor, amount", [("HUF", 12345, "123.45"), ("TWD", 99, "0.99")])
def test_a_two_decimal_huf_or_twd_charge_is_booked(setting, deliver_all, currency, minor, amount):
    invoice = InvoiceFactory(amount=Decimal(amount), currency=currency)
    deliver_all([make_event("charge.succeeded", charge_for(invoice, amount=minor))])
    balance = Balance.objects.get()
    assert (balance.amount, balance.currency, balance.invoice) == (-Decimal(amount), currency, invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert WebhookEvent.objects.get().status == EventStatus.PROCESSED


def test_an_amount_the_books_cannot_take_becomes_an_entry_never_a_failed_event(setting, deliver_all):
    invoice = InvoiceFactory(amount=Decimal("750"), currency="ISK")
    deliver_all([make_event("charge.succeeded", charge_for(invoice, amount=75050))])  # 750.50 ISK: ISK has no fractions
    entry = PaymentEntry.objects.get()
    assert (entry.kind, entry.amount, entry.currency, entry.status) == (PaymentEntryKind.UNUSABLE_AMOUNT, Decimal("-750.50"), "ISK", "open")
    assert not Balance.objects.exists()
    assert WebhookEvent.objects.get().status == EventStatus.PROCESSED


def test_a_charge_without_status_takes_its_state_from_the_event_type(setting, deliver_all):
    """API versions before 2015 have no `status` on a Charge: a charge.failed is a failure, never booked as pending."""
    invoice = InvoiceFactory()
    failed = charge_for(invoice, status="failed")
    del failed["status"]
    deliver_all([make_event("charge.failed", failed, api_version="2014-03-28")])
    assert PaymentTransaction.objects.get().status == TransactionStatus.FAILED
    assert not Balance.objects.exists()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN

    other = InvoiceFactory()
    paid = charge_for(other, status="succeeded")
    del paid["status"]
    deliver_all([make_event("charge.succeeded", paid, api_version="2014-03-28")])
    assert Balance.objects.get().status == BalanceStatus.CONFIRMED


def test_embedded_refunds_without_an_id_are_booked_once_each(setting, deliver_all, fake_stripe):
    invoice = InvoiceFactory()
    refunds = [{"object": "refund", "amount": 1000, "currency": "eur", "created": 1_700_000_100, "status": "succeeded", "metadata": {}},
               {"object": "refund", "amount": 2500, "currency": "eur", "created": 1_700_000_200, "status": "succeeded", "metadata": {}}]
    charge = charge_for(invoice, refunds=refunds)
    event = make_event("charge.refunded", charge, api_version="2014-03-28")
    deliver_all([event, make_event("charge.refunded", charge, api_version="2014-03-28")])  # redelivered as another event
    assert sorted(Balance.objects.filter(type=BalanceType.REFUND).values_list("amount", flat=True)) == [Decimal("10.000"),
                                                                                                          Decimal("25.000")]
    assert RefundRequest.objects.count() == 2
    assert fake_stripe.requests == []


def test_an_uncaptured_charge_is_no_money_until_captured_and_void_when_it_expires(setting, deliver_all):
    invoice = InvoiceFactory()
    authorization = charge_for(invoice, status="succeeded")
    authorization["captured"] = False
    deliver_all([make_event("charge.succeeded", authorization)])
    assert not Balance.objects.exists() and PaymentTransaction.objects.get().status == TransactionStatus.AUTHORIZED
    deliver_all([make_event("charge.captured", {**authorization, "captured": True})])
    assert Balance.objects.get().amount == Decimal("-100.000")
    assert PaymentTransaction.objects.get().status == TransactionStatus.SUCCEEDED

    other = InvoiceFactory()
    held = {**charge_for(other, status="succeeded"), "captured": False}
    deliver_all([make_event("charge.expired", {**held, "refunded": True}), make_event("charge.succeeded", held)])
    assert PaymentTransaction.objects.get(charge_id=held["id"]).status == TransactionStatus.VOID
    assert not Balance.objects.filter(transaction_number=held["id"]).exists()
    other.refresh_from_db()
    assert other.status == InvoiceStatus.OPEN


@pytest.mark.parametrize("source_fields, reason", [
    ({"amount": None}, "without an amount"),
    ({"metadata": {}}, "did not create"),
])
def test_source_chargeable_charges_only_our_sources_with_an_amount(setting, deliver_all, fake_stripe, source_fields, reason):
    invoice = InvoiceFactory()
    source = fake_stripe.add_source(amount=10000, metadata={"invoice_id": str(invoice.pk), "provider_setting_id": str(setting.pk)})
    deliver_all([make_event("source.chargeable", {**source, **source_fields})])
    event = WebhookEvent.objects.get()
    assert event.status == EventStatus.IGNORED and reason in event.last_error
    assert fake_stripe.count("POST", "/v1/charges") == 0


def test_source_chargeable_of_our_source_is_charged_once(setting, deliver_all, fake_stripe):
    invoice = InvoiceFactory()
    source = fake_stripe.add_source(amount=10000, metadata={"invoice_id": str(invoice.pk), "provider_setting_id": str(setting.pk)})
    event = make_event("source.chargeable", source)
    deliver_all([event, make_event("source.chargeable", source)])
    assert fake_stripe.count("POST", "/v1/charges") == 2  # the same idempotency key: Stripe makes one charge
    assert len({o["id"] for o in fake_stripe.objects.values() if o.get("object") == "charge"}) == 1


@pytest.mark.parametrize("amount, currency", [(10**12, "EURO"), (-5, "eur"), (0, "eur"), (10**12, "jpy")])
def test_an_amount_or_currency_no_charge_can_have_is_held_never_an_error(setting, deliver_all, amount, currency):
    """Found by the bad-input fuzz test: a four-letter currency broke the event's transaction (the charge's row keeps a
    3-letter code); a negative amount was booked against itself. Both are held as Stripe reported them."""
    invoice = InvoiceFactory()
    deliver_all([make_event("charge.succeeded", {**charge_for(invoice), "amount": amount, "currency": currency})])
    assert WebhookEvent.objects.get().status == EventStatus.PROCESSED
    if amount > 0 and currency == "jpy":
        return  # 10^12 JPY is money the books can take (on the EUR invoice: another currency)
    assert not Balance.objects.exists()
    assert PaymentEntry.objects.get().kind == PaymentEntryKind.UNUSABLE_AMOUNT
