from django.db import models


class TransactionStatus(models.TextChoices):
    # An uncaptured charge (`captured: false`): funds held, not money received; nothing is booked until captured.
    AUTHORIZED = "authorized", "Authorized (not captured)"
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    DISPUTED = "disputed", "Disputed"
    # An authorization that expired or was released uncaptured: never money.
    VOID = "void", "Void (authorization expired)"


# Final: a later event of the charge changes nothing of its money (SPEC §7: `failed` is final).
FINAL_TRANSACTION_STATUSES = (TransactionStatus.FAILED, TransactionStatus.VOID)
# The charge's money is (or is about to be) ours: its payment balances and entries must equal its amount (SPEC §11).
MONEY_TRANSACTION_STATUSES = (TransactionStatus.PENDING, TransactionStatus.SUCCEEDED, TransactionStatus.DISPUTED)


class DisputeStatus(models.TextChoices):
    """Stripe's dispute statuses; `warning_*` are inquiries, which withdraw nothing."""

    WARNING_NEEDS_RESPONSE = "warning_needs_response", "Inquiry: needs response"
    WARNING_UNDER_REVIEW = "warning_under_review", "Inquiry: under review"
    WARNING_CLOSED = "warning_closed", "Inquiry: closed"
    NEEDS_RESPONSE = "needs_response", "Needs response"
    UNDER_REVIEW = "under_review", "Under review"
    WON = "won", "Won"
    LOST = "lost", "Lost"
    PREVENTED = "prevented", "Prevented"


# Statuses after which a dispute's facts no longer change.
CLOSED_DISPUTE_STATUSES = (DisputeStatus.WARNING_CLOSED, DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.PREVENTED)
# A dispute in one of these no longer holds the charge's balances (SPEC §11 invariant 3: a dispute won unlocks them).
RELEASED_DISPUTE_STATUSES = (DisputeStatus.WARNING_CLOSED, DisputeStatus.WON, DisputeStatus.PREVENTED)


class AttemptStatus(models.TextChoices):
    CREATED = "created", "Created"  # PaymentIntent exists, the customer has not confirmed yet
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


IN_FLIGHT_ATTEMPT_STATUSES = (AttemptStatus.CREATED, AttemptStatus.PROCESSING)


class AttemptSource(models.TextChoices):
    PAGE = "page", "Hosted payment page"
    OFF_SESSION = "off_session", "Off-session collection"


class MethodType(models.TextChoices):
    CARD = "card", "Card"
    SEPA_DEBIT = "sepa_debit", "SEPA Direct Debit"
    ALIPAY = "alipay", "Alipay"
    OTHER = "other", "Other"


class PayoutStatus(models.TextChoices):
    """Where a payout stands for finance (Stripe's own status is kept beside it in Payout.stripe_status)."""

    PENDING = "pending", "Not yet reconcilable"  # not paid yet, or Stripe is still itemising it
    RECONCILED = "reconciled", "Reconciled"
    MISMATCHED = "mismatched", "Mismatched"
    NOT_ITEMISABLE = "not_itemisable", "Cannot be itemised by Stripe (manual payout)"
    FAILED = "failed", "Failed or canceled"


class PayoutLineKind(models.TextChoices):
    """What a balance transaction of a payout is, for matching it to the books."""

    CHARGE = "charge", "Charge"
    REFUND = "refund", "Refund"
    REFUND_FAILURE = "refund_failure", "Refund failed (money back)"
    DISPUTE = "dispute", "Dispute"
    FEE = "fee", "Stripe fee"
    PAYOUT = "payout", "Payout"  # the payout itself, or an earlier payout's money coming back
    OTHER = "other", "Other"


class DifferenceKind(models.TextChoices):
    """Each reason a payout does not reconcile; a difference names one of these, its object and a sentence."""

    UNKNOWN_CHARGE = "unknown_charge", "Charge unknown to the books"
    CHARGE_FAILED_IN_BOOKS = "charge_failed_in_books", "Charge failed in the books"
    AMOUNT_DIFFERS = "amount_differs", "Amount differs"
    UNKNOWN_REFUND = "unknown_refund", "Refund the books never saw"
    UNKNOWN_REFUND_FAILURE = "unknown_refund_failure", "Refund failure the books never saw"
    UNKNOWN_DISPUTE = "unknown_dispute", "Dispute not in the books"
    UNKNOWN_PAYOUT = "unknown_payout", "Payout not mirrored"
    UNEXPLAINED = "unexplained", "Line the books cannot explain"
    LINE_ARITHMETIC = "line_arithmetic", "Line amount − fee ≠ net"
    CURRENCY = "currency", "Line in another currency than the payout"
    PAYOUT_TOTAL = "payout_total", "Lines do not add up to the payout"
    NOT_PAID_OUT = "not_paid_out", "Booked money that reached no payout"
