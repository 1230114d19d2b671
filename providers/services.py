"""Writes for provider settings: the validation rules of SPEC §5, saving with locks, testing the connection."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from billing.audit import record_audit
from billing.constants import AuditAction
from billing.ledger.sql import advisory_transaction_lock
from providers.models import ProviderSetting
from providers.signals import setting_mode_changed
from providers.stripe import gateway

KEY_PREFIXES = {"test": ("sk_test_", "rk_test_"), "live": ("sk_live_", "rk_live_")}


def key_mode(publishable_key: str) -> str | None:
    if publishable_key.startswith("pk_test_"):
        return "test"
    if publishable_key.startswith("pk_live_"):
        return "live"
    return None


def validate_keys(*, publishable_key: str, secret_key: str, webhook_secret: str) -> dict[str, str]:
    """Field errors for keys that do not match their kind and mode (an empty secret means 'keep')."""
    errors: dict[str, str] = {}
    mode = key_mode(publishable_key or "")
    if mode is None:
        errors["publishable_key"] = "A publishable key starts with pk_test_ or pk_live_."
    if secret_key:
        secret_mode = "test" if secret_key.startswith(KEY_PREFIXES["test"]) else "live" if secret_key.startswith(KEY_PREFIXES["live"]) \
            else None
        if secret_mode is None:
            errors["secret_key"] = "A secret key starts with sk_test_, sk_live_ (or rk_ for a restricted key)."
        elif mode and secret_mode != mode:
            errors["secret_key"] = f"This is a {secret_mode} secret key, but the publishable key is a {mode} key."
    if webhook_secret and not webhook_secret.startswith("whsec_"):
        errors["webhook_secret"] = "A webhook signing secret starts with whsec_."
    return errors


def validate_future_payments(*, enable: bool, active: bool, changeable: bool) -> dict[str, str]:
    if enable and not active and not changeable:
        return {"future_payments_changeable": "With future payments enabled, neither active nor changeable means no customer "
                                              "could ever opt in: make it active, changeable, or both."}
    return {}


def conflicting_active_settings(setting: ProviderSetting, entity_ids: list[int]) -> list[str]:
    """Sentences for every active setting this one would collide with (one per entity, one default)."""
    others = ProviderSetting.objects.filter(provider=setting.provider, active=True).exclude(pk=setting.pk)
    problems = []
    if entity_ids:
        for other in others.filter(business_entities__id__in=entity_ids).distinct().prefetch_related("business_entities"):
            shared = sorted(entity.name for entity in other.business_entities.all() if entity.id in entity_ids)
            problems.append(f"“{other.name}” is already the active Stripe setting for {', '.join(shared)}; deactivate it first.")
    else:
        for other in others.filter(business_entities__isnull=True):
            problems.append(f"“{other.name}” is already the active default Stripe setting; deactivate it first.")
    return problems


def validate_provider_setting(setting: ProviderSetting, *, entity_ids: list[int], secret_key: str = "",
                              webhook_secret: str = "") -> None:
    """Every SPEC §5 rule; raises ValidationError with field errors. Writes nothing."""
    errors = validate_keys(publishable_key=setting.publishable_key, secret_key=secret_key, webhook_secret=webhook_secret)
    if not secret_key and not setting.secret_key_encrypted:
        errors["secret_key"] = "A secret key is required."
    new_mode = key_mode(setting.publishable_key or "")
    if not secret_key and setting.pk and new_mode and setting.secret_key_encrypted:
        stored_key = ProviderSetting.objects.get(pk=setting.pk).secret_key
        stored_mode = "live" if stored_key.startswith(KEY_PREFIXES["live"]) else "test"
        if stored_mode != new_mode:
            errors["secret_key"] = f"The stored secret key is a {stored_mode} key: enter a {new_mode} secret key as well."
    errors.update(validate_future_payments(enable=setting.enable_future_payments, active=setting.future_payments_active,
                                           changeable=setting.future_payments_changeable))
    if setting.active:
        conflicts = conflicting_active_settings(setting, entity_ids)
        if conflicts:
            errors["active"] = " ".join(conflicts)
    if errors:
        raise ValidationError(errors)


def _lock_provider(provider: str) -> None:
    """Serialise saves of one provider's settings (a transaction-scoped PostgreSQL advisory lock;
    SQLite serialises writers anyway). Row locks would not do: there may be no row to lock yet."""
    advisory_transaction_lock(f"provider-settings:{provider}")


@transaction.atomic
def save_provider_setting(
    setting: ProviderSetting, *, entity_ids: list[int], secret_key: str = "", webhook_secret: str = "", user=None
) -> ProviderSetting:
    """Validate and save; empty secrets keep the stored values. Raises ValidationError with field errors.

    The settings of the provider are row-locked first so that two administrators saving at once
    cannot both create an active setting for the same entity. The audit trail gets the names of the fields that
    changed (a secret only as "replaced", never its value), written in the same transaction.
    """
    _lock_provider(setting.provider)
    validate_provider_setting(setting, entity_ids=entity_ids, secret_key=secret_key, webhook_secret=webhook_secret)
    stored = ProviderSetting.objects.filter(pk=setting.pk).first() if setting.pk else None
    previous_mode = stored.mode if stored else None
    previous_entities = set(stored.business_entities.values_list("pk", flat=True)) if stored else set()
    if secret_key:
        setting.secret_key = secret_key
    if webhook_secret:
        setting.webhook_secret = webhook_secret
    mode_changed = bool(previous_mode and previous_mode != setting.mode)
    if mode_changed:
        setting.stripe_account_id = ""  # learned again from the other mode's account
    setting.save()
    setting.business_entities.set(entity_ids)
    changed = _changed_setting_fields(stored, setting, entities_changed=previous_entities != set(entity_ids),
                                      secret_key=bool(secret_key), webhook_secret=bool(webhook_secret))
    if stored is None or changed:
        detail = "Created." if stored is None else "Changed: " + ", ".join(changed) + "."
        record_audit(AuditAction.PROVIDER_SETTING_CHANGED, obj=setting, user=user, detail=detail)
    if mode_changed:
        # Saved methods belong to one mode's Stripe data; the payments app deactivates them (same transaction).
        setting_mode_changed.send(sender=ProviderSetting, setting=setting)
    return setting


# Stored only encrypted (and as their last four characters): an audit entry names them, never their values.
SECRET_FIELDS = {"secret_key_encrypted", "webhook_secret_encrypted", "secret_key_last4", "webhook_secret_last4"}
UNAUDITED_FIELDS = {"id", "created_at", "updated_at", "webhook_id", *SECRET_FIELDS}


def _changed_setting_fields(stored: ProviderSetting | None, setting: ProviderSetting, *, entities_changed: bool,
                            secret_key: bool, webhook_secret: bool) -> list[str]:
    """The verbose names of the fields a save changed; the secrets as "secret key replaced", no value at all."""
    if stored is None:
        return []
    changed = [str(field.verbose_name) for field in ProviderSetting._meta.concrete_fields
               if field.name not in UNAUDITED_FIELDS and getattr(stored, field.attname) != getattr(setting, field.attname)]
    if entities_changed:
        changed.append("business entities")
    if secret_key:
        changed.append("secret key replaced")
    if webhook_secret:
        changed.append("webhook secret replaced")
    return changed


@dataclass
class ConnectionReport:
    ok: bool
    message: str


def test_connection(setting: ProviderSetting) -> ConnectionReport:
    """Ask Stripe who the key belongs to; remember the account id. Never raises for Stripe's errors."""
    try:
        account = gateway.retrieve_account(setting)
    except gateway.StripeGatewayError as exc:
        return ConnectionReport(False, f"“{setting.name}”: {exc}")
    account_id = account.get("id") or ""
    if account_id and account_id != setting.stripe_account_id:
        ProviderSetting.objects.filter(pk=setting.pk).update(stripe_account_id=account_id)
    return ConnectionReport(True, f"“{setting.name}” reaches Stripe account {account_id} in {setting.mode} mode.")


def rotate_encryption(settings_queryset=None) -> int:
    """Re-encrypt every stored secret with the newest FIELD_ENCRYPTION_KEYS key."""
    from providers.crypto import rotate

    count = 0
    with transaction.atomic():
        for setting in (settings_queryset or ProviderSetting.objects.all()).select_for_update():
            setting.secret_key_encrypted = rotate(setting.secret_key_encrypted)
            setting.webhook_secret_encrypted = rotate(setting.webhook_secret_encrypted)
            setting.save(update_fields=["secret_key_encrypted", "webhook_secret_encrypted"])
            count += 1
    return count
