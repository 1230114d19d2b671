"""Offline demo payments: without internet Stripe.js cannot load, so the demo's payment page offers test
payments that the server confirms against the local Stripe stand-in (localstripe, see scripts/demo.py).

This plays the part Stripe.js plays in the browser (confirming the PaymentIntent with a test payment method);
everything after it is the normal path: the PaymentIntent is created by the checkout service, the books
follow from the stand-in's signed webhooks. It is refused unless the demo flag is on, the setting is in
test mode and the Stripe API base is on this machine, so it can never move real money.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from billing.models import Invoice
from payments.services.checkout import PaymentNotPossible, checkout_for, create_payment_for_invoice
from providers.stripe import gateway

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class TestMethod:
    key: str
    method_type: str
    label: str
    confirm_params: dict


TEST_METHODS = [
    TestMethod("card", "card", "Test card 4242 4242 4242 4242 (succeeds)", {"payment_method": "pm_card_visa"}),
    TestMethod("card_declined", "card", "Test card 4000 0000 0000 0341 (declined)", {"payment_method": "pm_card_chargeCustomerFail"}),
    TestMethod("sepa_debit", "sepa_debit", "SEPA test IBAN DE89 3704 0044 0532 0130 00 (succeeds after processing)",
               {"payment_method_data": {"type": "sepa_debit", "sepa_debit": {"iban": "DE89370400440532013000"}}}),
    TestMethod("sepa_debit_failing", "sepa_debit", "SEPA test IBAN DE62 3704 0044 0532 0130 01 (fails after processing)",
               {"payment_method_data": {"type": "sepa_debit", "sepa_debit": {"iban": "DE62370400440532013001"}}}),
]


def offline_demo_enabled(setting) -> bool:
    host = urlsplit(settings.STRIPE_API_BASE or "").hostname or ""
    return bool(settings.STRIPE_OFFLINE_DEMO and host in LOCAL_HOSTS and setting is not None and not setting.livemode)


def test_methods_for(method_types: list[str]) -> list[TestMethod]:
    return [method for method in TEST_METHODS if method.method_type in method_types]


def pay_offline(invoice: Invoice, *, method_key: str, save_for_future: bool, return_url: str) -> str:
    """Create the PaymentIntent (the normal service), then confirm it as Stripe.js would. Returns its id."""
    setting = checkout_for(invoice).setting
    if not offline_demo_enabled(setting):
        raise PaymentNotPossible("Offline test payments are not available here.")
    method = next((m for m in TEST_METHODS if m.key == method_key), None)
    if method is None:
        raise PaymentNotPossible("Choose one of the offered test payment methods.")
    intent = create_payment_for_invoice(invoice, method_type=method.method_type, save_for_future=save_for_future)
    params = dict(method.confirm_params)
    if "payment_method_data" in params:
        billing = {"name": invoice.account.name, **({"email": invoice.account.email} if invoice.account.email else {})}
        params["payment_method_data"] = {**params["payment_method_data"], "billing_details": billing}
        params["mandate_data"] = {"customer_acceptance": {"type": "offline"}}
    payment_intent_id = intent["payment_intent_id"]
    try:
        gateway.confirm_payment_intent(setting, payment_intent_id, idempotency_key=f"offline-confirm-{payment_intent_id}",
                                       return_url=return_url, **params)
    except gateway.PaymentDeclined:
        pass  # the return page tells the customer, as it does after Stripe.js
    return payment_intent_id
