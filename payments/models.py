"""Stripe customers, saved payment instruments, payment attempts and one transaction per Stripe charge."""

from django.db import models
from django.db.models import Q

from billing.models import MONEY
from payments.constants import IN_FLIGHT_ATTEMPT_STATUSES, AttemptSource, AttemptStatus, DisputeStatus, MethodType, TransactionStatus


class StripeCustomer(models.Model):
    account = models.ForeignKey("billing.Account", on_delete=models.PROTECT, related_name="stripe_customers")
    provider_setting = models.ForeignKey("providers.ProviderSetting", on_delete=models.PROTECT, related_name="stripe_customers")
    stripe_customer_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "provider_setting"], name="one_stripe_customer_per_account_setting"),
            models.UniqueConstraint(fields=["provider_setting", "stripe_customer_id"], name="unique_stripe_customer_id"),
        ]

    def __str__(self) -> str:
        return self.stripe_customer_id


class PaymentInstrument(models.Model):
    """A payment method saved for future (off-session) payments."""

    account = models.ForeignKey("billing.Account", on_delete=models.PROTECT, related_name="payment_instruments")
    provider_setting = models.ForeignKey("providers.ProviderSetting", on_delete=models.PROTECT, related_name="payment_instruments")
    stripe_customer = models.ForeignKey(StripeCustomer, null=True, blank=True, on_delete=models.PROTECT, related_name="instruments")
    stripe_payment_method_id = models.CharField(max_length=255)
    method_type = models.CharField(max_length=20, choices=MethodType.choices)
    brand = models.CharField(max_length=40, blank=True)
    last4 = models.CharField(max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    mandate_id = models.CharField(max_length=255, blank=True)
    active = models.BooleanField(default=False)
    needs_attention = models.BooleanField(default=False)
    attention_reason = models.CharField(max_length=255, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-activated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider_setting", "stripe_payment_method_id"], name="unique_instrument_per_setting"),
        ]

    def __str__(self) -> str:
        if self.method_type == MethodType.SEPA_DEBIT:
            return f"SEPA •••• {self.last4}"
        return f"{self.brand or self.method_type} •••• {self.last4}".strip()


class PaymentAttempt(models.Model):
    """One PaymentIntent the service created for an invoice (page or off-session)."""

    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT, related_name="payment_attempts")
    provider_setting = models.ForeignKey("providers.ProviderSetting", on_delete=models.PROTECT, related_name="payment_attempts")
    number = models.PositiveIntegerField()
    source = models.CharField(max_length=20, choices=AttemptSource.choices)
    idempotency_key = models.CharField(max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    method_type = models.CharField(max_length=20, blank=True)
    save_for_future = models.BooleanField(default=False)
    instrument = models.ForeignKey(PaymentInstrument, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempts")
    status = models.CharField(max_length=20, choices=AttemptStatus.choices, default=AttemptStatus.CREATED)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "number"], name="unique_attempt_number_per_invoice"),
            # At most one attempt in flight per invoice, whether from the page or off-session.
            models.UniqueConstraint(
                fields=["invoice"], condition=Q(status__in=IN_FLIGHT_ATTEMPT_STATUSES), name="one_attempt_in_flight_per_invoice"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.invoice} attempt {self.number}"


class PaymentTransaction(models.Model):
    """One row per Stripe charge: the unit on which webhook events are serialised and ordered."""

    charge_id = models.CharField(max_length=255, unique=True)
    provider_setting = models.ForeignKey("providers.ProviderSetting", on_delete=models.PROTECT, related_name="transactions")
    invoice = models.ForeignKey("billing.Invoice", null=True, blank=True, on_delete=models.PROTECT, related_name="transactions")
    account = models.ForeignKey("billing.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="transactions")
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    payment_method_id = models.CharField(max_length=255, blank=True)
    amount = models.DecimalField(**MONEY, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    method_type = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=12, choices=TransactionStatus.choices, default=TransactionStatus.PENDING)
    last_error = models.TextField(blank=True)
    save_for_future = models.BooleanField(default=False)
    # Stripe `created` of the charge, used as the payment balance date.
    charge_created = models.DateTimeField(null=True, blank=True)
    # Stripe `created` of the last event applied to this charge.
    stripe_created = models.DateTimeField(null=True, blank=True)
    # When the payment was booked (as balances, or as a PaymentEntry when it could not be matched).
    booked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.charge_id


class Dispute(models.Model):
    """One Stripe dispute (chargeback or inquiry) of a charge; a charge can have several (SPEC §7).

    `funds_withdrawn` and `funds_reinstated` are facts that only ever become true, and `status` moves only forward
    (a closed dispute stays closed), so the dispute's events give the same books in any order and with duplicates.
    """

    dispute_id = models.CharField(max_length=255, unique=True)
    transaction = models.ForeignKey(PaymentTransaction, on_delete=models.PROTECT, related_name="disputes")
    provider_setting = models.ForeignKey("providers.ProviderSetting", on_delete=models.PROTECT, related_name="disputes")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=30, choices=DisputeStatus.choices)
    reason = models.CharField(max_length=60, blank=True)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    funds_withdrawn = models.BooleanField(default=False)
    funds_reinstated = models.BooleanField(default=False)
    # Stripe `created` of the dispute and of the last event applied to it.
    stripe_created = models.DateTimeField(null=True, blank=True)
    last_event_created = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["evidence_due_by", "id"]

    def __str__(self) -> str:
        return self.dispute_id

    @property
    def is_inquiry(self) -> bool:
        return self.status.startswith("warning_")
