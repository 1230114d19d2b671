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
    # Money received that is not booked as a balance (amount < 0): the charge's money sits here until resolved.
    UNMATCHED_PAYMENT = "unmatched_payment", "Payment without a matching invoice"
    CURRENCY_MISMATCH = "currency_mismatch", "Payment in another currency than its invoice"
    FOREIGN_INVOICE = "foreign_invoice", "Payment naming an invoice this setting does not serve"
    UNUSABLE_AMOUNT = "unusable_amount", "Payment in an amount or currency the books cannot take"
    # Money that went back out or came back (SPEC §7, §8).
    REFUND_FAILED = "refund_failed", "Refund failed"
    # Later movements of money that sits in an entry (its `parent`): booked when the parent is resolved.
    REFUND_OF_UNBOOKED = "refund_of_unbooked", "Refund of a payment held in an entry"
    DISPUTE_WITHDRAWAL = "dispute_withdrawal", "Dispute: funds withdrawn from a payment held in an entry"
    OTHER = "other", "Other"


# The kinds whose entry holds a charge's money received (SPEC §11 invariant 4).
MONEY_RECEIVED_KINDS = (PaymentEntryKind.UNMATCHED_PAYMENT, PaymentEntryKind.CURRENCY_MISMATCH, PaymentEntryKind.FOREIGN_INVOICE,
                        PaymentEntryKind.UNUSABLE_AMOUNT)


class LockReason:
    REFUND = "Refund via payment provider"
    DISPUTED = "Disputed"


class DisputeLeg(models.TextChoices):
    """Which side of a dispute an adjustment books: the money taken back, or its return."""

    WITHDRAWAL = "withdrawal", "Funds withdrawn"
    REINSTATEMENT = "reinstatement", "Funds reinstated"


PROVIDER_STRIPE = "stripe"
