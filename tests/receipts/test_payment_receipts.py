"""A confirmed payment gets one numbered receipt, in the customer's language, emailed once (SPEC §14)."""

from decimal import Decimal

import pytest
from django.core import mail

from receipts.models import Receipt, ReceiptEmail, ReceiptKind
from tests.factories import AccountFactory, InvoiceFactory
from tests.receipts.conftest import pdf_text

pytestmark = pytest.mark.django_db


def test_a_card_payment_gets_one_receipt_emailed_once_with_its_pdf(setting, pay, deliver_all, fake_stripe):
    invoice = InvoiceFactory(amount=Decimal("119.00"), account=AccountFactory(name="Ada Lovelace", email="ada@example.com"))
    pi = pay(invoice)
    deliver_all()  # charge.succeeded and payment_intent.succeeded: two triggers, one receipt
    receipt = Receipt.objects.get()
    assert (receipt.kind, receipt.invoice, receipt.amount, receipt.currency) == (ReceiptKind.PAYMENT, invoice, Decimal("119.00"), "EUR")
    assert receipt.stripe_reference == pi["latest_charge"]
    assert receipt.number == f"{invoice.business_entity.slug.upper()}-000001"
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["ada@example.com"] and receipt.number in email.subject
    assert "€119.00" in email.body and invoice.number in email.body
    assert email.alternatives and "€119.00" in email.alternatives[0][0]
    (filename, pdf, mimetype), = email.attachments
    assert (filename, mimetype) == (f"{receipt.number}.pdf", "application/pdf")
    text = pdf_text(pdf)
    for expected in ("Payment receipt", receipt.number, "€119.00", invoice.number, "Ada Lovelace", pi["latest_charge"],
                     invoice.business_entity.public_name, "Card"):
        assert expected in text, (expected, text)
    assert ReceiptEmail.objects.get().sent_at is not None
    # Stripe delivers again: nothing new, nothing sent twice.
    deliver_all(fake_stripe.events_of("charge.succeeded", "payment_intent.succeeded"))
    assert Receipt.objects.count() == 1 and len(mail.outbox) == 1
