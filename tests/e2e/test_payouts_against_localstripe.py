"""Payouts end to end against localstripe (SPEC §12): the day's payments reach the bank in one automatic payout,
whose `payout.paid` / `payout.reconciliation_completed` webhooks make the worker list its balance transactions
from localstripe and reconcile them against the books. Runs after test_against_localstripe.py in the same stack:
its earlier payments are in the payout too, and must all be explained."""

import uuid
from decimal import Decimal

import pytest
import requests

from tests.e2e.stack import SEPA_DELAY_SECONDS
from tests.e2e.test_against_localstripe import GOOD_IBAN, books_paid, pay_by_card

pytestmark = [pytest.mark.services, pytest.mark.slow]


def settled_payout(stack, payout_id: str) -> dict:
    return stack.wait_for(lambda: next(iter(stack.rows("SELECT * FROM payments_payout WHERE stripe_payout_id = %s AND status IN "
                                                       "('reconciled', 'mismatched')", payout_id)), None),
                          timeout=60, what=f"payout {payout_id} to be reconciled")


def test_a_days_card_and_sepa_payments_and_a_refund_reach_the_bank_in_one_reconciled_payout(stack):
    payment_intent_id = pay_by_card(stack, "payout_card")
    balance = stack.wait_for(lambda: books_paid(stack, "payout_card", "-300.00"), what="the card payment")
    intent = stack.start_payment("payout_sepa", "sepa_debit")
    method = stack.create_payment_method(**{"type": "sepa_debit", "sepa_debit[iban]": GOOD_IBAN, "billing_details[name]": "Kunde AG"})
    assert stack.confirm(intent["paymentIntentId"], method, "payout_sepa").json()["status"] == "processing"
    stack.wait_for(lambda: books_paid(stack, "payout_sepa", "-150.00"), timeout=SEPA_DELAY_SECONDS + 30, what="the SEPA payment")
    refund = stack.api("POST", f"/api/balances/{balance['id']}/refund/", json={"amount": "40.00"},
                       headers={"Idempotency-Key": str(uuid.uuid4())})
    assert refund.status_code == 201, refund.text

    payout = settled_payout(stack, stack.run_payout()["id"])

    assert (payout["status"], payout["differences"]) == ("reconciled", [])
    assert payout["automatic"] and payout["stripe_status"] == "paid"
    lines = stack.rows("SELECT * FROM payments_payoutline WHERE payout_id = %s", payout["id"])
    card_charge = stack.stripe("GET", f"/v1/payment_intents/{payment_intent_id}").json()["latest_charge"]
    sepa_charge = stack.stripe("GET", f"/v1/payment_intents/{intent['paymentIntentId']}").json()["latest_charge"]
    by_source = {line["source_id"]: line for line in lines}
    assert (by_source[card_charge]["gross"], by_source[card_charge]["fee"]) == (Decimal("300.00"), Decimal("4.75"))  # 1.5 % + 0.25
    assert (by_source[sepa_charge]["type"], by_source[sepa_charge]["fee"]) == ("payment", Decimal("0.35"))
    assert by_source[refund.json()["stripe_refund_id"]]["gross"] == Decimal("-40.00")
    assert all(line["matched"] for line in lines), [line["note"] for line in lines if not line["matched"]]
    assert sum(line["net"] for line in lines if line["kind"] != "payout") == payout["amount"]
    fees = stack.rows("SELECT SUM(amount) AS total FROM payments_stripefee WHERE payout_id = %s", payout["id"])[0]["total"]
    assert fees == payout["fees_total"] > 0


def test_a_charge_the_books_never_heard_of_makes_the_payout_mismatched_naming_it(stack):
    response = requests.post(f"{stack.stripe_url}/_config/charges/unannounced", data={"amount": "1234"}, timeout=30)
    assert response.status_code == 200, response.text
    stranger = response.json()["id"]

    payout = settled_payout(stack, stack.run_payout()["id"])

    assert payout["status"] == "mismatched"
    assert [(d["kind"], d["object_id"], d["expected"]) for d in payout["differences"]] == [("unknown_charge", stranger, "12.34 EUR")]
