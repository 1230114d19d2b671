"""The hosted payment page: clear pages, the future-payments truth table, deferred intents, return page, CSP."""

import json
import time
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.constants import InvoiceStatus
from payments.constants import AttemptStatus
from payments.models import PaymentAttempt, StripeCustomer
from payments.tokens import PAY, SAVE_METHOD, TokenError, make_token, read_token
from tests.factories import BalanceFactory, CreditNoteFactory, InvoiceFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory(method_card=True, method_sepa_debit=True, method_alipay=True)


def pay_url(invoice):
    return reverse("payments:pay", args=[make_token(invoice.pk)])


def intent(client, invoice, method="card", save=False):
    return client.post(reverse("payments:create-intent", args=[make_token(invoice.pk)]),
                       data=json.dumps({"method_type": method, "save_for_future": save}), content_type="application/json")


def test_token_is_opaque_expiring_and_purpose_bound():
    token = make_token(4242)
    assert "4242" not in token and read_token(token) == 4242
    with pytest.raises(TokenError, match="not valid"):
        read_token(token[:-3] + "abc")
    with pytest.raises(TokenError, match="not valid"):
        read_token(token, purpose=SAVE_METHOD)
    old = make_token(4242, now=int(time.time()) - 10_000)
    with pytest.raises(TokenError, match="expired"):
        read_token(old, purpose=PAY, max_age=60)


def test_page_shows_invoice_and_payment_element_config_without_calling_stripe(client, setting, fake_stripe):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    response = client.get(pay_url(invoice))
    assert response.status_code == 200
    text = response.content.decode()
    assert invoice.number in text and "€100.00" in text and invoice.business_entity.public_name in text
    config = json.loads(text.split('id="payment-config" type="application/json">')[1].split("</script>")[0])
    assert config["amount"] == 10000 and config["currency"] == "eur"
    assert config["paymentMethodTypes"] == ["card", "sepa_debit", "alipay"]
    assert fake_stripe.requests == []  # deferred intent: nothing created on page view
    csp = response["Content-Security-Policy"]
    assert "https://js.stripe.com" in csp and "frame-src https://js.stripe.com" in csp and "https://api.stripe.com" in csp


def test_german_amount_format(client, setting):
    invoice = InvoiceFactory(amount=Decimal("1234.50"))
    response = client.get(pay_url(invoice), HTTP_ACCEPT_LANGUAGE="de")
    assert "1.234,50\u00a0€" in response.content.decode()


def test_sepa_is_offered_for_eur_only(client, setting):
    invoice = InvoiceFactory(currency="USD")
    text = client.get(pay_url(invoice)).content.decode()
    assert '"sepa_debit"' not in text
    assert intent(client, invoice, "sepa_debit").status_code == 409


@pytest.mark.parametrize("invoice_kwargs, message", [
    ({"paid": True}, "already paid"),
    ({"status": InvoiceStatus.CANCELLED}, "cancelled"),
    ({"status": InvoiceStatus.DRAFT}, "not issued yet"),
    ({"payment_reference": "12345"}, "cannot be paid online"),
])
def test_clear_pages_and_never_a_payment_intent(client, setting, fake_stripe, invoice_kwargs, message):
    paid = invoice_kwargs.pop("paid", False)
    invoice = InvoiceFactory(**invoice_kwargs)
    if paid:  # paid by a payment received outside Stripe, as the ledger books it
        BalanceFactory(invoice=invoice, account=invoice.account, amount=-invoice.amount)
        invoice.refresh_from_db()
    response = client.get(pay_url(invoice))
    assert response.status_code == 200 and message in response.content.decode()
    assert intent(client, invoice).status_code == 409
    assert fake_stripe.requests == [] and not PaymentAttempt.objects.exists()


def test_credit_note_no_setting_and_bad_tokens(client, fake_stripe):
    credit = CreditNoteFactory()
    assert "credit note" in client.get(pay_url(credit)).content.decode()
    invoice = InvoiceFactory()
    assert "cannot be paid online" in client.get(pay_url(invoice)).content.decode()  # no Stripe setting at all
    assert client.get(reverse("payments:pay", args=["garbage"])).status_code == 400
    expired = make_token(invoice.pk, now=int(time.time()) - 10**8)
    assert client.get(reverse("payments:pay", args=[expired])).status_code == 410
    assert fake_stripe.requests == []


def test_card_payment_intent_created_on_submit_with_metadata_and_idempotency(client, setting, fake_stripe):
    invoice = InvoiceFactory(amount=Decimal("80.00"))
    response = intent(client, invoice)
    assert response.status_code == 200
    body = response.json()
    pi = fake_stripe.objects[body["paymentIntentId"]]
    assert body["clientSecret"] == pi["client_secret"]
    assert (pi["amount"], pi["currency"], pi["payment_method_types"], pi["description"]) == (8000, "eur", ["card"], invoice.payment_reference)
    assert pi["metadata"]["invoice_id"] == str(invoice.pk) and pi["metadata"]["provider_setting_id"] == str(setting.pk)
    assert pi["metadata"]["invoice_number"] == invoice.number and pi["metadata"]["account_id"] == str(invoice.account_id)
    assert fake_stripe.requests[-1]["idempotency_key"] == f"pi-{invoice.pk}-1"
    assert pi["setup_future_usage"] is None


def test_double_submit_reuses_the_in_flight_payment_intent(client, setting, fake_stripe):
    invoice = InvoiceFactory()
    first, second = intent(client, invoice).json(), intent(client, invoice).json()
    assert first["paymentIntentId"] == second["paymentIntentId"]
    assert fake_stripe.count("POST", "/v1/payment_intents") == 1
    assert PaymentAttempt.objects.count() == 1


def test_processing_attempt_blocks_a_second_payment(client, setting, fake_stripe):
    invoice = InvoiceFactory()
    intent(client, invoice)
    PaymentAttempt.objects.update(status=AttemptStatus.PROCESSING)
    response = intent(client, invoice, "sepa_debit")
    assert response.status_code == 409 and "already being processed" in response.json()["error"]


def test_amount_below_stripe_minimum_is_refused(client, setting, fake_stripe):
    invoice = InvoiceFactory(amount=Decimal("0.30"))
    response = intent(client, invoice)
    assert response.status_code == 409 and "minimum" in response.json()["error"]
    assert fake_stripe.requests == []


@pytest.mark.parametrize("enable, active, changeable, requested, method, shown, saved", [
    (False, True, True, True, "card", "hidden", False),
    (True, False, True, False, "card", "optional", False),
    (True, False, True, True, "card", "optional", True),
    (True, True, True, False, "card", "default_on", False),
    (True, True, True, True, "sepa_debit", "default_on", True),
    (True, True, False, False, "card", "forced", True),
    (True, True, False, True, "alipay", "forced", False),  # never for Alipay
])
def test_future_payments_truth_table(client, fake_stripe, enable, active, changeable, requested, method, shown, saved):
    ProviderSettingFactory(method_card=True, method_sepa_debit=True, method_alipay=True, enable_future_payments=enable,
                           future_payments_active=active, future_payments_changeable=changeable)
    invoice = InvoiceFactory()
    text = client.get(pay_url(invoice)).content.decode()
    config = json.loads(text.split('id="payment-config" type="application/json">')[1].split("</script>")[0])
    assert config["futurePayments"] == shown
    assert ('id="save-for-future"' in text) == (shown != "hidden")
    if shown == "forced":
        assert "disabled" in text.split('id="save-for-future"')[1].split(">")[0] and "mandate" in text
    body = intent(client, invoice, method, requested).json()
    pi = fake_stripe.objects[body["paymentIntentId"]]
    assert (pi["setup_future_usage"] == "off_session") == saved
    assert bool(pi["customer"]) == saved
    assert StripeCustomer.objects.exists() == saved


def test_return_page_reads_the_outcome_from_stripe(client, setting, fake_stripe):
    from providers.stripe import gateway

    invoice = InvoiceFactory()
    body = intent(client, invoice).json()
    token = make_token(invoice.pk)
    # Stripe.js would confirm in the browser; the test confirms against the fake Stripe directly.
    gateway.confirm_payment_intent(setting, body["paymentIntentId"], idempotency_key="browser", payment_method="pm_card_visa")
    page = client.get(reverse("payments:return", args=[token]), {"payment_intent": body["paymentIntentId"],
                                                                  "redirect_status": "failed"})  # the browser's word is ignored
    assert page.status_code == 200 and "succeeded" in page.content.decode()
    assert PaymentAttempt.objects.get().status == AttemptStatus.SUCCEEDED
    failed = InvoiceFactory()
    body = intent(client, failed).json()
    try:
        gateway.confirm_payment_intent(setting, body["paymentIntentId"], idempotency_key="b2", payment_method="pm_card_chargeDeclined")
    except gateway.PaymentDeclined:
        pass
    page = client.get(reverse("payments:return", args=[make_token(failed.pk)]), {"payment_intent": body["paymentIntentId"]})
    assert "declined" in page.content.decode() and "Try again" in page.content.decode()
    other = client.get(reverse("payments:return", args=[make_token(failed.pk)]), {"payment_intent": "pi_someone_else"})
    assert other.status_code == 400


def test_intent_endpoint_bad_input(client, setting):
    invoice = InvoiceFactory()
    url = reverse("payments:create-intent", args=[make_token(invoice.pk)])
    assert client.post(url, data=b"\xff", content_type="application/json").status_code == 400
    assert client.post(url, data="[]", content_type="application/json").status_code == 400
    assert client.post(url, data=json.dumps({"method_type": "bitcoin"}), content_type="application/json").status_code == 409
    assert client.get(url).status_code == 405


def test_intent_endpoint_is_csrf_protected(setting):
    from django.test import Client

    invoice = InvoiceFactory()
    csrf_client = Client(enforce_csrf_checks=True)
    response = csrf_client.post(reverse("payments:create-intent", args=[make_token(invoice.pk)]), data="{}",
                                content_type="application/json")
    assert response.status_code == 403


def test_page_in_german(client, setting):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    text = client.get(pay_url(invoice), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert f"Rechnung {invoice.number}" in text and "Offener Betrag" in text and "100,00\u00a0€ bezahlen" in text
    assert 'lang="de"' in text
