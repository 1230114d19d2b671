"""Which Stripe setting applies: for an invoice (new payments) or for a webhook endpoint."""

import re
import time

from django.db.models import Q

from billing.constants import PROVIDER_STRIPE
from billing.models import Invoice
from providers.models import ProviderSetting


class NoProviderSetting(Exception):
    """No active Stripe setting for the invoice's business entity (and no active default)."""


class PaymentReferenceError(Exception):
    """The invoice's payment reference cannot be used with Stripe."""


def setting_for_invoice(invoice: Invoice, *, provider: str = PROVIDER_STRIPE) -> ProviderSetting:
    """The active setting linked to the invoice's entity, else the active default, else an error."""
    entity_id = invoice.business_entity_id
    candidates = ProviderSetting.objects.filter(provider=provider, active=True).filter(
        Q(business_entities__id=entity_id) | Q(business_entities__isnull=True)
    ).distinct().prefetch_related("business_entities")
    own = default = None
    for setting in candidates:
        if any(entity.id == entity_id for entity in setting.business_entities.all()):
            own = setting
        elif not setting.business_entities.all():
            default = setting
    if own or default:
        return own or default
    raise NoProviderSetting(f"There is no Stripe setting for business entity “{invoice.business_entity}”.")


# The webhook hot path looks its setting up on every request; a short per-process cache saves a
# database round trip. Saving a setting clears it (providers.signals); other processes see a change
# within WEBHOOK_SETTING_CACHE_SECONDS.
WEBHOOK_SETTING_CACHE_SECONDS = 30
_webhook_settings: dict[str, tuple[float, ProviderSetting | None]] = {}


def _cached_setting(key: str, load) -> ProviderSetting | None:
    cached = _webhook_settings.get(key)
    now = time.monotonic()
    if cached and now - cached[0] < WEBHOOK_SETTING_CACHE_SECONDS:
        return cached[1]
    setting = load()
    if setting is not None:  # unknown ids are not cached: nobody can fill the cache with junk
        _webhook_settings[key] = (now, setting)
    return setting


def setting_by_webhook_id(webhook_id) -> ProviderSetting | None:
    """The setting of a webhook endpoint, active or not (inactive settings still process events)."""
    return _cached_setting(str(webhook_id), lambda: ProviderSetting.objects.filter(webhook_id=webhook_id).order_by().first())


def setting_by_id(setting_id: int) -> ProviderSetting | None:
    """A setting by primary key through the same short cache (the event worker's hot path)."""
    return _cached_setting(f"pk:{setting_id}", lambda: ProviderSetting.objects.filter(pk=setting_id).first())


def forget_cached_settings() -> None:
    _webhook_settings.clear()


def check_payment_reference(invoice: Invoice) -> None:
    """Stripe needs a payment reference with at least one letter (seed); refuse before any Stripe call."""
    if not re.search(r"[^\W\d_]", invoice.payment_reference or ""):
        raise PaymentReferenceError(
            f"Invoice {invoice.number} cannot be paid online: its payment reference "
            f"“{invoice.payment_reference}” must contain at least one letter."
        )
