"""The one module that calls the Stripe API.

Every call uses the provider setting's own `StripeClient` (never the global `stripe.api_key`), the
API base from STRIPE_API_BASE when set, a timeout, and network retries that reuse the same
idempotency key. Calls that move money require an idempotency key. Stripe's objects are returned
as plain dicts and Stripe's errors as this project's exceptions carrying a sentence for the user.

Callers must not hold database row locks while calling these functions; code that holds them for several units
of work at once says so with `calls_refused()`, and a call attempted there raises `StripeCallRefused` before
anything is sent.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from functools import partial
from typing import Any

import stripe
from django.conf import settings

from billing.money import format_amount, to_minor_units
from providers.logging import redact

logger = logging.getLogger(__name__)


# --- Errors --------------------------------------------------------------------------------------


class StripeGatewayError(Exception):
    """A Stripe call failed; `str(error)` is a sentence that may be shown to staff or customers."""

    #: True when Stripe may or may not have done it (network error, timeout, 5xx after retries):
    #: repeat with the same idempotency key before concluding anything.
    outcome_unknown = False

    def __init__(self, message: str, *, code: str = "", decline_code: str = "", http_status: int | None = None,
                 payment_intent: dict | None = None, charge_id: str = "", stripe_type: str = ""):
        super().__init__(redact(message))
        self.code = code or ""
        self.decline_code = decline_code or ""
        self.http_status = http_status
        self.payment_intent = payment_intent
        self.charge_id = charge_id or ""
        self.stripe_type = stripe_type


class PaymentDeclined(StripeGatewayError):
    """The card or bank declined, or the payment needs the customer (e.g. authentication_required)."""

    @property
    def requires_authentication(self) -> bool:
        return self.code == "authentication_required" or self.decline_code == "authentication_required"


class StripeRequestRefused(StripeGatewayError):
    """Stripe refused the request as invalid (amount too large, already refunded, unknown object...)."""


class StripeAuthenticationFailed(StripeGatewayError):
    """The API key is invalid, revoked or lacks the permission (restricted key)."""


class StripeUnavailable(StripeGatewayError):
    """Stripe could not be reached or answered with a server error, even after retries."""

    outcome_unknown = True


def _translate(exc: stripe.StripeError) -> StripeGatewayError:
    error = getattr(exc, "error", None)
    message = (getattr(error, "message", None) or getattr(exc, "user_message", None) or str(exc) or "").strip()
    details = {
        "code": getattr(error, "code", None) or getattr(exc, "code", None) or "",
        "decline_code": getattr(error, "decline_code", None) or "",
        "http_status": getattr(exc, "http_status", None),
        "charge_id": getattr(error, "charge", None) or "",
        "stripe_type": getattr(error, "type", None) or "",
    }
    payment_intent = getattr(error, "payment_intent", None)
    if payment_intent is not None:
        details["payment_intent"] = plain(payment_intent)
    if isinstance(exc, stripe.CardError):
        return PaymentDeclined(message or "The payment was declined.", **details)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return StripeAuthenticationFailed(f"Stripe rejected the API key: {message or 'authentication failed'}.", **details)
    if isinstance(exc, stripe.APIConnectionError):
        return StripeUnavailable("Stripe could not be reached; nothing is known to have happened yet. Please try again.", **details)
    if isinstance(exc, stripe.RateLimitError):
        return StripeUnavailable("Stripe is busy (rate limited). Please try again in a moment.", **details)
    if isinstance(exc, stripe.APIError) or (details["http_status"] or 0) >= 500:
        return StripeUnavailable("Stripe answered with a server error. Please try again.", **details)
    if isinstance(exc, stripe.IdempotencyError):
        return StripeRequestRefused(f"Stripe refused a repeated request: {message}", **details)
    return StripeRequestRefused(message or "Stripe refused the request.", **details)


# --- Where no call may happen --------------------------------------------------------------------


class StripeCallRefused(Exception):
    """A Stripe call was attempted inside `calls_refused()` (e.g. a batch of webhook events processed in one
    transaction, which holds the row locks of all of them). Nothing was sent: the caller undoes its transaction and
    does the work again where calls are allowed. Deliberately not a StripeGatewayError, so no caller mistakes it for
    Stripe's answer."""


_refused_because: ContextVar[str] = ContextVar("stripe_calls_refused_because", default="")


@contextmanager
def calls_refused(reason: str):
    """No Stripe call in this block (this thread or task): the first one raises StripeCallRefused."""
    token = _refused_because.set(reason)
    try:
        yield
    finally:
        _refused_because.reset(token)


# --- Clients -------------------------------------------------------------------------------------

_clients: dict[tuple, stripe.StripeClient] = {}
_clients_lock = threading.Lock()


def client_for(setting) -> stripe.StripeClient:
    """The setting's own client, cached per (setting, key, base URL, timeout). Every call starts here."""
    reason = _refused_because.get()
    if reason:
        raise StripeCallRefused(f"No Stripe call here: {reason}.")
    secret_key = setting.secret_key
    if not secret_key:
        raise StripeAuthenticationFailed(f"The Stripe setting “{setting.name}” has no secret key.")
    api_base = settings.STRIPE_API_BASE or None
    cache_key = (setting.pk, setting.secret_key_encrypted, api_base, settings.STRIPE_TIMEOUT_SECONDS,
                 settings.STRIPE_MAX_NETWORK_RETRIES, settings.STRIPE_API_VERSION)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            base_addresses = {"api": api_base, "connect": api_base, "files": api_base} if api_base else None
            client = stripe.StripeClient(
                secret_key,
                stripe_version=settings.STRIPE_API_VERSION,
                base_addresses=base_addresses,
                max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
                http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
            )
            _clients[cache_key] = client
    return client


# Looked up once: `stripe.StripeObject` goes through the SDK's lazy module __getattr__ (an import) on every access.
_STRIPE_OBJECT = stripe.StripeObject


def plain(obj: Any) -> Any:
    """Stripe SDK objects -> plain dicts and lists (the SDK's objects are not dicts)."""
    if isinstance(obj, _STRIPE_OBJECT):
        return obj.to_dict()
    if isinstance(obj, dict):
        return {key: plain(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [plain(value) for value in obj]
    return obj


def _call(setting, operation: str, fn, *args, **kwargs) -> Any:
    try:
        result = fn(*args, **kwargs)
        return result if isinstance(result, _RawAnswer) else plain(result)
    except stripe.StripeError as exc:
        translated = _translate(exc)
        logger.warning("Stripe %s failed for setting %s: %s (%s)", operation, setting.pk, translated,
                       translated.code or type(exc).__name__)
        raise translated from None


def _money_options(idempotency_key: str) -> dict:
    if not idempotency_key:
        raise ValueError("An idempotency key is required for a Stripe call that moves money.")
    return {"idempotency_key": idempotency_key}


def _compact(params: dict) -> dict:
    return {key: value for key, value in params.items() if value is not None}


# --- Account -------------------------------------------------------------------------------------


def retrieve_account(setting) -> dict:
    client = client_for(setting)
    return _call(setting, "account retrieve", client.v1.accounts.retrieve_current)


# --- Customers and payment methods ---------------------------------------------------------------


def create_customer(setting, *, name: str, email: str, metadata: dict, idempotency_key: str) -> dict:
    client = client_for(setting)
    params = _compact({"name": name or None, "email": email or None, "metadata": metadata})
    return _call(setting, "customer create", client.v1.customers.create, params, {"idempotency_key": idempotency_key})


def retrieve_payment_method(setting, payment_method_id: str) -> dict:
    client = client_for(setting)
    return _call(setting, "payment method retrieve", client.v1.payment_methods.retrieve, payment_method_id)


def detach_payment_method(setting, payment_method_id: str) -> dict:
    client = client_for(setting)
    return _call(setting, "payment method detach", client.v1.payment_methods.detach, payment_method_id)


# --- PaymentIntents and SetupIntents -------------------------------------------------------------


def create_payment_intent(
    setting,
    *,
    amount: Decimal,
    currency: str,
    idempotency_key: str,
    payment_method_types: list[str],
    metadata: dict,
    description: str = "",
    customer: str | None = None,
    setup_future_usage: str | None = None,
    payment_method: str | None = None,
    off_session: bool | None = None,
    confirm: bool | None = None,
    mandate_data: dict | None = None,
    return_url: str | None = None,
) -> dict:
    """Create (and with confirm=True, confirm) a PaymentIntent; `amount` is Decimal major units."""
    client = client_for(setting)
    params = _compact({
        "amount": to_minor_units(amount, currency),
        "currency": currency.lower(),
        "payment_method_types": payment_method_types,
        "metadata": {key: str(value) for key, value in metadata.items()},
        "description": description or None,
        "customer": customer,
        "setup_future_usage": setup_future_usage,
        "payment_method": payment_method,
        "off_session": off_session,
        "confirm": confirm,
        "mandate_data": mandate_data,
        "return_url": return_url,
    })
    return _call(setting, "payment intent create", client.v1.payment_intents.create, params, _money_options(idempotency_key))


def confirm_payment_intent(setting, payment_intent_id: str, *, idempotency_key: str, **params) -> dict:
    client = client_for(setting)
    return _call(setting, "payment intent confirm", client.v1.payment_intents.confirm, payment_intent_id,
                 _compact(params), _money_options(idempotency_key))


def retrieve_payment_intent(setting, payment_intent_id: str, *, expand_latest_charge: bool = False) -> dict:
    client = client_for(setting)
    params = {"expand": ["latest_charge"]} if expand_latest_charge else {}
    return _call(setting, "payment intent retrieve", client.v1.payment_intents.retrieve, payment_intent_id, params)


def cancel_payment_intent(setting, payment_intent_id: str, *, idempotency_key: str) -> dict:
    client = client_for(setting)
    return _call(setting, "payment intent cancel", client.v1.payment_intents.cancel, payment_intent_id, {},
                 {"idempotency_key": idempotency_key})


def create_setup_intent(setting, *, customer: str, payment_method_types: list[str], metadata: dict,
                        idempotency_key: str, usage: str = "off_session") -> dict:
    client = client_for(setting)
    params = {"customer": customer, "payment_method_types": payment_method_types, "usage": usage,
              "metadata": {key: str(value) for key, value in metadata.items()}}
    return _call(setting, "setup intent create", client.v1.setup_intents.create, params, {"idempotency_key": idempotency_key})


def retrieve_setup_intent(setting, setup_intent_id: str) -> dict:
    client = client_for(setting)
    return _call(setting, "setup intent retrieve", client.v1.setup_intents.retrieve, setup_intent_id)


# --- Charges and legacy Sources --------------------------------------------------------------------


def retrieve_charge(setting, charge_id: str, *, expand_refunds: bool = False) -> dict:
    client = client_for(setting)
    params = {"expand": ["refunds"]} if expand_refunds else {}
    return _call(setting, "charge retrieve", client.v1.charges.retrieve, charge_id, params)


def create_charge_from_source(setting, *, source_id: str, amount_minor: int, currency: str, metadata: dict,
                              description: str = "") -> dict:
    """Charge a chargeable legacy Source; the source id is the idempotency key (one charge per source)."""
    client = client_for(setting)
    params = _compact({"source": source_id, "amount": amount_minor, "currency": currency.lower(),
                       "metadata": {key: str(value) for key, value in metadata.items()}, "description": description or None})
    return _call(setting, "charge create", client.v1.charges.create, params, _money_options(f"source-charge-{source_id}"))


# --- Refunds -------------------------------------------------------------------------------------


def create_refund(setting, *, charge_id: str, amount: Decimal, currency: str, metadata: dict, idempotency_key: str) -> dict:
    client = client_for(setting)
    params = {"charge": charge_id, "amount": to_minor_units(amount, currency),
              "metadata": {key: str(value) for key, value in metadata.items()}}
    try:
        return _call(setting, "refund create", client.v1.refunds.create, params, _money_options(idempotency_key))
    except StripeRequestRefused as exc:
        if exc.code in {"amount_too_large", "charge_already_refunded"}:
            raise StripeRequestRefused(
                f"Stripe refused to refund {format_amount(amount, currency)} on {charge_id}: {exc}", code=exc.code,
                http_status=exc.http_status,
            ) from None
        raise


def retrieve_refund(setting, refund_id: str) -> dict:
    client = client_for(setting)
    return _call(setting, "refund retrieve", client.v1.refunds.retrieve, refund_id)


def list_refunds(setting, *, charge_id: str) -> list[dict]:
    """Every refund of a charge (newer API versions no longer embed them in the Charge)."""
    client = client_for(setting)
    return list(_pages(setting, "refund list", client.v1.refunds.list, {"charge": charge_id, "limit": 100}))


def find_refund_by_metadata(setting, *, charge_id: str, key: str, value: str) -> dict | None:
    """Look a refund up by our metadata (used after Stripe forgot an idempotency key, 24 h)."""
    for refund in list_refunds(setting, charge_id=charge_id):
        if str((refund.get("metadata") or {}).get(key, "")) == str(value):
            return refund
    return None


# --- Events --------------------------------------------------------------------------------------


# Stripe's Events API filters on at most 20 types per request.
EVENT_TYPES_PER_REQUEST = 20


def iter_events(setting, *, created_gte: int, types: list[str] | None = None) -> Iterator[dict]:
    """Events of the last days from Stripe's Events API (Stripe keeps them for 30 days); more than 20 types are
    asked for in several listings."""
    client = client_for(setting)
    groups = [types[start:start + EVENT_TYPES_PER_REQUEST] for start in range(0, len(types), EVENT_TYPES_PER_REQUEST)] \
        if types else [None]
    for group in groups:
        params: dict = {"limit": 100, "created": {"gte": created_gte}}
        if group:
            params["types"] = group
        yield from _pages(setting, "event list", client.v1.events.list, params)


def _pages(setting, operation: str, list_method, params: dict) -> Iterator[dict]:
    """Every object of a Stripe list, one call per page (`has_more` / `starting_after`)."""
    while True:
        page = _call(setting, operation, list_method, params)
        yield from page.get("data", [])
        if not page.get("has_more") or not page.get("data"):
            return
        params = {**params, "starting_after": page["data"][-1]["id"]}


# --- Payouts and balance transactions ------------------------------------------------------------


def retrieve_payout(setting, payout_id: str) -> dict:
    client = client_for(setting)
    return _call(setting, "payout retrieve", client.v1.payouts.retrieve, payout_id)


def iter_payouts(setting, *, arrival_date_gte: int) -> Iterator[dict]:
    """The account's payouts arriving on or after a date (a Unix time), newest first."""
    client = client_for(setting)
    yield from _pages(setting, "payout list", client.v1.payouts.list, {"limit": 100, "arrival_date": {"gte": arrival_date_gte}})


def list_payout_balance_transactions(setting, *, payout_id: str) -> list[dict]:
    """Every balance transaction paid out in an automatic payout, its source expanded (the charge, refund or
    dispute: one call per page of 100 instead of one per line). Only complete once the payout's
    reconciliation_status is `completed`; Stripe refuses the filter for manual payouts.

    Through the SDK's raw request (same client, retries, errors), answered as plain JSON: turning 100 expanded
    charges into SDK objects and back costs several times the HTTP round trip, 10,000 lines a payout."""
    client = client_for(setting)
    params = {"payout": payout_id, "limit": 100, "expand": ["data.source"]}
    return list(_pages(setting, "balance transaction list", partial(_raw_list, client, "/v1/balance_transactions"), params))


class _RawAnswer(dict):
    """A JSON answer of a raw request: plain dicts and lists already."""


def _raw_list(client: stripe.StripeClient, path: str, params: dict) -> dict:
    return _RawAnswer(client.raw_request("get", path, **params).data)


# --- Disputes and their evidence -----------------------------------------------------------------


def retrieve_dispute(setting, dispute_id: str) -> dict:
    client = client_for(setting)
    return _call(setting, "dispute retrieve", client.v1.disputes.retrieve, dispute_id)


def close_dispute(setting, dispute_id: str, *, idempotency_key: str) -> dict:
    """Accept the dispute: Stripe closes it as lost (the money stays with the customer)."""
    client = client_for(setting)
    return _call(setting, "dispute close", client.v1.disputes.close, dispute_id, {}, _money_options(idempotency_key))


def upload_file(setting, *, filename: str, content: bytes, purpose: str, idempotency_key: str) -> dict:
    """Upload a file through Stripe's Files API (multipart, to the client's `files` base address)."""
    client = client_for(setting)
    upload = io.BytesIO(content)
    upload.name = filename  # the SDK names the multipart part after it
    return _call(setting, "file upload", client.v1.files.create, {"purpose": purpose, "file": upload},
                 _money_options(idempotency_key))


def update_dispute(setting, dispute_id: str, *, evidence: dict, submit: bool, idempotency_key: str) -> dict:
    """Give Stripe the dispute's evidence; with submit=True it goes to the card network (no further changes)."""
    client = client_for(setting)
    params = {"evidence": _compact(evidence), "submit": submit}
    return _call(setting, "dispute update", client.v1.disputes.update, dispute_id, params, _money_options(idempotency_key))
