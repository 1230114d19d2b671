"""What customers read (issue 22): a failed SEPA debit says so and why, one thank-you, one money format per locale,
and an expired link in the entity's branding with whom to ask."""

import json
import time
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from payments.services.collection import send_payment_link
from payments.tokens import SAVE_METHOD, make_token
from providers.stripe import gateway
from tests.factories import AccountFactory, InvoiceFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory(method_card=True, method_sepa_debit=True)


def paid(client, setting, invoice, payment_method, method_type):
    token = make_token(invoice.pk)
    body = client.post(reverse("payments:create-intent", args=[token]), data=json.dumps({"method_type": method_type}),
                       content_type="application/json").json()
    try:
        gateway.confirm_payment_intent(setting, body["paymentIntentId"], idempotency_key="browser", payment_method=payment_method)
    except gateway.PaymentDeclined:
        pass
    return token, body["paymentIntentId"]


def return_page(client, token, pi_id, language="en"):
    return client.get(reverse("payments:return", args=[token]), {"payment_intent": pi_id}, HTTP_ACCEPT_LANGUAGE=language).content.decode()


@pytest.mark.parametrize("failure_code, reason", [
    ("insufficient_funds", "the account did not have sufficient funds."),
    ("account_closed", "the bank account is closed."),
    ("some_new_code", "The customer's account has insufficient funds to cover this payment."),  # unknown: Stripe's own words
])
def test_a_failed_sepa_debit_says_the_debit_failed_why_and_offers_another_method(client, setting, fake_stripe, failure_code, reason):
    invoice = InvoiceFactory(amount=Decimal("119.00"))
    token, pi_id = paid(client, setting, invoice, "pm_sepa_debit_fail", "sepa_debit")
    fake_stripe.settle_charge(fake_stripe.objects[pi_id]["latest_charge"], succeed=False, failure_code=failure_code)
    text = return_page(client, token, pi_id)
    assert "Direct debit failed" in text
    assert f"The SEPA Direct Debit of €119.00 for invoice {invoice.number} failed: {reason}" in text.replace("&#x27;", "'")
    assert "No money was taken" in text and "Pay with another method" in text and reverse("payments:pay", args=[token]) in text
    assert "card was declined" not in text.lower() and "Try again" not in text


def test_a_failed_sepa_debit_in_german(client, setting, fake_stripe):
    invoice = InvoiceFactory(amount=Decimal("119.00"))
    token, pi_id = paid(client, setting, invoice, "pm_sepa_debit_fail", "sepa_debit")
    fake_stripe.settle_charge(fake_stripe.objects[pi_id]["latest_charge"], succeed=False)
    text = return_page(client, token, pi_id, "de")
    assert "Lastschrift fehlgeschlagen" in text and "119,00\u00a0€" in text and "das Konto war nicht ausreichend gedeckt." in text
    assert "Mit einer anderen Methode bezahlen" in text


@pytest.mark.parametrize("language, amount", [("en", "€1,234.50"), ("de", "1.234,50\u00a0€")])
def test_one_thank_you_and_one_money_format_on_the_success_page(client, setting, language, amount):
    invoice = InvoiceFactory(amount=Decimal("1234.50"))
    token, pi_id = paid(client, setting, invoice, "pm_card_visa", "card")
    text = return_page(client, token, pi_id, language)
    thanks = "Vielen Dank" if language == "de" else "Thank you"
    assert text.count(thanks) == 1 and amount in text
    assert "EUR" not in text and "1234.50" not in text


def test_a_card_decline_still_says_try_again(client, setting):
    invoice = InvoiceFactory()
    token, pi_id = paid(client, setting, invoice, "pm_card_chargeDeclined", "card")
    text = return_page(client, token, pi_id)
    assert "Your card was declined." in text and "Try again" in text and "Direct Debit" not in text


@pytest.mark.parametrize("url_name, purpose", [("payments:pay", "pay"), ("payments:return", "pay"), ("payments:save-method", SAVE_METHOD)])
def test_an_expired_link_carries_the_entitys_branding_and_support_address(client, setting, url_name, purpose):
    invoice = InvoiceFactory()
    entity = invoice.business_entity
    entity.logo_url, entity.display_name, entity.support_email = "https://cdn.example.com/acme.png", "Acme GmbH", "billing@acme.example"
    entity.save()
    expired = make_token(invoice.pk, purpose=purpose, now=int(time.time()) - 10**8)
    response = client.get(reverse(url_name, args=[expired]))
    text = response.content.decode()
    assert response.status_code == 410
    assert '<img src="https://cdn.example.com/acme.png" alt="Acme GmbH"' in text
    assert "Please ask Acme GmbH for a new one at billing@acme.example." in text and "mailto:billing@acme.example" in text
    assert invoice.number not in text and "please ask us" not in text.lower()  # branding only: nothing about the invoice


def test_a_tampered_link_names_no_entity(client, setting):
    response = client.get(reverse("payments:pay", args=["garbage"]))
    assert response.status_code == 400 and "not valid" in response.content.decode()


def test_the_payment_link_email_uses_the_customers_language_and_money_format(setting, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    invoice = InvoiceFactory(amount=Decimal("1234.50"), account=AccountFactory(language="de"))
    send_payment_link(invoice)
    email, = mail.outbox
    assert "1.234,50\u00a0€" in email.body and "1.234,50\u00a0€" in email.alternatives[0][0] and "EUR" not in email.body
    assert email.subject == f"{invoice.business_entity.public_name}: Zahlung für Rechnung {invoice.number}"
