"""Issuing receipts (numbered once, per charge and per refund) and emailing each once.

Invariants:
- at most one payment receipt per charge and one refund receipt per refund request (database constraints);
- numbers are gap-free per business entity: the entity's sequence row is locked, and the receipt, its outbox row
  and the counter commit together (durably: the number is emailed right after);
- a receipt's email is sent at most once (payments.emails.send_once on its outbox row), after the commit that
  issued it; the PDF is rendered once and kept.
Issuing calls neither Stripe nor the books; it only reads them.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.ledger.sql import durable_atomic
from payments.emails import customer_email, send_once, stable_message_id
from payments.models import PaymentTransaction
from receipts import selectors
from receipts.models import Receipt, ReceiptEmail, ReceiptKind, ReceiptSequence
from refunds.models import RefundRequest, RefundStatus

logger = logging.getLogger(__name__)

MAX_EMAIL_ATTEMPTS = 10


def issue_payment_receipt(*, transaction_id: int) -> Receipt | None:
    """The receipt of one confirmed charge (issued now if it has none). None while the charge is not confirmed or
    not booked on an invoice. Safe to call any number of times, from any number of workers."""
    charge = PaymentTransaction.objects.select_related("invoice__business_entity", "account").filter(pk=transaction_id).first()
    if charge is None or charge.status not in selectors.RECEIPTED_CHARGE_STATUSES or charge.invoice is None \
            or charge.account is None or not charge.amount:
        return None
    existing = Receipt.objects.filter(payment_transaction=charge, kind=ReceiptKind.PAYMENT).first()
    if existing is not None:
        return existing
    return _issue(kind=ReceiptKind.PAYMENT, charge=charge, refund=None, amount=charge.amount, currency=charge.currency,
                  stripe_reference=charge.charge_id, money_moved_at=charge.charge_created or charge.updated_at)


def issue_refund_receipt(*, refund_request_id: int) -> Receipt | None:
    """The receipt of one succeeded refund (issued now if it has none); None for a refund not (yet) succeeded or of a
    charge booked on no invoice."""
    refund = RefundRequest.objects.filter(pk=refund_request_id).first()
    if refund is None or refund.status != RefundStatus.SUCCEEDED or not refund.stripe_refund_id:
        return None
    existing = Receipt.objects.filter(refund_request=refund).first()
    if existing is not None:
        return existing
    charge = PaymentTransaction.objects.select_related("invoice__business_entity", "account").filter(
        charge_id=refund.charge_id).first()
    if charge is None or charge.invoice is None or charge.account is None:
        return None
    return _issue(kind=ReceiptKind.REFUND, charge=charge, refund=refund, amount=refund.amount, currency=refund.currency,
                  stripe_reference=refund.stripe_refund_id, money_moved_at=refund.stripe_created or refund.updated_at)


def _issue(*, kind, charge: PaymentTransaction, refund: RefundRequest | None, amount, currency, stripe_reference,
           money_moved_at) -> Receipt:
    invoice, account = charge.invoice, charge.account
    entity = invoice.business_entity
    sequence, _ = ReceiptSequence.objects.get_or_create(business_entity=entity, defaults={"prefix": f"{entity.slug.upper()}-"})
    same = {"refund_request": refund} if refund else {"payment_transaction": charge, "kind": ReceiptKind.PAYMENT}
    try:
        with durable_atomic():
            sequence = ReceiptSequence.objects.select_for_update().get(pk=sequence.pk)
            existing = Receipt.objects.filter(**same).first()  # issued by another worker while this one waited
            if existing is not None:
                return existing
            number = sequence.last_number + 1
            receipt = Receipt.objects.create(
                business_entity=entity, kind=kind, sequence_number=number, number=f"{sequence.prefix}{number:06d}",
                account=account, invoice=invoice, payment_transaction=charge, refund_request=refund, amount=amount,
                currency=currency, method_type=charge.method_type, method_display=selectors.payment_method_display(charge),
                stripe_reference=stripe_reference, money_moved_at=money_moved_at, customer_name=account.name,
                customer_email=account.email, language=account.language)
            ReceiptSequence.objects.filter(pk=sequence.pk).update(last_number=number)
            email = ReceiptEmail.objects.create(receipt=receipt, recipient=account.email)
            if email.recipient:
                transaction.on_commit(lambda: _enqueue_email(email.pk))
    except IntegrityError:  # the same receipt won a race outside the lock (e.g. a second sequence row): it stands
        return Receipt.objects.get(**same)
    logger.info("Receipt %s issued for %s %s of invoice %s.", receipt.number, kind, stripe_reference, invoice.number)
    return receipt


def _enqueue_email(email_id: int) -> None:
    from receipts.tasks import enqueue, send_receipt_email

    enqueue(send_receipt_email, email_id)


def receipt_pdf(receipt: Receipt) -> bytes:
    """The receipt's PDF: rendered on first use and kept, so what the customer got never changes."""
    if receipt.pdf is not None:
        return bytes(receipt.pdf)
    from receipts.pdf import render_receipt_pdf

    pdf = render_receipt_pdf(receipt)
    if not Receipt.objects.filter(pk=receipt.pk, pdf__isnull=True).update(pdf=pdf):  # another process kept its own first
        pdf = bytes(Receipt.objects.values_list("pdf", flat=True).get(pk=receipt.pk))
    receipt.pdf = pdf
    return pdf


def receipt_filename(receipt: Receipt) -> str:
    return f"{receipt.number}.pdf"


def send_receipt_email(*, email_id: int) -> bool:
    """Email the receipt (PDF attached) unless it was sent already. True when this call sent it."""

    def build(email: ReceiptEmail):
        receipt = Receipt.objects.select_related("account", "business_entity", "invoice").get(pk=email.receipt_id)
        return customer_email(
            account=receipt.account, entity=receipt.business_entity, template=f"receipts/email/{receipt.kind}",
            context={"receipt": receipt, "invoice": receipt.invoice}, to=email.recipient,
            attachments=[(receipt_filename(receipt), receipt_pdf(receipt), "application/pdf")],
            message_id=stable_message_id("receipt", receipt.number))

    return send_once(ReceiptEmail, email_id, build)


def issue_missing_receipts(*, lookback: timedelta | None = None) -> int:
    """The beat task's safety net: receipts for confirmed charges and succeeded refunds of the last days that have
    none (an event handled while receipts were failing, a lost task). Returns how many were issued."""
    since = timezone.now() - (lookback or timedelta(days=settings.RECEIPT_SWEEP_DAYS))
    issued = 0
    for charge_id in selectors.charges_without_receipt(since=since).values_list("id", flat=True)[:500]:
        issued += issue_payment_receipt(transaction_id=charge_id) is not None
    for refund_id in selectors.refunds_without_receipt(since=since).values_list("id", flat=True)[:500]:
        issued += issue_refund_receipt(refund_request_id=refund_id) is not None
    return issued


def send_unsent_receipt_emails(*, older_than: timedelta = timedelta(minutes=2)) -> int:
    """Send again what a failed or lost task left unsent (bounded attempts). Returns how many were sent."""
    unsent = selectors.unsent_receipt_emails(created_before=timezone.now() - older_than, max_attempts=MAX_EMAIL_ATTEMPTS)
    return sum(send_receipt_email(email_id=email_id) for email_id in unsent.values_list("id", flat=True)[:500])
