"""Which Stripe setting applies: for an invoice (new payments) or for a webhook endpoint."""

import re
import time
from dataclasses import dataclass

from billing.constants import PROVIDER_STRIPE
from billing.models import Invoice
from providers.models import ProviderSetting


class NoProviderSetting(Exception):
    """No active Stripe setting for the invoice's business entity (and no active default)."""


class PaymentReferenceError(Exception):
    """The invoice's payment reference cannot be used with Stripe."""


def setting_for_invoice(invoice: Invoice, *, provider: str = PROVIDER_STRIPE) -> ProviderSetting:
    """The active setting linked to the invoice's entity, else the active default, else an error. Read from the short
    per-process cache of which settings serve which entities (the payment page asks on every view)."""
    serving = _serving_map()
    setting_id = serving.active_own_id.get(invoice.business_entity_id, serving.active_default_id)
    setting = setting_by_id(setting_id) if setting_id else None
    if setting is None or not setting.active or setting.provider != provider:
        raise NoProviderSetting(f"There is no Stripe setting for business entity “{invoice.business_entity}”.")
    return setting


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
    _serving.clear()


# Which settings serve which business entities (SPEC §7 Tenancy), read in two queries and cached like the settings
# above: every booked payment asks.
_serving: dict[str, tuple[float, object]] = {}


@dataclass(frozen=True)
class ServingMap:
    own_entities: dict[int, frozenset[int]]  # setting id -> the entities it is linked to (empty: a default setting)
    active_own: dict[int, str]  # entity id -> mode of its active own setting
    active_default_mode: str | None  # mode of the active default setting, if any
    active_own_id: dict[int, int]  # entity id -> its active own setting
    active_default_id: int | None  # the active default setting


def _serving_map() -> ServingMap:
    cached = _serving.get("map")
    now = time.monotonic()
    if cached and now - cached[0] < WEBHOOK_SETTING_CACHE_SECONDS:
        return cached[1]
    own: dict[int, set[int]] = {}
    for setting_id, entity_id in ProviderSetting.business_entities.through.objects.values_list("providersetting_id", "businessentity_id"):
        own.setdefault(setting_id, set()).add(entity_id)
    active_own, default_mode, active_own_id, default_id = {}, None, {}, None
    for setting in ProviderSetting.objects.filter(provider=PROVIDER_STRIPE, active=True).only("id", "publishable_key").order_by("id"):
        if setting.pk in own:
            for entity_id in own[setting.pk]:
                active_own[entity_id], active_own_id[entity_id] = setting.mode, setting.pk
        else:
            default_mode, default_id = setting.mode, setting.pk
    serving = ServingMap({key: frozenset(value) for key, value in own.items()}, active_own, default_mode, active_own_id, default_id)
    _serving["map"] = (now, serving)
    return serving


def setting_serves_entity(setting: ProviderSetting, entity_id: int) -> bool:
    """May this setting's money touch the books of this business entity? Its own entities; for a default setting, the
    entities without an active setting of their own; and only in the mode the entity is served in now (a test-mode
    event never pays a live invoice). Inactive settings keep serving their entities (late SEPA outcomes, disputes)."""
    serving = _serving_map()
    own = serving.own_entities.get(setting.pk)
    if own:
        if entity_id not in own:
            return False
    elif entity_id in serving.active_own:
        return False
    current_mode = serving.active_own.get(entity_id, serving.active_default_mode)
    return current_mode is None or current_mode == setting.mode


def setting_serves_invoice(setting: ProviderSetting, invoice: Invoice) -> bool:
    return setting_serves_entity(setting, invoice.business_entity_id)


def setting_id_serves_invoice(setting_id: int, invoice: Invoice) -> bool:
    """The ledger's tenancy hook (billing.ledger.hooks): by setting id."""
    setting = setting_by_id(setting_id)
    return setting is not None and setting_serves_entity(setting, invoice.business_entity_id)


def check_payment_reference(invoice: Invoice) -> None:
    """Stripe needs a payment reference with at least one letter (seed); refuse before any Stripe call."""
    if not re.search(r"[^\W\d_]", invoice.payment_reference or ""):
        raise PaymentReferenceError(
            f"Invoice {invoice.number} cannot be paid online: its payment reference "
            f"“{invoice.payment_reference}” must contain at least one letter."
        )
