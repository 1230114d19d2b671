"""The webhook inbox: every valid Stripe event, stored once, before anything is done with it."""

import orjson
from django.db import models
from django.db.models import Q


class EventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"


class WebhookEvent(models.Model):
    # No index of its own: one fewer index write per webhook on the ingest hot path. Lookups by setting are rare
    # (the admin filter, deleting a setting) and the partial unique index covers events without an account.
    # No database foreign key either: its check locks the setting's row (FOR KEY SHARE) for every stored webhook,
    # which is a tenth of the insert and makes all concurrent webhooks share one hot row. The view has just read
    # the setting, and deleting a setting with events is refused by on_delete=PROTECT (admin, ORM).
    provider_setting = models.ForeignKey("providers.ProviderSetting", on_delete=models.PROTECT, related_name="webhook_events",
                                         db_index=False, db_constraint=False)
    stripe_event_id = models.CharField(max_length=255)
    # The Stripe account the event belongs to; empty until the setting has learned it.
    stripe_account_id = models.CharField(max_length=255, blank=True)
    # Not indexed: every index is written on the ingest hot path; the admin filters a few thousand rows at most.
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    api_version = models.CharField(max_length=50, blank=True)
    stripe_created = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    # The body exactly as Stripe signed it (text, not jsonb: cheaper to store on the hot path and the
    # original bytes stay auditable). `event` parses it.
    payload = models.TextField()
    status = models.CharField(max_length=10, choices=EventStatus.choices, default=EventStatus.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        # Only the events still to do are indexed (what requeue and the admin's "failed" view look for):
        # processed events, nearly all of them, cost no index entry after their update.
        indexes = [models.Index(fields=["status", "received_at"], name="webhook_event_todo",
                                condition=Q(status__in=["received", "failed"])),
                   # What retention deletes, oldest first (webhooks.services.purge_old_events). Written when an event is
                   # finished, by the worker, never on the ingest path.
                   models.Index(fields=["processed_at"], name="webhook_event_done",
                                condition=Q(status__in=["processed", "ignored"]))]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_account_id", "stripe_event_id"],
                condition=~Q(stripe_account_id=""),
                name="unique_event_per_stripe_account",
            ),
            models.UniqueConstraint(
                fields=["provider_setting", "stripe_event_id"],
                condition=Q(stripe_account_id=""),
                name="unique_event_per_setting_without_account",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_event_id}"

    @property
    def event(self) -> dict:
        return orjson.loads(self.payload)
