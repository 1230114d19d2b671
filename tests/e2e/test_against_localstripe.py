"""The product end to end against localstripe, an independent Stripe-compatible server (see tests/e2e/README.md).

Real processes: localstripe (with the adapter of devtools/localstripe_server.py), gunicorn, a Celery worker on
Redis, PostgreSQL. localstripe posts its own signed webhooks; nothing in the product is faked or patched.
"""

import uuid
from decimal import Decimal

import pytest
import requests

from tests.e2e.stack import SEPA_DELAY_SECONDS, csrf_from

pytestmark = [pytest.mark.services, pytest.mark.slow]

FAILING_IBAN = "DE62370400440532013001"  # localstripe and Stripe test mode: the debit fails after processing
GOOD_IBAN = "DE89370400440532013000"


def books_paid(stack, name, amount: str, *, status: str = "confirmed"):
    balances = stack.payment_balances(name)
    return (stack.invoice(name)["status"] == "paid" and len(balances) == 1 and balances[0]["amount"] == Decimal(amount)
            and balances[0]["status"] == status and balances[0])


def pay_by_card(stack, name: str, *, save_for_future: bool = False, payment_method: str = "pm_card_visa") -> str:
    intent = stack.start_payment(name, "card", save_for_future=save_for_future)
    confirmed = stack.confirm(intent["paymentIntentId"], payment_method, name)
    assert confirmed.status_code == 200, confirmed.text
    return intent["paymentIntentId"]


def test_card_payment_books_the_payment_and_pays_the_invoice(stack):
    payment_intent_id = pay_by_card(stack, "card")
    assert "succeeded" in stack.return_page("card", payment_intent_id)
    balance = stack.wait_for(lambda: books_paid(stack, "card", "-119.00"), what="the card payment to be booked")
    charge = stack.stripe("GET", f"/v1/payment_intents/{payment_intent_id}").json()["latest_charge"]
    assert balance["transaction_number"] == charge
    # payment_intent.succeeded and charge.succeeded both arrived (two workers, any order): still one balance.
    stack.wait_for(lambda: len(stack.rows("SELECT 1 FROM webhooks_webhookevent WHERE status = 'processed' AND payload LIKE %s",
                                          f"%{charge}%")) >= 2, what="both events of the payment")
    assert len(stack.payment_balances("card")) == 1
    attempt = stack.rows("SELECT status FROM payments_paymentattempt WHERE payment_intent_id = %s", payment_intent_id)
    assert attempt == [{"status": "succeeded"}]


def test_sepa_debit_that_fails_reopens_the_invoice(stack):
    intent = stack.start_payment("sepa_fail", "sepa_debit")
    method = stack.create_payment_method(**{"type": "sepa_debit", "sepa_debit[iban]": FAILING_IBAN,
                                            "billing_details[name]": "Kunde AG", "billing_details[email]": "kunde@example.com"})
    confirmed = stack.confirm(intent["paymentIntentId"], method, "sepa_fail")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "processing", confirmed.text
    assert "being processed" in stack.return_page("sepa_fail", intent["paymentIntentId"])
    # While the debit is processing the invoice counts as paid, with a pending balance...
    stack.wait_for(lambda: books_paid(stack, "sepa_fail", "-80.00", status="pending"), timeout=SEPA_DELAY_SECONDS + 10,
                   what="the pending SEPA balance")
    # ...then the bank refuses it: the balance is removed and the invoice is open again.
    stack.wait_for(lambda: not stack.payment_balances("sepa_fail") and stack.invoice("sepa_fail")["status"] == "open",
                   timeout=SEPA_DELAY_SECONDS + 30, what="the failed SEPA debit to be undone")
    transaction = stack.rows("SELECT status FROM payments_paymenttransaction WHERE payment_intent_id = %s", intent["paymentIntentId"])
    assert transaction == [{"status": "failed"}]


def test_sepa_debit_that_succeeds_confirms_the_pending_balance(stack):
    intent = stack.start_payment("sepa_ok", "sepa_debit")
    method = stack.create_payment_method(**{"type": "sepa_debit", "sepa_debit[iban]": GOOD_IBAN, "billing_details[name]": "Kunde AG"})
    assert stack.confirm(intent["paymentIntentId"], method, "sepa_ok").json()["status"] == "processing"
    stack.wait_for(lambda: books_paid(stack, "sepa_ok", "-60.00", status="pending"), timeout=SEPA_DELAY_SECONDS + 10,
                   what="the pending SEPA balance")
    stack.wait_for(lambda: books_paid(stack, "sepa_ok", "-60.00", status="confirmed"), timeout=SEPA_DELAY_SECONDS + 30,
                   what="the SEPA balance to be confirmed")


def test_saved_card_then_off_session_collection_from_the_admin(stack):
    pay_by_card(stack, "save", save_for_future=True)
    stack.wait_for(lambda: books_paid(stack, "save", "-30.00"), what="the first payment")
    instrument = stack.wait_for(lambda: stack.rows("SELECT * FROM payments_paymentinstrument WHERE active"),
                                what="the saved card")[0]
    assert instrument["method_type"] == "card" and instrument["last4"] == "4242"
    # The saved card is attached to the customer at Stripe (what off-session charging needs).
    method = stack.stripe("GET", f"/v1/payment_methods/{instrument['stripe_payment_method_id']}").json()
    assert method["customer"]

    session = stack_superuser_session(stack)
    changelist = f"{stack.web_url}/admin/billing/invoice/"
    page = session.get(changelist, timeout=30)
    response = session.post(changelist, data={"action": "collect_off_session_action", "_selected_action": stack.invoice("off_session")["id"],
                                              "csrfmiddlewaretoken": csrf_from(page.text)}, headers={"Referer": changelist}, timeout=60)
    assert response.status_code == 200 and "E2E-off_session: succeeded" in response.text, response.text[-2000:]
    stack.wait_for(lambda: books_paid(stack, "off_session", "-45.50"), what="the off-session payment to be booked")
    attempt = stack.rows("SELECT source, status FROM payments_paymentattempt WHERE invoice_id = %s", stack.invoice("off_session")["id"])
    assert attempt == [{"source": "off_session", "status": "succeeded"}]


def stack_superuser_session(stack):
    stack.manage("shell", "-c", "from django.contrib.auth.models import User\n"
                                "User.objects.filter(username='admin-e2e').exists() or "
                                "User.objects.create_superuser('admin-e2e', 'a@example.com', 'admin-e2e-pass')")
    return stack.admin_session("admin-e2e", "admin-e2e-pass")


def test_refund_through_the_api_splits_and_locks_and_refunds_at_stripe(stack):
    payment_intent_id = pay_by_card(stack, "refund")
    balance = stack.wait_for(lambda: books_paid(stack, "refund", "-200.00"), what="the payment to refund")
    key = str(uuid.uuid4())
    response = stack.api("POST", f"/api/balances/{balance['id']}/refund/", json={"amount": "50.00"}, headers={"Idempotency-Key": key})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "succeeded" and body["stripe_refund_id"].startswith("re_")
    # A double click (same key) does not refund twice.
    again = stack.api("POST", f"/api/balances/{balance['id']}/refund/", json={"amount": "50.00"}, headers={"Idempotency-Key": key})
    assert again.status_code in (200, 201) and again.json()["stripe_refund_id"] == body["stripe_refund_id"], again.text

    charge = stack.stripe("GET", f"/v1/payment_intents/{payment_intent_id}").json()["latest_charge"]
    refunds = stack.stripe("GET", "/v1/refunds", {"charge": charge}).json()["data"]
    assert [(r["id"], r["amount"]) for r in refunds] == [(body["stripe_refund_id"], 5000)]
    # SPEC §8 partial refund of a single balance: -150 open, -50 locked, +50 refund locked; the books balance.
    def books():
        return sorted((row["type"], row["amount"], row["locked"])
                      for row in stack.rows("SELECT * FROM billing_balance WHERE transaction_number = %s", charge))

    rows = books()
    assert rows == sorted([("payment", Decimal("-150.00"), False), ("payment", Decimal("-50.00"), True),
                           ("refund", Decimal("50.00"), True)])
    # localstripe's refund.created / charge.refunded events arrive later and change nothing.
    stack.wait_for(lambda: len(stack.rows("SELECT 1 FROM webhooks_webhookevent WHERE type IN ('refund.created', 'charge.refunded') "
                                          "AND status = 'processed' AND payload LIKE %s", f"%{charge}%")) >= 2,
                   what="the refund events to be processed")
    assert books() == rows

    # More than what is left is refused by the service before Stripe is asked.
    too_much = stack.api("POST", f"/api/balances/{balance['id']}/refund/", json={"amount": "500.00"})
    assert too_much.status_code == 400 and too_much.json()["detail"], too_much.text
    assert len(stack.stripe("GET", "/v1/refunds", {"charge": charge}).json()["data"]) == 1


def test_declined_card_books_nothing(stack):
    intent = stack.start_payment("declined", "card")
    declined = stack.confirm(intent["paymentIntentId"], "pm_card_chargeCustomerFail", "declined")
    assert declined.status_code == 402 and declined.json()["error"]["code"] == "card_declined"
    assert "did not go through" in stack.return_page("declined", intent["paymentIntentId"])
    stack.wait_for(lambda: stack.rows("SELECT status FROM payments_paymenttransaction WHERE payment_intent_id = %s",
                                      intent["paymentIntentId"]) == [{"status": "failed"}], what="the failed charge")
    assert stack.payment_balances("declined") == [] and stack.invoice("declined")["status"] == "open"
    # The customer may try again with another card: a new attempt, and this time it is paid.
    retry = stack.start_payment("declined", "card")
    assert stack.confirm(retry["paymentIntentId"], "pm_card_visa", "declined").status_code == 200
    stack.wait_for(lambda: books_paid(stack, "declined", "-75.00"), what="the retried payment")


def test_zero_decimal_currency(stack):
    payment_intent_id = pay_by_card(stack, "jpy")
    assert stack.stripe("GET", f"/v1/payment_intents/{payment_intent_id}").json()["amount"] == 5000  # yen have no minor unit
    stack.wait_for(lambda: books_paid(stack, "jpy", "-5000.00"), what="the JPY payment")


def test_offline_demo_payment_page(stack):
    """What `make run` offers without internet: the page's offline test payment, then the normal path."""
    browser = requests.Session()
    page = browser.get(stack.pay_url("offline"), timeout=30)
    assert "Offline test payment" in page.text and "js.stripe.com" not in page.text
    response = browser.post(stack.pay_url("offline") + "offline-test-payment/", data={
        "method": "card", "csrfmiddlewaretoken": csrf_from(page.text)}, headers={"Referer": stack.pay_url("offline")}, timeout=60)
    assert response.status_code == 200 and "succeeded" in response.text, response.text[-1500:]
    stack.wait_for(lambda: books_paid(stack, "offline", "-19.99"), what="the offline demo payment")


def test_webhook_deliveries_all_verified(stack):
    """Every event localstripe delivered was accepted (signature, livemode, size) and none failed processing."""
    statuses = {row["status"]: row["n"] for row in stack.rows("SELECT status, count(*) AS n FROM webhooks_webhookevent GROUP BY status")}
    if not statuses:
        pytest.skip("runs after the payment scenarios (nothing was delivered yet)")
    assert statuses.get("failed", 0) == 0 and statuses.get("processed", 0) > 0, statuses
    localstripe_log = (stack.logs / "localstripe.log").read_text()
    assert "successfully delivered" in localstripe_log and "failed with response code" not in localstripe_log
