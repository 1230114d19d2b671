"""Random interleavings with duplicates of many payments' events give the books of the in-order replay;
two workers processing events of one charge at once book it once."""

import threading
from decimal import Decimal
from functools import partial

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Balance
from tests.factories import InvoiceFactory
from tests.helpers import make_event, post_event, run_at_once
from webhooks import services
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


def process_at_once(event_ids) -> list[Exception]:
    """Process each event on its own thread (and database connection), all released at the same instant, as
    concurrent workers would; returns the errors raised."""
    return run_at_once(*(partial(services.process_event, event_id) for event_id in event_ids))


def books_by_role(invoices):
    result = {}
    for role, invoice in invoices.items():
        invoice.refresh_from_db()
        result[role] = (invoice.status, tuple(sorted((b.type, b.amount, b.status, b.locked) for b in Balance.objects.filter(account=invoice.account))))
    return result


def run_scenario(pay, fake_stripe, tag):
    """Three payments: a card paid and partly refunded in the Dashboard, a SEPA debit that succeeds, one that fails."""
    invoices = {"card": InvoiceFactory(), "sepa_ok": InvoiceFactory(), "sepa_fail": InvoiceFactory()}
    card = pay(invoices["card"], key=f"{tag}-card")
    fake_stripe.create_dashboard_refund(card["latest_charge"], 3000)
    ok = pay(invoices["sepa_ok"], "pm_sepa_debit", key=f"{tag}-ok")
    fail = pay(invoices["sepa_fail"], "pm_sepa_debit_fail", key=f"{tag}-fail")
    fake_stripe.settle_charge(ok["latest_charge"], succeed=True)
    fake_stripe.settle_charge(fail["latest_charge"], succeed=False)
    return invoices, fake_stripe.events_of()


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_interleavings_with_duplicates_match_the_in_order_replay(setting, pay, deliver_all, fake_stripe, data):
    fake_stripe.reset()
    reference_invoices, reference_events = run_scenario(pay, fake_stripe, "reference")
    deliver_all(reference_events)
    expected = books_by_role(reference_invoices)

    fake_stripe.reset()
    invoices, events = run_scenario(pay, fake_stripe, f"shuffled-{data.draw(st.integers(0, 10**9))}")
    order = data.draw(st.permutations(events))
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=6))
    positions = data.draw(st.lists(st.integers(0, len(order)), min_size=len(duplicates), max_size=len(duplicates)))
    delivery = list(order)
    for event, position in zip(duplicates, positions, strict=True):
        delivery.insert(position, event)
    deliver_all(delivery)
    assert books_by_role(invoices) == expected
    assert expected["sepa_fail"][1] == ()
    assert expected["card"][0] == "paid"


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_workers_processing_one_charges_events_at_once_book_one_balance(setting, invoice, pay, client, fake_stripe,
                                                                          celery_conf):
    pi = pay(invoice)
    celery_conf(task_always_eager=False, broker_url="redis://127.0.0.1:6390/0")  # keep the events in the inbox
    for event in fake_stripe.events_of("charge.succeeded", "payment_intent.succeeded"):
        assert post_event(client, setting, event).status_code == 200
    event_ids = list(WebhookEvent.objects.values_list("id", flat=True))
    assert len(event_ids) == 2
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"received"}
    assert process_at_once(event_ids) == []
    balance = Balance.objects.get()
    assert (balance.amount, balance.transaction_number) == (Decimal("-100.00"), pi["latest_charge"])


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_one_event_at_the_same_instant_store_it_once(setting, client, fake_stripe):
    from django.test import Client

    event = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    barrier = threading.Barrier(2)
    statuses = []

    def deliver():
        barrier.wait()
        statuses.append(post_event(Client(), setting, event).status_code)
        connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200]
    assert WebhookEvent.objects.count() == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_events_of_one_dashboard_refund_processed_at_once_refund_once(setting, invoice, client, celery_conf):
    """charge.refunded and refund.created of the same Dashboard refund, on two workers at the same instant: one
    refund request, one refund balance (the charge's lock serialises them; the second finds the request)."""
    from refunds.models import RefundRequest
    from tests.helpers import make_charge

    charge = make_charge(amount=10000, metadata={"invoice_id": str(invoice.pk)})
    refund = {"id": "re_dash1", "object": "refund", "amount": 4000, "currency": "eur", "charge": charge["id"], "status": "succeeded",
              "created": 1_700_000_900, "metadata": {}}
    celery_conf(task_always_eager=False, broker_url="redis://127.0.0.1:6390/0")  # keep the events in the inbox
    assert post_event(client, setting, make_event("charge.succeeded", charge)).status_code == 200
    services.process_event(WebhookEvent.objects.get().pk)
    refunded = {**charge, "amount_refunded": 4000, "refunds": {"object": "list", "data": [refund], "has_more": False}}
    for event in (make_event("charge.refunded", refunded, api_version="2019-02-19"), make_event("refund.created", {**refund, "charge": refunded})):
        assert post_event(client, setting, event).status_code == 200
    event_ids = list(WebhookEvent.objects.filter(status="received").values_list("id", flat=True))
    assert len(event_ids) == 2
    assert process_at_once(event_ids) == []
    assert RefundRequest.objects.count() == 1
    refunds = Balance.objects.filter(type="refund")
    assert [balance.amount for balance in refunds] == [Decimal("40.00")]
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_payments_of_one_invoice_processed_at_once_never_link_more_than_it_is_open(setting, client, celery_conf):
    """Two charges of 60.00 for an invoice of 100.00 on two workers at the same instant: the second to lock the
    invoice sees the first's balance (its open-amount SUM runs after the lock), links 40.00 and books 20.00 unlinked."""
    from billing.constants import InvoiceStatus
    from tests.helpers import make_charge

    invoice = InvoiceFactory(amount=Decimal("100.00"), currency="EUR")
    celery_conf(task_always_eager=False, broker_url="redis://127.0.0.1:6390/0")  # keep the events in the inbox
    for _ in range(2):
        charge = make_charge(amount=6000, metadata={"invoice_id": str(invoice.pk)})
        assert post_event(client, setting, make_event("charge.succeeded", charge)).status_code == 200
    event_ids = list(WebhookEvent.objects.values_list("id", flat=True))
    assert process_at_once(event_ids) == []
    linked = sorted(balance.amount for balance in Balance.objects.filter(invoice=invoice))
    unlinked = [balance.amount for balance in Balance.objects.filter(invoice=None)]
    assert linked == [Decimal("-60.00"), Decimal("-40.00")]
    assert unlinked == [Decimal("-20.00")]
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
