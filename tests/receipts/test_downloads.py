"""Downloading a receipt: from the return page (the pay token), by its own signed link, and from the admin."""

import time
from decimal import Decimal

import pytest
from django.urls import reverse

from payments.tokens import PAY, RECEIPT, make_token
from providers.stripe import gateway
from receipts.models import Receipt
from tests.factories import InvoiceFactory
from tests.receipts.conftest import pdf_text
from tests.security.test_admin_action_matrix import client_for

pytestmark = pytest.mark.django_db


def paid_on_the_page(client, invoice, setting):
    """The customer pays on the page (Stripe.js's part played against the fake) and lands on the return page."""
    import json

    token = make_token(invoice.pk)
    body = client.post(reverse("payments:create-intent", args=[token]), data=json.dumps({"method_type": "card"}),
                       content_type="application/json").json()
    gateway.confirm_payment_intent(setting, body["paymentIntentId"], idempotency_key="browser", payment_method="pm_card_visa")
    return token, body["paymentIntentId"]


def test_the_return_page_links_to_the_receipt_once_the_books_confirmed_the_payment(client, setting, deliver_all):
    invoice = InvoiceFactory(amount=Decimal("119.00"))
    token, pi_id = paid_on_the_page(client, invoice, setting)
    page = client.get(reverse("payments:return", args=[token]), {"payment_intent": pi_id})
    link = page.content.decode().split('id="receipt-link" href="')[1].split('"')[0].replace("&amp;", "&")
    waiting = client.get(link)  # Stripe's webhooks have not arrived yet: no receipt without the books
    assert waiting.status_code == 202 and "being prepared" in waiting.content.decode() and not Receipt.objects.exists()
    deliver_all()
    redirect = client.get(link)
    assert redirect.status_code == 302 and redirect["Location"].startswith("/receipts/")
    download = client.get(redirect["Location"])
    receipt = Receipt.objects.get()
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"] == f'attachment; filename="{receipt.number}.pdf"'
    assert "€119.00" in pdf_text(download.content) and receipt.number in pdf_text(download.content)
    assert client.get(redirect["Location"]).content == download.content  # rendered once, kept


def test_someone_elses_payment_or_a_tampered_token_gets_no_receipt(client, setting, deliver_all):
    invoice, other = InvoiceFactory(), InvoiceFactory()
    _, pi_id = paid_on_the_page(client, invoice, setting)
    deliver_all()
    receipt = Receipt.objects.get()
    # The other invoice's pay token with this payment's id: not its payment.
    assert client.get(reverse("receipts:of-payment", args=[make_token(other.pk)]), {"payment_intent": pi_id}).status_code == 202
    assert client.get(reverse("receipts:download", args=[make_token(receipt.pk, purpose=PAY)])).status_code == 400  # wrong purpose
    assert client.get(reverse("receipts:download", args=["garbage"])).status_code == 400
    assert client.get(reverse("receipts:download", args=[make_token(receipt.pk + 1000, purpose=RECEIPT)])).status_code == 404


def test_an_expired_receipt_link_says_whom_to_ask_in_the_entitys_branding(client, setting, deliver_all):
    invoice = InvoiceFactory()
    invoice.business_entity.logo_url = "https://cdn.example.com/logo.png"
    invoice.business_entity.save()
    paid_on_the_page(client, invoice, setting)
    deliver_all()
    expired = make_token(Receipt.objects.get().pk, purpose=RECEIPT, now=int(time.time()) - 10**8)
    page = client.get(reverse("receipts:download", args=[expired]))
    text = page.content.decode()
    assert page.status_code == 410 and "https://cdn.example.com/logo.png" in text
    assert f"ask {invoice.business_entity.public_name} for a new one at support@example.com" in text


@pytest.mark.parametrize("kind, status", [("anonymous", 302), ("staff", 403), ("finance", 200), ("superuser", 200)])
def test_staff_with_view_permission_download_receipts_from_the_admin(client, setting, deliver_all, kind, status):
    invoice = InvoiceFactory()
    paid_on_the_page(client, invoice, setting)
    deliver_all()
    receipt = Receipt.objects.get()
    user_client = client_for(kind)
    response = user_client.get(reverse("admin:receipts_receipt_pdf", args=[receipt.pk]))
    assert response.status_code == status
    if status == 200:
        assert receipt.number in pdf_text(response.content)
        invoice_page = user_client.get(reverse("admin:billing_invoice_change", args=[invoice.pk])).content.decode()
        assert reverse("admin:receipts_receipt_pdf", args=[receipt.pk]) in invoice_page  # on the invoice page too


def test_the_logo_is_fetched_only_over_https(settings):
    from receipts.pdf import logo_only_fetcher

    for url in ("file:///etc/passwd", "http://127.0.0.1:8000/admin/", "ftp://example.com/logo.png"):
        with pytest.raises(ValueError, match="disallowed protocol"):
            logo_only_fetcher().fetch(url)
    assert logo_only_fetcher().fetch("data:image/png;base64,iVBORw0KGgo=").read() == b"\x89PNG\r\n\x1a\n"


def test_a_logo_that_cannot_be_fetched_leaves_the_receipt_without_it(setting, pay, deliver_all):
    invoice = InvoiceFactory()
    invoice.business_entity.logo_url = "https://127.0.0.1:9/logo.png"  # nothing listens there
    invoice.business_entity.save()
    pay(invoice)
    deliver_all()
    assert invoice.business_entity.public_name in pdf_text(Receipt.objects.get().pdf)
