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


def test_a_german_customer_gets_the_receipt_and_its_email_in_german(setting, pay, deliver_all):
    invoice = InvoiceFactory(amount=Decimal("1234.50"), account=AccountFactory(language="de", name="Grete Müller"))
    pay(invoice)
    deliver_all()
    receipt = Receipt.objects.get()
    email, = mail.outbox
    assert email.subject == f"{invoice.business_entity.public_name}: Beleg {receipt.number} für Ihre Zahlung"
    assert "1.234,50\u00a0€" in email.body and "Hallo Grete Müller" in email.body
    text = pdf_text(email.attachments[0][1])
    for expected in ("Zahlungsbeleg", "Belegnummer", receipt.number, "1.234,50 €", "Gezahlter Betrag", "Karte", invoice.number):
        assert expected in text, (expected, text)
    assert "Payment receipt" not in text and "EUR" not in text


def test_a_sepa_debit_gets_its_receipt_only_when_the_money_is_confirmed(setting, invoice, pay, deliver_all, fake_stripe):
    pi = pay(invoice, "pm_sepa_debit")
    deliver_all()  # pending: the invoice is paid, but no money yet
    assert not Receipt.objects.exists() and mail.outbox == []
    delivered = len(fake_stripe.events)
    fake_stripe.settle_charge(pi["latest_charge"])
    deliver_all(fake_stripe.events_of()[delivered:])
    receipt = Receipt.objects.get()
    assert receipt.method_type == "sepa_debit" and "SEPA Direct Debit" in pdf_text(mail.outbox[0].attachments[0][1])


def test_a_failed_debit_never_gets_a_receipt(setting, invoice, pay, deliver_all, fake_stripe):
    pi = pay(invoice, "pm_sepa_debit_fail")
    deliver_all()
    fake_stripe.settle_charge(pi["latest_charge"], succeed=False)
    deliver_all(fake_stripe.events_of("charge.failed", "payment_intent.payment_failed"))
    from receipts.services import issue_missing_receipts

    assert issue_missing_receipts() == 0 and not Receipt.objects.exists() and mail.outbox == []


def test_an_account_without_email_still_gets_a_receipt_to_download_and_nothing_is_sent(setting, pay, deliver_all):
    pay(InvoiceFactory(account=AccountFactory(email="")))
    deliver_all()
    receipt = Receipt.objects.get()
    assert receipt.email.recipient == "" and receipt.email.sent_at is None and mail.outbox == []
