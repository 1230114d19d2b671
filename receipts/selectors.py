"""Reads for receipts: what is still missing one, and the receipt of a payment the customer just made."""

from datetime import datetime

from django.db.models import Exists, OuterRef, QuerySet

from payments.constants import TransactionStatus
from payments.models import PaymentInstrument, PaymentTransaction
from receipts.models import Receipt, ReceiptEmail, ReceiptKind
from refunds.models import RefundRequest, RefundStatus

# A charge whose money was confirmed; a dispute later does not take the receipt back.
RECEIPTED_CHARGE_STATUSES = (TransactionStatus.SUCCEEDED, TransactionStatus.DISPUTED)


def charges_without_receipt(*, since: datetime) -> QuerySet[PaymentTransaction]:
    """Confirmed charges booked on an invoice since `since` that have no receipt yet (the beat task's net)."""
    receipted = Receipt.objects.filter(payment_transaction=OuterRef("pk"), kind=ReceiptKind.PAYMENT)
    return (PaymentTransaction.objects.filter(status__in=RECEIPTED_CHARGE_STATUSES, invoice__isnull=False, account__isnull=False,
                                              updated_at__gte=since)
            .exclude(Exists(receipted)).order_by("id"))


def refunds_without_receipt(*, since: datetime) -> QuerySet[RefundRequest]:
    return (RefundRequest.objects.filter(status=RefundStatus.SUCCEEDED, updated_at__gte=since)
            .exclude(Exists(Receipt.objects.filter(refund_request=OuterRef("pk")))).order_by("id"))


def unsent_receipt_emails(*, created_before: datetime, max_attempts: int) -> QuerySet[ReceiptEmail]:
    return ReceiptEmail.objects.filter(sent_at__isnull=True, created_at__lt=created_before, attempts__lt=max_attempts) \
        .exclude(recipient="").order_by("id")


def confirmed_charge_of_payment_intent(*, invoice, payment_intent_id: str) -> PaymentTransaction | None:
    """The charge of this invoice's PaymentIntent that the books confirmed (None until its webhook was processed)."""
    return (PaymentTransaction.objects.filter(invoice=invoice, payment_intent_id=payment_intent_id, status__in=RECEIPTED_CHARGE_STATUSES)
            .order_by("-id").first())


def payment_method_display(transaction: PaymentTransaction) -> str:
    """"Visa •••• 4242" when the method was saved (its details are known), else empty: the receipt names the type."""
    if not transaction.payment_method_id:
        return ""
    instrument = PaymentInstrument.objects.filter(provider_setting_id=transaction.provider_setting_id,
                                                  stripe_payment_method_id=transaction.payment_method_id).first()
    return str(instrument) if instrument else ""
