"""Numbered receipts (one per confirmed charge, one per succeeded refund) and the outbox that emails each once.

Receipts sit above refunds in the house: they read payments' transactions and refunds' requests, and the webhook
handlers (above them) ask for them. They are documents about money, never the books themselves.
"""

from django.db import models
from django.db.models import Q

from billing.models import MONEY


class ReceiptKind(models.TextChoices):
    PAYMENT = "payment", "Payment receipt"
    REFUND = "refund", "Refund receipt"


class ReceiptSequence(models.Model):
    """One business entity's receipt numbers: gap-free, shared by payment and refund receipts.

    The row is locked while a receipt takes the next number, and the receipt and the counter commit together,
    so a rolled-back issue leaves no gap and two issues never share a number (finance and auditors expect a
    receipt series without holes, as for invoices)."""

    business_entity = models.OneToOneField("billing.BusinessEntity", on_delete=models.PROTECT, related_name="receipt_sequence")
    prefix = models.CharField(max_length=20, help_text="Put before the number, e.g. \u201cACME-R-\u201d gives ACME-R-000042.")
    last_number = models.PositiveIntegerField(default=0, help_text="The number of the latest receipt (0: none yet).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prefix"], name="receipt_prefix_unique")]

    def __str__(self) -> str:
        return f"{self.prefix}\u2026 ({self.business_entity})"


class Receipt(models.Model):
    """What the customer was told, frozen when the receipt was issued (the PDF is rendered from these fields)."""

    business_entity = models.ForeignKey("billing.BusinessEntity", on_delete=models.PROTECT, related_name="receipts")
    kind = models.CharField(max_length=10, choices=ReceiptKind.choices)
    sequence_number = models.PositiveIntegerField()
    number = models.CharField(max_length=40, unique=True)
    account = models.ForeignKey("billing.Account", on_delete=models.PROTECT, related_name="receipts")
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT, related_name="receipts")
    # The charge paid (payment receipt) or refunded (refund receipt).
    payment_transaction = models.ForeignKey("payments.PaymentTransaction", on_delete=models.PROTECT, related_name="receipts")
    refund_request = models.ForeignKey("refunds.RefundRequest", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="receipts")
    amount = models.DecimalField(**MONEY, help_text="Paid or refunded, positive.")
    currency = models.CharField(max_length=3)
    method_type = models.CharField(max_length=20, blank=True)
    method_display = models.CharField(max_length=80, blank=True)
    stripe_reference = models.CharField(max_length=255, help_text="The Stripe charge (payment) or refund id.")
    money_moved_at = models.DateTimeField(help_text="When Stripe took or gave back the money.")
    customer_name = models.CharField(max_length=200)
    customer_email = models.EmailField(blank=True)
    language = models.CharField(max_length=8)
    # Rendered once, on first use, and kept: a receipt never changes after it was sent (template changes included).
    pdf = models.BinaryField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["business_entity", "sequence_number"], name="receipt_number_once_per_entity"),
            models.UniqueConstraint(fields=["payment_transaction"], condition=Q(kind=ReceiptKind.PAYMENT),
                                    name="one_receipt_per_charge"),
            models.UniqueConstraint(fields=["refund_request"], condition=Q(refund_request__isnull=False),
                                    name="one_receipt_per_refund"),
            models.CheckConstraint(condition=Q(kind=ReceiptKind.PAYMENT, refund_request__isnull=True)
                                   | Q(kind=ReceiptKind.REFUND, refund_request__isnull=False), name="refund_receipt_names_its_refund"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="receipt_amount_positive"),
        ]

    def __str__(self) -> str:
        return self.number


class ReceiptEmail(models.Model):
    """The outbox row of one receipt (at most one: the OneToOne): the email is sent while this row is locked and
    marked sent in the same transaction, so retries, redelivered events and two workers never send it twice."""

    receipt = models.OneToOneField(Receipt, on_delete=models.PROTECT, related_name="email")
    recipient = models.EmailField(blank=True, help_text="Empty: the account has no email address; nothing is sent.")
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="receipt_email_unsent", condition=Q(sent_at__isnull=True))]

    def __str__(self) -> str:
        return f"Receipt {self.receipt} to {self.recipient or '(no address)'}"
