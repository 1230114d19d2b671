"""PaymentIntents for invoices (hosted page and off-session) and the attempts that track them."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from payments.constants import AttemptStatus
from payments.models import PaymentAttempt

PI_STATUS_TO_ATTEMPT = {
    "processing": AttemptStatus.PROCESSING,
    "succeeded": AttemptStatus.SUCCEEDED,
    "canceled": AttemptStatus.CANCELED,
}
FINAL_ATTEMPT_STATUSES = (AttemptStatus.SUCCEEDED, AttemptStatus.FAILED, AttemptStatus.CANCELED)


def attempt_status_for(payment_intent: dict) -> str | None:
    status = payment_intent.get("status")
    if status == "requires_payment_method" and payment_intent.get("last_payment_error"):
        return AttemptStatus.FAILED  # the attempt failed; a retry is a new attempt
    return PI_STATUS_TO_ATTEMPT.get(status)


def sync_attempt_from_payment_intent(*, setting, payment_intent: dict) -> int:
    """Bring the attempt of this PaymentIntent up to date; a final attempt frees the invoice's in-flight slot."""
    new_status = attempt_status_for(payment_intent)
    if new_status is None or not payment_intent.get("id"):
        return 0
    error = (payment_intent.get("last_payment_error") or {}).get("message") or ""
    queryset = PaymentAttempt.objects.filter(provider_setting=setting, payment_intent_id=payment_intent["id"]).exclude(
        Q(status__in=FINAL_ATTEMPT_STATUSES) | Q(status=new_status))
    # A succeeded attempt never goes back; processing never overrides a final state (excluded above).
    return queryset.update(status=new_status, last_error=error, updated_at=timezone.now())
