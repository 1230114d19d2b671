"""Refund requests: written before Stripe is called, so a crash in between can be repaired."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models import MONEY


class RefundSource(models.TextChoices):
    SERVICE = "service", "This service"
    DASHBOARD = "dashboard", "Stripe Dashboard"


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class RefundRequest(models.Model):
    balance = models.ForeignKey(
        "billing.Balance", null=True, blank=True, on_delete=models.SET_NULL, related_name="refund_requests",
        help_text="The payment balance the refund was initiated on (none for Dashboard refunds; forgotten if a failed "
                  "charge's balance goes).",
    )
    provider_setting = models.ForeignKey("providers.ProviderSetting", on_delete=models.PROTECT, related_name="refund_requests")
    charge_id = models.CharField(max_length=255, db_index=True)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    source = models.CharField(max_length=10, choices=RefundSource.choices, default=RefundSource.SERVICE)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    idempotency_key = models.CharField(max_length=255, unique=True)
    stripe_refund_id = models.CharField(max_length=255, null=True, blank=True)
    status = models.CharField(max_length=10, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    failure_reason = models.TextField(blank=True)
    # Set once the balances of the plan were written; whoever comes first (service or webhook) does it.
    applied_at = models.DateTimeField(null=True, blank=True)
    stripe_created = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_refund_id"], condition=Q(stripe_refund_id__isnull=False), name="unique_stripe_refund_id"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_request_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"Refund {self.amount} {self.currency} on {self.charge_id}"
