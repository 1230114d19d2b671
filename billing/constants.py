"""The vocabulary of the books, in one place."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class InvoiceKind(models.TextChoices):
    INVOICE = "invoice", _("Invoice")
    CREDIT = "credit", _("Credit note")


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    OPEN = "open", _("Open")
    PAID = "paid", _("Paid")
    CANCELLED = "cancelled", _("Cancelled")


class BalanceType(models.TextChoices):
    PAYMENT = "payment", _("Payment")
    REFUND = "refund", _("Refund")
    CREDIT = "credit", _("Credit")
    ADJUSTMENT = "adjustment", _("Adjustment")


class BalanceStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    CONFIRMED = "confirmed", _("Confirmed")


class PaymentEntryStatus(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Resolved")


class PaymentEntryKind(models.TextChoices):
    # Money received that is not booked as a balance (amount < 0): the charge's money sits here until resolved.
    UNMATCHED_PAYMENT = "unmatched_payment", _("Payment without a matching invoice")
    CURRENCY_MISMATCH = "currency_mismatch", _("Payment in another currency than its invoice")
    FOREIGN_INVOICE = "foreign_invoice", _("Payment naming an invoice this setting does not serve")
    UNUSABLE_AMOUNT = "unusable_amount", _("Payment in an amount or currency the books cannot take")
    # Money that went back out or came back (SPEC §7, §8).
    REFUND_FAILED = "refund_failed", _("Refund failed")
    # Later movements of money that sits in an entry (its `parent`): booked when the parent is resolved.
    REFUND_OF_UNBOOKED = "refund_of_unbooked", _("Refund of a payment held in an entry")
    DISPUTE_WITHDRAWAL = "dispute_withdrawal", _("Dispute: funds withdrawn from a payment held in an entry")
    OTHER = "other", _("Other")


# The kinds whose entry holds a charge's money received (SPEC §11 invariant 4).
MONEY_RECEIVED_KINDS = (PaymentEntryKind.UNMATCHED_PAYMENT, PaymentEntryKind.CURRENCY_MISMATCH, PaymentEntryKind.FOREIGN_INVOICE,
                        PaymentEntryKind.UNUSABLE_AMOUNT)


class LockReason:
    REFUND = "Refund via payment provider"
    DISPUTED = "Disputed"


class DisputeLeg(models.TextChoices):
    """Which side of a dispute an adjustment books: the money taken back, or its return."""

    WITHDRAWAL = "withdrawal", _("Funds withdrawn")
    REINSTATEMENT = "reinstatement", _("Funds reinstated")


PROVIDER_STRIPE = "stripe"


class AuditAction(models.TextChoices):
    """What a person (or the system) did to money: the audit trail's vocabulary (SPEC §13)."""

    REFUND_REQUESTED = "refund_requested", _("Refund requested")
    OVERREFUND_CONFIRMED = "overrefund_confirmed", _("Overrefund confirmed")
    BALANCE_ASSIGNED = "balance_assigned", _("Balance assigned")
    BALANCE_RELINKED = "balance_relinked", _("Balance re-linked")
    BALANCE_UNASSIGNED = "balance_unassigned", _("Balance unassigned")
    CREDIT_NOTE_ASSIGNED = "credit_note_assigned", _("Credit note assigned")
    ENTRY_RESOLVED = "entry_resolved", _("Payment entry resolved")
    ENTRY_CLOSED = "entry_closed", _("Payment entry closed")
    EVENT_REPLAYED = "event_replayed", _("Webhook event replayed")
    PAYMENT_LINK_EMAILED = "payment_link_emailed", _("Payment link emailed")
    OFF_SESSION_ATTEMPTED = "off_session_attempted", _("Off-session collection attempted")
    PROVIDER_SETTING_CHANGED = "provider_setting_changed", _("Provider setting changed")
