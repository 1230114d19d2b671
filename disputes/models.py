"""Answering disputes: the email that tells finance about a new dispute (one outbox row per dispute).

The disputes themselves are payments' `Dispute` rows (booked by the ledger from Stripe's events); this app sits above
receipts in the house because the evidence it sends includes the charge's receipt.
"""

from django.db import models


class DisputeEmail(models.Model):
    """The outbox row of one dispute's email to finance (at most one: the OneToOne). Sent while the row is locked and
    marked sent in the same transaction (payments.emails.send_once), so redelivered events and retries never send twice."""

    dispute = models.OneToOneField("payments.Dispute", on_delete=models.PROTECT, related_name="finance_email")
    recipient = models.EmailField(blank=True, help_text="Empty: the entity has no finance or support address; nothing is sent.")
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Dispute {self.dispute} to {self.recipient or '(no address)'}"
