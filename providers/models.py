"""Stripe provider settings, one per business entity (or the default), with secrets encrypted at rest."""

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from billing.constants import PROVIDER_STRIPE

# Stripe's standard payout schedules pay a charge out 2 to 7 days after it succeeded (7 for new accounts in many
# countries), and a SEPA debit succeeds days after it was made: a week is the default before booked money that
# reached no payout is named as missing.
DEFAULT_PAYOUT_DELAY_DAYS = 7
MAX_PAYOUT_DELAY_DAYS = 60


class ProviderSetting(models.Model):
    PROVIDER_CHOICES = [(PROVIDER_STRIPE, "Stripe")]

    name = models.CharField(max_length=200, unique=True, help_text="A descriptive name that identifies this setting.")
    provider = models.CharField(max_length=20, choices=PROVIDER_CHOICES, default=PROVIDER_STRIPE)
    business_entities = models.ManyToManyField(
        "billing.BusinessEntity",
        blank=True,
        related_name="provider_settings",
        help_text="None selected: the default for every business entity without its own setting.",
    )
    active = models.BooleanField(default=True, help_text="Inactive settings take no new payments but keep processing webhooks.")
    publishable_key = models.CharField(max_length=255)
    # Fernet tokens (see providers.crypto); never the plain secret.
    secret_key_encrypted = models.TextField(blank=True)
    webhook_secret_encrypted = models.TextField(blank=True)
    # The last four characters, kept in clear so the admin can say "set, ends in …1234".
    secret_key_last4 = models.CharField(max_length=4, blank=True)
    webhook_secret_last4 = models.CharField(max_length=4, blank=True)
    stripe_account_id = models.CharField(max_length=255, blank=True, help_text="Learned from Stripe.")
    webhook_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    enable_future_payments = models.BooleanField(default=False)
    future_payments_active = models.BooleanField(default=False)
    future_payments_changeable = models.BooleanField(default=False)
    method_card = models.BooleanField("Credit card", default=False)
    method_sepa_debit = models.BooleanField("SEPA Direct Debit", default=False)
    method_alipay = models.BooleanField("Alipay", default=False)
    payout_delay_days = models.PositiveSmallIntegerField(
        "expected payout delay (days)", default=DEFAULT_PAYOUT_DELAY_DAYS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PAYOUT_DELAY_DAYS)],
        help_text="Money booked longer ago than this that reached no Stripe payout is named as a difference on the next "
                  "payout. Stripe's payout schedule (Dashboard → Settings → Payouts) plus a margin: SEPA debits settle "
                  "later than cards.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def livemode(self) -> bool:
        return self.publishable_key.startswith("pk_live_")

    @property
    def mode(self) -> str:
        return "live" if self.livemode else "test"

    @property
    def payment_method_types(self) -> list[str]:
        """Stripe payment method types this setting offers; none selected means card."""
        types = []
        if self.method_card:
            types.append("card")
        if self.method_sepa_debit:
            types.append("sepa_debit")
        if self.method_alipay:
            types.append("alipay")
        return types or ["card"]

    # Secrets: decrypted on demand, never cached on the instance, never in __repr__.
    @property
    def secret_key(self) -> str:
        return self._decrypted(self.secret_key_encrypted, "secret key")

    @secret_key.setter
    def secret_key(self, value: str) -> None:
        from providers.crypto import encrypt

        self.secret_key_encrypted = encrypt(value) if value else ""
        self.secret_key_last4 = value[-4:] if value else ""

    @property
    def webhook_secret(self) -> str:
        return self._decrypted(self.webhook_secret_encrypted, "webhook secret")

    def _decrypted(self, token: str, what: str) -> str:
        from providers.crypto import SecretDecryptionError, decrypt

        try:
            return decrypt(token)
        except SecretDecryptionError:  # say which setting and what to do: the log is read by whoever fixes it
            raise SecretDecryptionError(
                f"The {what} of provider setting {self.name!r} (id {self.pk}) cannot be decrypted with any key in "
                "FIELD_ENCRYPTION_KEYS: put back the key that encrypted it (rotate_encryption_keys re-encrypts), "
                "or enter the secret again in the admin.") from None

    @webhook_secret.setter
    def webhook_secret(self, value: str) -> None:
        from providers.crypto import encrypt

        self.webhook_secret_encrypted = encrypt(value) if value else ""
        self.webhook_secret_last4 = value[-4:] if value else ""
