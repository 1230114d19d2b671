"""Business entities, customer accounts, invoices (and credit notes), balances and payment entries.

Sign convention: invoices are positive, credit notes negative, payment balances negative and refund
balances positive. An invoice's open amount is its amount plus the balances linked to it.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.constants import (
    AuditAction,
    BalanceStatus,
    BalanceType,
    InvoiceKind,
    InvoiceStatus,
    PaymentEntryKind,
    PaymentEntryStatus,
)
from billing.money import MoneyError, format_amount

# Three decimals so that BHD, KWD and friends fit; two-decimal currencies simply keep a 0.
MONEY = {"max_digits": 18, "decimal_places": 3}


class BusinessEntity(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    display_name = models.CharField(max_length=200, blank=True, help_text="Shown to customers.")
    logo_url = models.URLField(blank=True)
    support_email = models.EmailField(blank=True)
    finance_email = models.EmailField(blank=True, help_text="Told about new disputes; empty: the support address.")
    default_currency = models.CharField(max_length=3, default="EUR")

    class Meta:
        ordering = ["name"]
        verbose_name = _("business entity")
        verbose_name_plural = _("business entities")

    def __str__(self) -> str:
        return self.name

    @property
    def public_name(self) -> str:
        return self.display_name or self.name


class Account(models.Model):
    business_entity = models.ForeignKey(BusinessEntity, verbose_name=_("business entity"), on_delete=models.PROTECT,
                                        related_name="accounts")
    name = models.CharField(_("name"), max_length=200)
    email = models.EmailField(_("email"), blank=True)
    # The language of everything the customer receives (receipts, reminders, payment-link emails).
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default="en")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("account")
        verbose_name_plural = _("accounts")

    def __str__(self) -> str:
        return self.name


class Invoice(models.Model):
    number = models.CharField(_("number"), max_length=64, unique=True)
    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.PROTECT, related_name="invoices")
    business_entity = models.ForeignKey(BusinessEntity, verbose_name=_("business entity"), on_delete=models.PROTECT,
                                        related_name="invoices")
    kind = models.CharField(_("kind"), max_length=10, choices=InvoiceKind.choices, default=InvoiceKind.INVOICE)
    amount = models.DecimalField(_("amount"), **MONEY)
    currency = models.CharField(_("currency"), max_length=3)
    payment_reference = models.CharField(_("payment reference"), max_length=140, blank=True)
    due_date = models.DateField(_("due date"), null=True, blank=True)
    # Stored for querying, written only by the ledger (billing.ledger.invoices): derived from the balances.
    status = models.CharField(_("status"), max_length=10, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    finalized_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        indexes = [models.Index(fields=["status", "due_date"])]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind=InvoiceKind.INVOICE) & Q(amount__gt=0))
                | (Q(kind=InvoiceKind.CREDIT) & Q(amount__lt=0)),
                name="invoice_amount_sign_matches_kind",
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="invoice_currency_iso"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_credit(self) -> bool:
        return self.kind == InvoiceKind.CREDIT


class Balance(models.Model):
    # Indexes are written on every booking: the FKs below that a composite index already leads with, or that
    # are nearly always NULL, get no index of their own (see Meta.indexes).
    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.PROTECT, related_name="balances", db_index=False)
    invoice = models.ForeignKey(Invoice, verbose_name=_("invoice"), null=True, blank=True, on_delete=models.PROTECT,
                                related_name="balances")
    type = models.CharField(_("type"), max_length=12, choices=BalanceType.choices)
    amount = models.DecimalField(_("amount"), **MONEY)
    currency = models.CharField(_("currency"), max_length=3)
    # When the money moved, taken from Stripe (the charge's or refund's `created`).
    date = models.DateTimeField(_("date"))
    # Looked up with its setting (the (provider_setting, transaction_number) index): no index of its own, which
    # with Django's extra LIKE index would be two more index writes per balance written.
    transaction_number = models.CharField(_("transaction number"), max_length=255, blank=True)
    provider_setting = models.ForeignKey(
        "providers.ProviderSetting", null=True, blank=True, on_delete=models.PROTECT, related_name="balances", db_index=False
    )
    locked = models.BooleanField(_("locked"), default=False)
    lock_reason = models.CharField(_("lock reason"), max_length=100, blank=True)
    split_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="split_parts", db_index=False
    )
    refunds_balance = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="refunded_by", db_index=False
    )
    stripe_refund_id = models.CharField(max_length=255, blank=True)  # indexed where set (Meta.indexes)
    is_overrefund = models.BooleanField(_("overrefund"), default=False)
    status = models.CharField(_("status"), max_length=10, choices=BalanceStatus.choices, default=BalanceStatus.CONFIRMED)
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Adjustments of a dispute (SPEC §7): the Stripe dispute id (du_…), and the balance mirrored — for the money
    # withdrawn, the charge's payment balance it takes back; for its reinstatement, the withdrawal it reverses.
    dispute_id = models.CharField(max_length=255, blank=True)  # indexed where set (Meta.indexes)
    adjusts_balance = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="adjusted_by", db_index=False
    )

    class Meta:
        ordering = ["date", "id"]
        verbose_name = _("balance")
        verbose_name_plural = _("balances")
        indexes = [
            models.Index(fields=["provider_setting", "transaction_number"]),
            models.Index(fields=["account", "currency", "invoice"]),
            models.Index(fields=["split_from"], name="balance_split_from", condition=Q(split_from__isnull=False)),
            models.Index(fields=["refunds_balance"], name="balance_refunds_balance", condition=Q(refunds_balance__isnull=False)),
            models.Index(fields=["stripe_refund_id"], name="balance_stripe_refund", condition=~Q(stripe_refund_id="")),
            models.Index(fields=["dispute_id"], name="balance_dispute", condition=~Q(dispute_id="")),
            models.Index(fields=["adjusts_balance"], name="balance_adjusts", condition=Q(adjusts_balance__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(type=BalanceType.PAYMENT) | Q(amount__lt=0), name="payment_balance_negative"
            ),
            models.CheckConstraint(
                condition=~Q(type=BalanceType.REFUND) | Q(amount__gt=0), name="refund_balance_positive"
            ),
            models.CheckConstraint(condition=~Q(amount=Decimal("0")), name="balance_amount_not_zero"),
            models.CheckConstraint(
                condition=Q(locked=False) | ~Q(lock_reason=""), name="locked_balance_has_reason"
            ),
            models.CheckConstraint(condition=~Q(split_from=F("id")), name="balance_not_split_from_itself"),
            # A dispute's adjustment mirrors one balance at most once per side (SPEC §11 invariant 6).
            models.UniqueConstraint(fields=["dispute_id", "adjusts_balance"], condition=~Q(dispute_id="") & Q(split_from__isnull=True),
                                    name="one_dispute_adjustment_per_balance"),
        ]

    def __str__(self) -> str:
        try:
            amount = format_amount(self.amount, self.currency)
        except (MoneyError, TypeError, ArithmeticError):  # an unsaved row, a currency the books cannot take
            amount = f"{self.amount} {self.currency}"
        return f"{self.get_type_display()} {amount}"

    @property
    def is_pending(self) -> bool:
        return self.status == BalanceStatus.PENDING


class PaymentEntry(models.Model):
    """Money that moved but could not be booked as a balance automatically; finance resolves it."""

    provider = models.CharField(max_length=20, default="stripe")
    kind = models.CharField(_("kind"), max_length=20, choices=PaymentEntryKind.choices, default=PaymentEntryKind.OTHER)
    provider_setting = models.ForeignKey(
        "providers.ProviderSetting", null=True, blank=True, on_delete=models.PROTECT, related_name="payment_entries"
    )
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.PROTECT, related_name="payment_entries")
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="payment_entries")
    transaction_number = models.CharField(_("transaction number"), max_length=255, db_index=True)
    stripe_refund_id = models.CharField(max_length=255, null=True, blank=True)
    amount = models.DecimalField(_("amount"), **MONEY)
    currency = models.CharField(_("currency"), max_length=3)
    date = models.DateTimeField(_("date"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    status = models.CharField(_("status"), max_length=10, choices=PaymentEntryStatus.choices, default=PaymentEntryStatus.OPEN)
    raw = models.JSONField(default=dict, blank=True)
    resolved_balance = models.ForeignKey(
        Balance, null=True, blank=True, on_delete=models.SET_NULL, related_name="resolved_entries"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Money received through a SEPA debit that is still in flight is pending until the charge succeeds; a balance
    # resolved from the entry is booked pending too, so it cannot be refunded and goes if the debit fails.
    payment_status = models.CharField(max_length=10, choices=BalanceStatus.choices, default=BalanceStatus.CONFIRMED)
    # A later movement of the money this entry's parent holds (a refund, a dispute's withdrawal): booked as balances
    # when the parent is resolved.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="movements")
    dispute_id = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("payment entry")
        verbose_name_plural = _("payment entries")
        constraints = [
            # One entry per refund and kind (its booking, its failure), and one per unmatched charge and kind.
            models.UniqueConstraint(
                fields=["stripe_refund_id", "kind"], condition=Q(stripe_refund_id__isnull=False), name="one_entry_per_refund_and_kind"
            ),
            models.UniqueConstraint(
                fields=["provider", "kind", "transaction_number"],
                condition=Q(stripe_refund_id__isnull=True, dispute_id__isnull=True),
                name="one_entry_per_charge_and_kind",
            ),
            models.UniqueConstraint(fields=["dispute_id", "kind"], condition=Q(dispute_id__isnull=False),
                                    name="one_entry_per_dispute_and_kind"),
        ]

    def __str__(self) -> str:
        try:
            amount = format_amount(self.amount, self.currency)
        except (MoneyError, TypeError, ArithmeticError):  # currency XXX: Stripe's minor units, kept as they came
            amount = f"{self.amount} {self.currency}"
        return f"{self.get_kind_display()} {self.transaction_number} {amount}"


class AuditEntry(models.Model):
    """One thing a person (or the system, user empty) did to money, written by the service that did it in the same
    transaction (billing.audit.record_audit). Never edited: the admin shows it read-only.

    The invoice and balance are plain references without a database constraint: the trail must outlive (and never
    block) a balance the ledger removes, and its `object_label` keeps it readable then.
    """

    created_at = models.DateTimeField(_("time"), default=timezone.now)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("user"), null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", help_text=_("Empty: the system (a scheduled task, a webhook)."))
    action = models.CharField(_("action"), max_length=32, choices=AuditAction.choices)
    object_type = models.CharField(_("object type"), max_length=64)
    object_id = models.CharField(_("object id"), max_length=64)
    object_label = models.CharField(_("object"), max_length=255)
    invoice = models.ForeignKey(Invoice, verbose_name=_("invoice"), null=True, blank=True, on_delete=models.DO_NOTHING,
                                db_constraint=False, db_index=False, related_name="audit_entries")
    balance = models.ForeignKey(Balance, verbose_name=_("balance"), null=True, blank=True, on_delete=models.DO_NOTHING,
                                db_constraint=False, db_index=False, related_name="audit_entries")
    amount_before = models.DecimalField(_("amount before"), null=True, blank=True, **MONEY)
    amount_after = models.DecimalField(_("amount after"), null=True, blank=True, **MONEY)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    detail = models.CharField(_("detail"), max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit trail")
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="audit_newest_first"),
            models.Index(fields=["action", "-created_at"], name="audit_by_action"),
            models.Index(fields=["user", "-created_at"], name="audit_by_user"),
            models.Index(fields=["invoice", "-created_at"], name="audit_by_invoice", condition=Q(invoice__isnull=False)),
            models.Index(fields=["balance", "-created_at"], name="audit_by_balance", condition=Q(balance__isnull=False)),
            models.Index(fields=["object_type", "object_id"], name="audit_by_object"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.object_label}"
