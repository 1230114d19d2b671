"""A payment attempt that is replaced is cancelled at Stripe, outside the invoice's row lock; an invoice whose payment is
in flight or has succeeded (its webhook may not have arrived yet) is never charged a second time."""

import threading
import time

import pytest
from django.db import connections, transaction

from billing.models import Invoice
from payments.constants import AttemptStatus
from payments.models import PaymentAttempt
from providers.stripe import gateway
from tests.factories import InvoiceFactory, ProviderSettingFactory
from tests.payments.test_page import intent

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory(method_card=True, method_sepa_debit=True, method_alipay=True)


def live_payment_intents(fake_stripe) -> list[dict]:
    return [pi for pi in fake_stripe.objects.values() if pi.get("object") == "payment_intent" and pi["status"] != "canceled"]


def test_a_replaced_attempts_payment_intent_is_cancelled_at_stripe(client, setting, fake_stripe):
    invoice = InvoiceFactory()
    first = intent(client, invoice, "card").json()["paymentIntentId"]
    second = intent(client, invoice, "sepa_debit").json()["paymentIntentId"]
    assert first != second
    assert fake_stripe.objects[first]["status"] == "canceled"
    cancel = [r for r in fake_stripe.requests if r["path"] == f"/v1/payment_intents/{first}/cancel"]
    assert len(cancel) == 1 and cancel[0]["idempotency_key"] == f"cancel-pi-{invoice.pk}-1"
    replaced = PaymentAttempt.objects.get(payment_intent_id=first)
    assert replaced.status == AttemptStatus.CANCELED and not replaced.stripe_cancel_pending


def test_alternating_the_method_leaves_one_live_payment_intent(client, setting, fake_stripe):
    """The review created 30 live PaymentIntents in 30 POSTs; the replaced ones were only cancelled in the database."""
    invoice = InvoiceFactory()
    for round_ in range(10):
        assert intent(client, invoice, ("card", "sepa_debit", "alipay")[round_ % 3]).status_code == 200
    assert len(live_payment_intents(fake_stripe)) == 1
    assert PaymentAttempt.objects.filter(invoice=invoice, status=AttemptStatus.CREATED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_stripe_is_called_while_no_row_lock_is_held(client, setting, fake_stripe):
    invoice = InvoiceFactory()
    first = intent(client, invoice, "card").json()["paymentIntentId"]
    fake_stripe.inject("GET", f"/v1/payment_intents/{first}", delay=1.0)
    fake_stripe.inject("POST", f"/v1/payment_intents/{first}/cancel", delay=1.0)
    locked_during = {}

    def probe(path):
        deadline = time.monotonic() + 10
        while not any(r["path"] == path for r in fake_stripe.requests):
            if time.monotonic() > deadline:
                locked_during[path] = "never called"
                return
            time.sleep(0.02)
        try:  # while Stripe is answering, another transaction can take the invoice's lock at once
            with transaction.atomic():
                Invoice.objects.select_for_update(nowait=True).get(pk=invoice.pk)
            locked_during[path] = False
        except Exception as exc:  # noqa: BLE001 - any failure here means the row was locked
            locked_during[path] = repr(exc)
        finally:
            connections.close_all()

    probes = [threading.Thread(target=probe, args=(path,)) for path in (f"/v1/payment_intents/{first}", f"/v1/payment_intents/{first}/cancel")]
    for thread in probes:
        thread.start()
    assert intent(client, invoice, "sepa_debit").status_code == 200
    for thread in probes:
        thread.join(timeout=10)
    assert locked_during == {f"/v1/payment_intents/{first}": False, f"/v1/payment_intents/{first}/cancel": False}


@pytest.mark.parametrize("second_tab_method", ["sepa_debit", "card"])
def test_two_tabs_never_charge_one_invoice_twice(client, setting, fake_stripe, second_tab_method):
    """Tab 1 pays (its webhook has not arrived yet); tab 2 submits: refused with a sentence, nothing new at Stripe."""
    invoice = InvoiceFactory()
    first = intent(client, invoice, "card").json()["paymentIntentId"]
    gateway.confirm_payment_intent(setting, first, idempotency_key="tab-1", payment_method="pm_card_visa")
    response = intent(client, invoice, second_tab_method)
    assert response.status_code == 409
    assert "already been paid" in response.json()["error"]
    assert fake_stripe.count("POST", "/v1/payment_intents") == 2  # the first create and tab 1's confirm, nothing more
    assert fake_stripe.objects[first]["status"] == "succeeded"
    assert list(PaymentAttempt.objects.values_list("status", flat=True)) == [AttemptStatus.SUCCEEDED]
    # A third submit is refused from the database alone.
    requests_before = len(fake_stripe.requests)
    assert intent(client, invoice, "alipay").status_code == 409
    assert len(fake_stripe.requests) == requests_before


def test_a_processing_payment_in_another_tab_refuses_a_new_one(client, setting, fake_stripe):
    invoice = InvoiceFactory()
    first = intent(client, invoice, "sepa_debit").json()["paymentIntentId"]
    gateway.confirm_payment_intent(setting, first, idempotency_key="tab-1", payment_method="pm_sepa_debit")
    response = intent(client, invoice, "card")
    assert response.status_code == 409 and "already being processed" in response.json()["error"]
    assert fake_stripe.count("POST", "/v1/payment_intents") == 2
    assert PaymentAttempt.objects.get().status == AttemptStatus.PROCESSING


def test_a_cancel_refused_because_the_payment_went_through_meanwhile_refuses_the_new_submit(client, setting, fake_stripe):
    invoice = InvoiceFactory()
    first = intent(client, invoice, "card").json()["paymentIntentId"]
    stale = dict(fake_stripe.objects[first])  # what the re-read answers: tab 1 confirms right after it
    gateway.confirm_payment_intent(setting, first, idempotency_key="tab-1", payment_method="pm_card_visa")
    fake_stripe.inject("GET", f"/v1/payment_intents/{first}", status=200, body=stale)
    response = intent(client, invoice, "sepa_debit")
    assert response.status_code == 409 and "already been paid" in response.json()["error"]
    assert fake_stripe.count("POST", f"/v1/payment_intents/{first}/cancel") == 1
    assert fake_stripe.count("POST", "/v1/payment_intents") == 3  # create, confirm, the refused cancel
    assert list(PaymentAttempt.objects.values_list("status", flat=True)) == [AttemptStatus.SUCCEEDED]


def test_stripe_failing_to_cancel_does_not_break_the_new_attempt_and_the_beat_task_retries(client, setting, fake_stripe, caplog):
    from payments.tasks import cancel_replaced_payment_intents

    invoice = InvoiceFactory()
    first = intent(client, invoice, "card").json()["paymentIntentId"]
    fake_stripe.inject("POST", f"/v1/payment_intents/{first}/cancel", status=500, times=3)
    response = intent(client, invoice, "sepa_debit")
    assert response.status_code == 200
    replaced = PaymentAttempt.objects.get(payment_intent_id=first)
    assert replaced.status == AttemptStatus.CANCELED and replaced.stripe_cancel_pending
    assert fake_stripe.objects[first]["status"] == "requires_payment_method"
    assert any(first in record.getMessage() and record.levelname == "ERROR" for record in caplog.records)
    assert cancel_replaced_payment_intents.delay().get() == {"canceled": 1}
    assert fake_stripe.objects[first]["status"] == "canceled"
    replaced.refresh_from_db()
    assert not replaced.stripe_cancel_pending
    assert cancel_replaced_payment_intents.delay().get() == {}


def test_stripe_unreachable_for_the_re_read_refuses_and_writes_nothing(client, setting, fake_stripe):
    invoice = InvoiceFactory()
    first = intent(client, invoice, "card").json()["paymentIntentId"]
    fake_stripe.inject("GET", f"/v1/payment_intents/{first}", status=500, times=3)
    response = intent(client, invoice, "sepa_debit")
    assert response.status_code == 409 and "could not check" in response.json()["error"]
    assert list(PaymentAttempt.objects.values_list("status", flat=True)) == [AttemptStatus.CREATED]
    assert fake_stripe.count("POST", "/v1/payment_intents") == 1


def test_a_payment_intent_cancelled_elsewhere_frees_the_invoice_for_a_new_one(client, setting, fake_stripe):
    invoice = InvoiceFactory()
    first = intent(client, invoice, "card").json()["paymentIntentId"]
    gateway.cancel_payment_intent(setting, first, idempotency_key="dashboard")
    second = intent(client, invoice, "card")  # the same request would have reused the cancelled intent
    assert second.status_code == 200 and second.json()["paymentIntentId"] != first
    assert PaymentAttempt.objects.get(payment_intent_id=first).status == AttemptStatus.CANCELED


def test_a_cancel_refused_for_another_reason_is_retried_later(client, setting, fake_stripe):
    invoice = InvoiceFactory()
    first = intent(client, invoice, "card").json()["paymentIntentId"]
    fake_stripe.inject("POST", f"/v1/payment_intents/{first}/cancel", status=400,
                       body={"error": {"type": "invalid_request_error", "message": "Something unexpected."}})
    assert intent(client, invoice, "sepa_debit").status_code == 200
    assert fake_stripe.objects[first]["status"] == "requires_payment_method"
    assert PaymentAttempt.objects.get(payment_intent_id=first).stripe_cancel_pending


def test_an_intent_created_for_an_attempt_replaced_meanwhile_is_cancelled_at_once(setting, fake_stripe):
    """Tab A's create was still on its way to Stripe when tab B replaced its attempt."""
    from payments.services.checkout import PaymentNotPossible, record_payment_intent, start_attempt

    invoice = InvoiceFactory()
    attempt, _ = start_attempt(invoice, setting=setting, amount=invoice.amount, method_type="card", save=False)
    PaymentAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.CANCELED)  # tab B's replacement
    created = gateway.create_payment_intent(setting, amount=invoice.amount, currency="EUR", idempotency_key=attempt.idempotency_key,
                                            payment_method_types=["card"], metadata={}, description="x")
    with pytest.raises(PaymentNotPossible, match="another window"):
        record_payment_intent(attempt, created)
    assert fake_stripe.objects[created["id"]]["status"] == "canceled"
    attempt.refresh_from_db()
    assert attempt.payment_intent_id == created["id"] and not attempt.stripe_cancel_pending
