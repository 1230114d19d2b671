"""The payment page is rendered once per set of facts it shows and reused (payments.rendered_pages): whatever the page
shows changes as soon as its invoice, amount due, entity, Stripe setting or language changes, and every response
carries a CSRF token of its own request."""

from decimal import Decimal

import pytest
from django.test import Client
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


def test_a_reused_page_carries_each_requests_own_csrf_token_that_the_intent_endpoint_accepts(setting):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    token_one, token_two = csrf_of(page(invoice, first)), csrf_of(page(invoice, second))
    assert token_one and token_two and token_one != token_two
    response = second.post(reverse("payments:create-intent", args=[make_token(invoice.pk)]), data="{}",
                           content_type="application/json", HTTP_X_CSRFTOKEN=token_two)
    assert response.status_code != 403  # the token in the reused page is valid for its own session


def test_the_same_page_is_rendered_once(setting):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    first, again = get_page(invoice), get_page(invoice)
    assert [t.name for t in first.templates][:1] == ["payments/pay.html"] and again.templates == []
    assert first.content.decode().replace(csrf_of(first.content.decode()), "") == \
        again.content.decode().replace(csrf_of(again.content.decode()), "")


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
