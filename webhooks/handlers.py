"""One small handler per Stripe event type (SPEC §7). Registering a type outside WEBHOOK_EVENTS fails at import.

A handler receives (setting, the event's data.object, the stored WebhookEvent). It fetches what it
needs from Stripe FIRST (no lock is held here), then calls services that take the locks. Every
handler whose object is or carries a charge first brings that charge's payment up to date, so a
refund or a dispute that arrives before `charge.succeeded` still finds its payment balance.
Returning `Ignored(reason)` marks the event ignored with the reason (e.g. it belongs to another setting's
endpoint).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from disputes.services import notify_finance
from payments.services import disputes, instruments, payouts
from payments.services.checkout import sync_attempt_from_payment_intent
from payments.services.transactions import belongs_to_other_setting, object_id, record_payment_failure, sync_charge
from providers.constants import WEBHOOK_EVENTS
from providers.stripe import gateway
from receipts.tasks import issue_after_commit
from refunds.services import apply_stripe_refund

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Ignored:
    """A handler's answer for an event this service leaves alone; the reason is kept on the event."""

    reason: str


OTHER_SETTING = Ignored("The object belongs to another provider setting's endpoint.")

Handler = Callable[..., Ignored | None]
_registry: dict[str, Handler] = {}


def handles(*event_types: str) -> Callable[[Handler], Handler]:
    unknown = [event_type for event_type in event_types if event_type not in WEBHOOK_EVENTS]
    if unknown:
        raise ValueError(f"Not a webhook event this service subscribes to: {', '.join(unknown)}")

    def register(handler: Handler) -> Handler:
        for event_type in event_types:
            if event_type in _registry:
                raise ValueError(f"Two handlers for {event_type}")
            _registry[event_type] = handler
        return handler

    return register


def handler_for(event_type: str) -> Handler | None:
    return _registry.get(event_type)


def registered_types() -> set[str]:
    return set(_registry)


def _charge(setting, charge_or_id) -> dict | None:
    """The charge as an object: expanded in the payload, or fetched from Stripe (outside any lock)."""
    if isinstance(charge_or_id, dict):
        return charge_or_id
    if not charge_or_id:
        return None
    return gateway.retrieve_charge(setting, charge_or_id)


def _event_created(event):
    return event.stripe_created


# --- Payments ------------------------------------------------------------------------------------


@handles("charge.pending", "charge.succeeded", "charge.failed", "charge.captured", "charge.expired")
def on_charge(setting, charge: dict, event) -> Ignored | None:
    if belongs_to_other_setting(charge, setting):
        return OTHER_SETTING
    tx = sync_charge(setting, charge, event_created=_event_created(event), event_type=event.type)
    instruments.activate_from_payment(setting=setting, transaction=tx, charge=charge, payment_intent=None)
    issue_after_commit(charge=tx)
    return None


@handles("payment_intent.processing", "payment_intent.succeeded")
def on_payment_intent_progress(setting, payment_intent: dict, event) -> Ignored | None:
    if belongs_to_other_setting(payment_intent, setting):
        return OTHER_SETTING
    charge = _charge(setting, payment_intent.get("latest_charge"))
    if charge is not None:
        tx = sync_charge(setting, charge, event_created=_event_created(event), payment_intent=payment_intent)
        instruments.activate_from_payment(setting=setting, transaction=tx, charge=charge, payment_intent=payment_intent)
        issue_after_commit(charge=tx)
    sync_attempt_from_payment_intent(setting=setting, payment_intent=payment_intent)
    return None


@handles("payment_intent.payment_failed")
def on_payment_intent_failed(setting, payment_intent: dict, event) -> Ignored | None:
    if belongs_to_other_setting(payment_intent, setting):
        return OTHER_SETTING
    error = payment_intent.get("last_payment_error") or {}
    charge = _charge(setting, error.get("charge"))
    if charge is not None:
        sync_charge(setting, charge, event_created=_event_created(event), payment_intent=payment_intent)
        if error.get("message"):
            record_payment_failure(setting, charge_id=charge["id"], message=error["message"])
    sync_attempt_from_payment_intent(setting=setting, payment_intent=payment_intent)
    return None


@handles("payment_intent.canceled")
def on_payment_intent_canceled(setting, payment_intent: dict, event) -> Ignored | None:
    if belongs_to_other_setting(payment_intent, setting):
        return OTHER_SETTING
    sync_attempt_from_payment_intent(setting=setting, payment_intent=payment_intent)
    return None


@handles("source.chargeable")
def on_source_chargeable(setting, source: dict, event) -> Ignored | None:
    """Legacy Sources (SEPA, Alipay): charge the chargeable source once (idempotency key = source id) — only a source
    this service created (its metadata names this setting and an invoice) and with an amount."""
    metadata = dict(source.get("metadata") or {})
    if str(metadata.get("provider_setting_id") or "") != str(setting.pk) or not str(metadata.get("invoice_id") or "").isdigit():
        return Ignored("A source this service did not create (its metadata names no invoice of this setting): not charged.")
    amount = source.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return Ignored("A chargeable source without an amount: not charged.")
    gateway.create_charge_from_source(setting, source_id=source["id"], amount_minor=amount, currency=source.get("currency") or "",
                                      metadata=metadata)
    return None  # the charge's own events book it


# --- Refunds -------------------------------------------------------------------------------------


@handles("charge.refunded")
def on_charge_refunded(setting, charge: dict, event) -> Ignored | None:
    if belongs_to_other_setting(charge, setting):
        return OTHER_SETTING
    embedded = charge.get("refunds")
    # Older API versions embed the refunds; newer ones do not: list them (no lock is held here).
    refunds = embedded.get("data", []) if isinstance(embedded, dict) and not embedded.get("has_more") else \
        gateway.list_refunds(setting, charge_id=charge["id"])
    with transaction.atomic():  # the payment and its refunds: one transaction, one commit
        issue_after_commit(charge=sync_charge(setting, charge, event_created=_event_created(event)))
        for refund in refunds:
            issue_after_commit(refund_request=apply_stripe_refund(setting, refund, charge_id=charge["id"]))
    return None


@handles("charge.refund.updated", "refund.created", "refund.updated", "refund.failed")
def on_refund(setting, refund: dict, event) -> Ignored | None:
    charge = _charge(setting, refund.get("charge"))
    if charge is None:
        return Ignored("The refund names no charge.")
    if belongs_to_other_setting(charge, setting):
        return OTHER_SETTING
    with transaction.atomic():  # the payment and the refund: one transaction, one commit
        tx = sync_charge(setting, charge, event_created=_event_created(event))
        issue_after_commit(charge=tx, refund_request=apply_stripe_refund(setting, refund, charge_id=charge["id"]))
    return None


# --- Disputes ------------------------------------------------------------------------------------


@handles("charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated", "charge.dispute.closed",
         "charge.dispute.updated")
def on_dispute(setting, dispute: dict, event) -> Ignored | None:
    charge = _charge(setting, dispute.get("charge"))
    if charge is None:
        return Ignored("The dispute names no charge.")
    if belongs_to_other_setting(charge, setting):
        return OTHER_SETTING
    sync_charge(setting, charge, event_created=_event_created(event))
    record = disputes.apply_dispute(setting, dispute, event_type=event.type, event_created=_event_created(event))
    if record is not None:
        # Finance hears of a dispute once, from whichever of its events arrives first (an outbox row; sent after the commit).
        notify_finance(record)
    return None


# --- Payouts (SPEC §12) -------------------------------------------------------------------------------


@handles("payout.paid", "payout.failed", "payout.reconciliation_completed")
def on_payout(setting, payout: dict, event) -> str | None:
    """Mirror the payout; its lines are fetched and reconciled by a task of their own (payments.tasks)."""
    payouts.record_payout_event(setting, payout)
    return None


# --- Customers and saved payment methods -------------------------------------------------------------


@handles("setup_intent.succeeded")
def on_setup_intent_succeeded(setting, setup_intent: dict, event) -> Ignored | None:
    if belongs_to_other_setting(setup_intent, setting):
        return OTHER_SETTING
    instruments.activate_from_setup_intent(setting=setting, setup_intent=setup_intent)
    return None


@handles("payment_method.detached")
def on_payment_method_detached(setting, payment_method: dict, event) -> Ignored | None:
    instruments.deactivate_payment_method(setting=setting, payment_method_id=object_id(payment_method.get("id")))
    return None


@handles("payment_method.automatically_updated")
def on_payment_method_updated(setting, payment_method: dict, event) -> Ignored | None:
    instruments.update_payment_method(setting=setting, payment_method=payment_method)
    return None


missing = set(WEBHOOK_EVENTS) - registered_types()
if missing:  # every subscribed event must have its handler
    raise ImportError(f"No webhook handler for: {', '.join(sorted(missing))}")
