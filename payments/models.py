"""Stripe customers, saved payment instruments, payment attempts, one transaction per Stripe charge and its disputes, and
the payouts that bring the money to the bank with their lines and Stripe's fees (reconciliation: payments/services/payouts.py)."""

from django.db import models
from django.db.models import Q

from billing.models import MONEY
from payments.constants import (
    IN_FLIGHT_ATTEMPT_STATUSES,
    AttemptSource,
    AttemptStatus,
    DisputeStatus,
    MethodType,
    PayoutLineKind,
    PayoutStatus,
    TransactionStatus,
)


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
    # Replaced by a new attempt, but Stripe failed to cancel its PaymentIntent: the beat task retries
    # (payments.tasks.cancel_replaced_payment_intents) so that no abandoned page can still confirm it.
    stripe_cancel_pending = models.BooleanField(default=False)
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
    # Stripe's evidence_details: facts that only grow (evidence given, submissions, past due), so stale events cannot undo them.
    has_evidence = models.BooleanField(default=False)
    evidence_submission_count = models.PositiveSmallIntegerField(default=0)
    evidence_past_due = models.BooleanField(default=False)
    # What finance submitted from the admin: when, by whom, the evidence sent and Stripe's ids of the uploaded files.
    evidence_submitted_at = models.DateTimeField(null=True, blank=True)
    evidence_submitted_by = models.CharField(max_length=150, blank=True)
    evidence_submitted = models.JSONField(default=dict, blank=True)
    evidence_file_ids = models.JSONField(default=dict, blank=True, help_text="Evidence field -> Stripe file id.")
    accepted_at = models.DateTimeField(null=True, blank=True, help_text="When finance accepted the dispute (Stripe closed it).")
    accepted_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["evidence_due_by", "id"]

    def __str__(self) -> str:
        return self.dispute_id

    @property
    def is_inquiry(self) -> bool:
        return self.status.startswith("warning_")


# Stripe's exchange rates carry up to about ten significant decimals.
EXCHANGE_RATE = {"max_digits": 24, "decimal_places": 12}


class Payout(models.Model):
    """A Stripe payout (the line on the bank statement), mirrored per setting, and what reconciling it found.

    `stripe_status` is Stripe's (pending, in_transit, paid, failed, canceled); `status` is the reconciliation's
    (PayoutStatus), with every reason it does not reconcile in `differences`: a list of
    {"kind", "object_id", "expected", "actual", "sentence"}.
    """

    provider_setting = models.ForeignKey("providers.ProviderSetting", on_delete=models.PROTECT, related_name="payouts")
    stripe_payout_id = models.CharField(max_length=255)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    arrival_date = models.DateField(null=True, blank=True)
    stripe_created = models.DateTimeField(null=True, blank=True)
    automatic = models.BooleanField(default=True, help_text="Manual payouts cannot be itemised by Stripe.")
    method = models.CharField(max_length=20, blank=True)
    description = models.CharField(max_length=255, blank=True)
    balance_transaction_id = models.CharField(max_length=255, blank=True)
    stripe_status = models.CharField(max_length=20, blank=True)
    stripe_reconciliation_status = models.CharField(max_length=20, blank=True)
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=PayoutStatus.choices, default=PayoutStatus.PENDING)
    differences = models.JSONField(default=list, blank=True)
    # Totals of the lines in the payout's currency (the payout's own line excluded): charges' gross, fees (per
    # charge and separate fee lines), refunds and disputes as positive amounts taken out, and other lines as added.
    line_count = models.PositiveIntegerField(default=0)
    charges_gross = models.DecimalField(**MONEY, null=True, blank=True)
    fees_total = models.DecimalField(**MONEY, null=True, blank=True)
    refunds_total = models.DecimalField(**MONEY, null=True, blank=True)
    disputes_total = models.DecimalField(**MONEY, null=True, blank=True)
    other_total = models.DecimalField(**MONEY, null=True, blank=True)
    lines_net = models.DecimalField(**MONEY, null=True, blank=True)
    reconciled_at = models.DateTimeField(null=True, blank=True, help_text="When the lines were last matched to the books.")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-arrival_date", "-id"]
        indexes = [models.Index(fields=["status", "arrival_date"]), models.Index(fields=["provider_setting", "stripe_created"])]
        constraints = [
            models.UniqueConstraint(fields=["provider_setting", "stripe_payout_id"], name="one_payout_per_setting_and_stripe_id"),
        ]

    def __str__(self) -> str:
        return self.stripe_payout_id

    @property
    def difference_count(self) -> int:
        return len(self.differences or [])


class PayoutLine(models.Model):
    """One balance transaction of a payout (Stripe's amounts in the payout's currency, and the source's own amount
    and currency when it was converted), and what it matched in the books."""

    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="lines")
    balance_transaction_id = models.CharField(max_length=255)
    type = models.CharField(max_length=60)
    reporting_category = models.CharField(max_length=60, blank=True)
    kind = models.CharField(max_length=20, choices=PayoutLineKind.choices)
    gross = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY)
    net = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    exchange_rate = models.DecimalField(**EXCHANGE_RATE, null=True, blank=True)
    source_id = models.CharField(max_length=255, blank=True)
    source_amount = models.DecimalField(**MONEY, null=True, blank=True)
    source_currency = models.CharField(max_length=3, blank=True)
    # The charge behind the line: the source of a charge line, the refunded or disputed charge of the others.
    charge_id = models.CharField(max_length=255, blank=True)
    description = models.CharField(max_length=255, blank=True)
    stripe_created = models.DateTimeField(null=True, blank=True)
    available_on = models.DateTimeField(null=True, blank=True)
    fee_details = models.JSONField(default=list, blank=True)
    matched = models.BooleanField(default=False)
    note = models.TextField(blank=True, help_text="What the line matched in the books, or why it did not.")
    transaction = models.ForeignKey(PaymentTransaction, null=True, blank=True, on_delete=models.SET_NULL, related_name="payout_lines")
    # What the line matched when it was reconciled (ids, not foreign keys: the ledger may delete a failed charge's
    # balances, and the books must never be held up by a payout's record of them).
    balance_ids = models.JSONField(default=list, blank=True)
    payment_entry_ids = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["source_id"]), models.Index(fields=["charge_id"])]
        constraints = [
            models.UniqueConstraint(fields=["payout", "balance_transaction_id"], name="one_line_per_payout_and_balance_transaction"),
        ]

    def __str__(self) -> str:
        return self.balance_transaction_id


class StripeFee(models.Model):
    """A fee Stripe charged (or gave back, when negative): one per fee of a line (a charge's processing fee, a
    dispute fee) or per separate fee line (monthly fees, which have no charge).

    Not a billing.Balance: balances are customers' money on an account, and the books' invariants (SPEC §11) are
    about that money; Stripe's fees are the business entity's own cost, paid out of the payout, owed by no customer.
    """

    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="fees")
    # Deleted with their lines by the payout service, one statement each (a cascade would make Django delete
    # thousands of lines one batch of 100 at a time); the deferred foreign key still refuses a dangling fee.
    payout_line = models.ForeignKey(PayoutLine, on_delete=models.DO_NOTHING, related_name="fees")
    transaction = models.ForeignKey(PaymentTransaction, null=True, blank=True, on_delete=models.SET_NULL, related_name="stripe_fees")
    balance_transaction_id = models.CharField(max_length=255)
    charge_id = models.CharField(max_length=255, blank=True)
    fee_type = models.CharField(max_length=40)
    description = models.CharField(max_length=255, blank=True)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    stripe_created = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.fee_type} {self.amount} {self.currency}"
