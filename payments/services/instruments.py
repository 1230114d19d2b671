"""Stripe customers and saved payment methods (PaymentInstrument) for future off-session payments.

Instruments are activated by webhook handlers: a card once its payment succeeded, a SEPA mandate
already while its first debit is processing, a method saved without paying on setup_intent.succeeded.
Functions that call Stripe say so and must run without row locks.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.constants import MethodType
from payments.models import PaymentAttempt, PaymentInstrument, StripeCustomer
from payments.services.transactions import object_id
from providers.stripe import gateway

SAVABLE_METHODS = {MethodType.CARD, MethodType.SEPA_DEBIT}


def get_or_create_stripe_customer(*, setting, account) -> StripeCustomer:
    """The account's Stripe customer for this setting (calls Stripe once, idempotently)."""
    existing = StripeCustomer.objects.filter(account=account, provider_setting=setting).first()
    if existing:
        return existing
    customer = gateway.create_customer(setting, name=account.name, email=account.email,
                                       metadata={"account_id": account.pk, "provider_setting_id": setting.pk},
                                       idempotency_key=f"customer-{setting.pk}-{account.pk}")
    try:
        with transaction.atomic():
            return StripeCustomer.objects.create(account=account, provider_setting=setting, stripe_customer_id=customer["id"])
    except IntegrityError:
        return StripeCustomer.objects.get(account=account, provider_setting=setting)


def _display(details: dict) -> dict:
    method_type = details.get("type") or ""
    if method_type == MethodType.CARD:
        card = details.get("card") or {}
        return {"method_type": MethodType.CARD, "brand": card.get("brand") or "", "last4": card.get("last4") or "",
                "exp_month": card.get("exp_month"), "exp_year": card.get("exp_year")}
    if method_type == MethodType.SEPA_DEBIT:
        sepa = details.get("sepa_debit") or {}
        return {"method_type": MethodType.SEPA_DEBIT, "last4": sepa.get("last4") or "", "mandate_id": object_id(sepa.get("mandate"))}
    return {"method_type": MethodType.OTHER}


def save_instrument(*, setting, account, payment_method_id: str, details: dict, customer_id: str = "",
                    mandate_id: str = "") -> PaymentInstrument:
    """Upsert and activate the instrument (idempotent; a concurrent insert is tolerated)."""
    display = _display(details)
    if mandate_id:
        display["mandate_id"] = mandate_id
    stripe_customer = StripeCustomer.objects.filter(provider_setting=setting, stripe_customer_id=customer_id).first() \
        if customer_id else None
    defaults = {**display, "account": account, "stripe_customer": stripe_customer}
    try:
        with transaction.atomic():
            instrument, created = PaymentInstrument.objects.select_for_update().get_or_create(
                provider_setting=setting, stripe_payment_method_id=payment_method_id, defaults=defaults)
            if not created:
                for name, value in display.items():
                    if value:
                        setattr(instrument, name, value)
            if not instrument.active:
                instrument.active, instrument.activated_at = True, timezone.now()
            instrument.save()
            return instrument
    except IntegrityError:
        return PaymentInstrument.objects.get(provider_setting=setting, stripe_payment_method_id=payment_method_id)


def _opted_in(transaction_, payment_intent: dict | None) -> bool:
    if payment_intent and payment_intent.get("setup_future_usage"):
        return True
    if transaction_.save_for_future:
        return True
    if transaction_.payment_intent_id:
        return PaymentAttempt.objects.filter(payment_intent_id=transaction_.payment_intent_id, save_for_future=True).exists()
    return False


def activate_from_payment(*, setting, transaction, charge: dict, payment_intent: dict | None) -> PaymentInstrument | None:
    """Activate the saved method when the customer opted in: card on success, SEPA already while processing."""
    if transaction is None or transaction.account_id is None or not _opted_in(transaction, payment_intent):
        return None
    details = charge.get("payment_method_details") or {}
    method_type = details.get("type")
    status = charge.get("status")
    if method_type not in SAVABLE_METHODS or not charge.get("payment_method"):
        return None
    if status == "failed" or (method_type == MethodType.CARD and status != "succeeded"):
        return None
    customer_id = object_id(charge.get("customer")) or object_id((payment_intent or {}).get("customer"))
    return save_instrument(setting=setting, account=transaction.account, payment_method_id=object_id(charge["payment_method"]),
                           details=details, customer_id=customer_id)


def activate_from_setup_intent(*, setting, setup_intent: dict) -> PaymentInstrument | None:
    """A method saved without paying (SetupIntent). Fetches the payment method from Stripe: no locks here."""
    if setup_intent.get("status") != "succeeded" or not setup_intent.get("payment_method"):
        return None
    customer_id = object_id(setup_intent.get("customer"))
    customer = StripeCustomer.objects.select_related("account").filter(provider_setting=setting, stripe_customer_id=customer_id).first()
    if customer is None:
        return None
    payment_method = setup_intent["payment_method"]
    if not isinstance(payment_method, dict):
        payment_method = gateway.retrieve_payment_method(setting, payment_method)
    if payment_method.get("type") not in SAVABLE_METHODS:
        return None
    return save_instrument(setting=setting, account=customer.account, payment_method_id=payment_method["id"], details=payment_method,
                           customer_id=customer_id, mandate_id=object_id(setup_intent.get("mandate")))


def deactivate_payment_method(*, setting, payment_method_id: str) -> int:
    return PaymentInstrument.objects.filter(provider_setting=setting, stripe_payment_method_id=payment_method_id, active=True).update(
        active=False, updated_at=timezone.now())


def update_payment_method(*, setting, payment_method: dict) -> int:
    """Card updater (payment_method.automatically_updated): keep expiry and last4 true."""
    display = _display(payment_method)
    changes = {key: value for key, value in display.items() if key in {"brand", "last4", "exp_month", "exp_year"} and value}
    if not changes:
        return 0
    return PaymentInstrument.objects.filter(provider_setting=setting, stripe_payment_method_id=payment_method.get("id") or "").update(
        needs_attention=False, attention_reason="", updated_at=timezone.now(), **changes)


def flag_instrument(instrument: PaymentInstrument, *, reason: str) -> None:
    PaymentInstrument.objects.filter(pk=instrument.pk).update(
        needs_attention=True, attention_reason=reason[:255], updated_at=timezone.now())


def deactivate_instruments_of_setting(setting) -> int:
    """Every active instrument of the setting stops being charged (its keys moved to the other mode)."""
    return PaymentInstrument.objects.filter(provider_setting=setting, active=True).update(active=False, updated_at=timezone.now())
