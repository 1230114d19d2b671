"""The vocabulary of the books, in one place."""

from django.db import models


class InvoiceKind(models.TextChoices):
    INVOICE = "invoice", "Invoice"
    CREDIT = "credit", "Credit note"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    CANCELLED = "cancelled", "Cancelled"


class BalanceType(models.TextChoices):
    PAYMENT = "payment", "Payment"
    REFUND = "refund", "Refund"
    CREDIT = "credit", "Credit"
    ADJUSTMENT = "adjustment", "Adjustment"


class BalanceStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed"


class PaymentEntryStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class PaymentEntryKind(models.TextChoices):
    REFUND_FAILED = "refund_failed", "Refund failed"
    UNMATCHED_PAYMENT = "unmatched_payment", "Payment without a matching invoice"
    CURRENCY_MISMATCH = "currency_mismatch", "Payment in another currency than its invoice"
    OTHER = "other", "Other"


class LockReason:
    REFUND = "Refund via payment provider"
    DISPUTED = "Disputed"


PROVIDER_STRIPE = "stripe"
