"""The payment page is rendered once per set of facts it shows and reused (payments.rendered_pages): whatever the page
shows changes as soon as its invoice, amount due, entity, Stripe setting or language changes, and every visitor gets a CSRF
token of their own (in the cookie the page's script reads, or in the page where the cookie cannot be read)."""

from decimal import Decimal

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from payments.rendered_pages import CSRF_SLOT
from payments.tokens import make_token
from tests.factories import BalanceFactory, InvoiceFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory(method_card=True, method_sepa_debit=True)


LINKS: dict[int, str] = {}  # invoice id -> its payment link, made once (a customer reloads the same link)


def get_page(invoice, client=None, **headers):
    link = LINKS.setdefault(invoice.pk, reverse("payments:pay", args=[make_token(invoice.pk)]))
    return (client or Client()).get(link, **headers)


def page(invoice, client=None, **headers) -> str:
    response = get_page(invoice, client, **headers)
    assert response.status_code == 200
    text = response.content.decode()
    assert CSRF_SLOT not in text
    return text


def csrf_of(text: str) -> str:
    return text.split('id="csrf" value="')[1].split('"')[0]


def intent_status(invoice, client, csrf_token: str) -> int:
    return client.post(reverse("payments:create-intent", args=[make_token(invoice.pk)]), data="{}",
                       content_type="application/json", HTTP_X_CSRFTOKEN=csrf_token).status_code


def test_the_reused_page_carries_no_token_and_each_visitor_gets_a_cookie_the_intent_endpoint_accepts(setting):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    page_one, page_two = page(invoice, first), page(invoice, second)
    assert page_one == page_two and 'id="csrf"' not in page_one and '"csrfCookieName": "csrftoken"' in page_one
    cookie_one, cookie_two = first.cookies["csrftoken"].value, second.cookies["csrftoken"].value
    assert cookie_one and cookie_two and cookie_one != cookie_two

    assert intent_status(invoice, second, cookie_two) != 403  # what pay.js sends: the cookie's token in the header
    assert intent_status(invoice, second, cookie_one) == 403  # another visitor's token is refused
    assert intent_status(invoice, Client(enforce_csrf_checks=True), cookie_two) == 403  # and so is a token without its cookie


def test_a_returning_visitor_keeps_the_cookie(setting):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    client = Client(enforce_csrf_checks=True)
    first = get_page(invoice, client)
    again = get_page(invoice, client)
    assert "csrftoken" in first.cookies and "csrftoken" not in again.cookies  # the browser's cookie is still good
    assert intent_status(invoice, client, client.cookies["csrftoken"].value) != 403


@override_settings(CSRF_COOKIE_HTTPONLY=True)
def test_where_scripts_cannot_read_the_cookie_each_page_carries_its_requests_own_token(setting):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    token_one, token_two = csrf_of(page(invoice, first)), csrf_of(page(invoice, second))
    assert token_one and token_two and token_one != token_two
    assert intent_status(invoice, second, token_two) != 403  # the token in the reused page is valid for its own session
    assert intent_status(invoice, second, token_one) == 403


def test_the_same_page_is_rendered_once(setting):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    first, again = get_page(invoice), get_page(invoice)
    assert [t.name for t in first.templates][:1] == ["payments/pay.html"] and again.templates == []
    assert first.content == again.content


def test_the_page_follows_every_fact_it_shows(setting):
    invoice = InvoiceFactory(amount=Decimal("100.00"), number="INV-CACHE-1")
    entity = invoice.business_entity
    assert "€100.00" in page(invoice) and "INV-CACHE-1" in page(invoice)

    BalanceFactory(invoice=invoice, amount=Decimal("-40.00"))  # a payment: the amount due changes
    assert "€60.00" in page(invoice)

    invoice.number = "INV-CACHE-2"
    invoice.save(update_fields=["number"])
    assert "INV-CACHE-2" in page(invoice)

    entity.support_email = "help@renamed.example"
    entity.save(update_fields=["support_email"])
    assert "help@renamed.example" in page(invoice)
    entity.logo_url = "https://cdn.example/logo.png"
    entity.save(update_fields=["logo_url"])
    assert "https://cdn.example/logo.png" in page(invoice)

    setting.method_sepa_debit = False
    setting.save()
    assert '"paymentMethodTypes": ["card"]' in page(invoice)

    assert "Rechnung INV-CACHE-2" in page(invoice, HTTP_ACCEPT_LANGUAGE="de")
    assert "Invoice INV-CACHE-2" in page(invoice, HTTP_ACCEPT_LANGUAGE="en")
