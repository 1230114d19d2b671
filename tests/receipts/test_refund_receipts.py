"""A succeeded refund gets its own receipt, numbered in the same gap-free series as the entity's payments."""

from decimal import Decimal

import pytest
from django.core import mail

from billing.models import Balance
from receipts.models import Receipt, ReceiptKind
from refunds.models import RefundRequest
from refunds.services import refund_payment_balance
from tests.factories import InvoiceFactory
from tests.receipts.conftest import pdf_text

pytestmark = pytest.mark.django_db


def test_a_refund_gets_a_receipt_emailed_once(setting, pay, deliver_all, fake_stripe):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    pay(invoice)
    deliver_all()
    delivered = len(fake_stripe.events)
    refund_payment_balance(Balance.objects.get(), amount="25.00")  # the service books it; Stripe's events follow
    deliver_all(fake_stripe.events_of()[delivered:])
    deliver_all(fake_stripe.events_of("refund.created", "charge.refunded"))  # redelivered
    payment_receipt, refund_receipt = Receipt.objects.order_by("sequence_number")
    request = RefundRequest.objects.get()
    assert (refund_receipt.kind, refund_receipt.refund_request, refund_receipt.amount) == (ReceiptKind.REFUND, request, Decimal("25.00"))
    assert (payment_receipt.sequence_number, refund_receipt.sequence_number) == (1, 2)
    assert refund_receipt.stripe_reference == request.stripe_refund_id
    assert len(mail.outbox) == 2
    email = mail.outbox[1]
    assert refund_receipt.number in email.subject and "€25.00" in email.body
    text = pdf_text(email.attachments[0][1])
    for expected in ("Refund receipt", refund_receipt.number, "€25.00", request.stripe_refund_id, payment_receipt.stripe_reference,
                     invoice.number):
        assert expected in text, (expected, text)


def test_a_refund_that_fails_before_it_succeeded_gets_no_receipt(setting, pay, deliver_all, fake_stripe):
    pi = pay(InvoiceFactory(), "pm_sepa_debit")  # SEPA refunds stay pending for days, and can fail
    fake_stripe.settle_charge(pi["latest_charge"])
    deliver_all()
    delivered = len(fake_stripe.events)
    refund = fake_stripe.create_dashboard_refund(pi["latest_charge"])
    assert refund["status"] == "pending"
    deliver_all(fake_stripe.events_of()[delivered:])
    assert RefundRequest.objects.get().status == "pending"
    fake_stripe.fail_refund(refund["id"])
    deliver_all(fake_stripe.events_of("refund.failed", "charge.refund.updated"))
    from receipts.services import issue_missing_receipts

    assert issue_missing_receipts() == 0
    assert list(Receipt.objects.values_list("kind", flat=True)) == [ReceiptKind.PAYMENT] and len(mail.outbox) == 1
