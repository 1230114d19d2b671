"""localstripe (PyPI, a stateful Stripe-compatible server) with a small adapter for its known gaps.

Used by the end-to-end suite (tests/e2e/) and by the offline demo (scripts/demo.py). The product talks
to it only through STRIPE_API_BASE and is never changed to suit it: everything here makes localstripe
behave like real Stripe where version 1.15 does not. What it still cannot do is listed in
tests/e2e/README.md.

Gaps closed here (each one checked against localstripe 1.15.10):
- it listens on every interface: here it binds 127.0.0.1 only;
- it pickles its whole store to /tmp/localstripe.pickle on every write: disabled (speed, isolation);
- PaymentIntent creation rejects `description`, `setup_future_usage`, `return_url`, `mandate_data`,
  `statement_descriptor`, `receipt_email`; confirmation rejects `payment_method`, `payment_method_data` and
  the same options;
- `latest_charge` comes back as an object even when not expanded (and so in webhook payloads);
- charges have no `payment_method_details`, SEPA debits succeed at once instead of going through
  `processing`, and only `payment_intent.*` events are sent: no `charge.*`, `payment_intent.processing`,
  `refund.created`, `charge.refunded` or `setup_intent.succeeded`;
- card errors (402) are typed `invalid_request_error` instead of `card_error`;
- idempotency keys are ignored: here a key replays its first answer (and refuses other parameters);
- refunds are not capped at the charge's unrefunded amount;
- a confirmed SetupIntent or a PaymentIntent with `setup_future_usage` does not attach the payment
  method to the customer;
- GET /v1/account does not exist;
- balance transactions carry no Stripe fee, claim an exchange rate of 1.0 where Stripe sends none, cannot be listed
  per payout (`GET /v1/balance_transactions?payout=po_…`), and payouts are manual only: here charges pay Stripe's
  standard European fees, and `POST /_config/payouts/run` is Stripe's automatic payout of the day (every settled
  balance transaction not paid out yet, `payout.paid` and `payout.reconciliation_completed`);
  `POST /_config/charges/unannounced` makes a settled charge no event announces (one made in the Dashboard);
- no disputes and no Files API: here `POST /_config/charges/{charge_id}/dispute` (demo/test hook; `reason`, `evidence_days`)
  is the cardholder's bank disputing a settled charge: a Stripe-shaped `dispute` (dp_…, needs_response, evidence due in
  7 days, the withdrawal and Stripe's 15.00 dispute fee in its `balance_transactions`, listed with the others and paid out
  by the next payout), `charge.disputed` true, `charge.dispute.created` and `charge.dispute.funds_withdrawn`;
  `GET /v1/disputes[/{id}]`; `POST /v1/disputes/{id}` takes Stripe's evidence fields (unknown ones, files that are not
  `dispute_evidence` uploads, answered or past-due disputes refused as Stripe does) and with `submit` (Stripe's default)
  puts it under review, `submission_count` + 1, `has_evidence` true, `charge.dispute.updated`;
  `POST /v1/disputes/{id}/close` is accepting it: lost, `charge.dispute.closed`; `POST /v1/files` (multipart, on the
  SDK's files base, which the gateway points here too) keeps the upload and returns a `file` with its purpose and size
  (`GET /v1/files/{id}`). Idempotency keys hold for all of them, multipart uploads included (compared by content).

Run: python -m devtools.localstripe_server --port 8420 [--store FILE]   (LOCALSTRIPE_SEPA_DELAY=seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import pickle
import time

from aiohttp import web
from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import (
    BalanceTransaction,
    Charge,
    Event,
    PaymentIntent,
    PaymentMethod,
    Payout,
    Refund,
    SetupIntent,
    store,
)
from localstripe.webhooks import schedule_webhook

logger = logging.getLogger("localstripe.adapter")

# Seconds a SEPA debit stays `processing` before it succeeds or fails (Stripe test mode: minutes).
SEPA_DELAY_SECONDS = float(os.environ.get("LOCALSTRIPE_SEPA_DELAY", "2"))


def emit(event_type: str, obj) -> None:
    schedule_webhook(Event(event_type, obj))


# --- No pickling to /tmp on every write (the demo may keep its store in a file of its own) ----------------

STORE_PATH: str | None = None


def _dump(self) -> None:
    if STORE_PATH:
        with open(STORE_PATH, "wb") as handle:
            pickle.dump(dict(self), handle, protocol=pickle.HIGHEST_PROTOCOL)


def _load(self) -> None:
    if STORE_PATH and os.path.exists(STORE_PATH):
        with open(STORE_PATH, "rb") as handle:
            dict.update(self, pickle.load(handle))  # noqa: S301 - our own file, written by _dump


resources.Store.dump_to_disk = _dump
resources.Store.try_load_from_disk = _load
resources.Store.__setitem__ = dict.__setitem__  # localstripe pickled on every single write; the server saves per request
resources.Store.__delitem__ = dict.__delitem__


# --- PaymentIntent parameters real Stripe accepts ------------------------------------------------------

_PI_KEPT = ("description", "setup_future_usage", "statement_descriptor", "receipt_email")
_PI_DROPPED = ("return_url", "mandate_data", "use_stripe_sdk", "error_on_requires_action", "client_secret")
_original_pi_init = PaymentIntent.__init__


def _pi_init(self, **data):
    kept = {key: data.pop(key, None) for key in _PI_KEPT}
    for key in _PI_DROPPED:
        data.pop(key, None)
    _original_pi_init(self, **data)
    if self.payment_method:  # a test id such as pm_card_visa becomes a real payment method, as on Stripe
        self.payment_method = PaymentMethod._api_retrieve(self.payment_method).id
    for key, value in kept.items():
        setattr(self, key, value)


PaymentIntent.__init__ = _pi_init
_original_pi_confirm = PaymentIntent._api_confirm.__func__


def _pi_confirm(cls, id, payment_method=None, payment_method_data=None, **kwargs):
    if payment_method_data is not None and payment_method is None:
        payment_method = PaymentMethod(**payment_method_data).id
    for key in _PI_DROPPED + ("off_session", "payment_method_options"):
        kwargs.pop(key, None)
    if "setup_future_usage" in kwargs:
        cls._api_retrieve(id).setup_future_usage = kwargs.pop("setup_future_usage")
    if payment_method is not None:
        intent = cls._api_retrieve(id)
        payment_method = PaymentMethod._api_retrieve(payment_method).id  # 404 when unknown; test ids become real
        if intent.status not in ("requires_payment_method", "requires_confirmation"):
            raise UserError(400, f"This PaymentIntent's status is {intent.status}: it cannot be confirmed.",
                            {"code": "payment_intent_unexpected_state"})
        intent.payment_method = payment_method
        intent.latest_charge = None  # a new attempt after a failed one
    return _original_pi_confirm(cls, id, **kwargs)


PaymentIntent._api_confirm = classmethod(_pi_confirm)
# localstripe's server module registers the routes of `extra_apis` when imported (below, after every patch).
resources.extra_apis[:] = [(m, u, PaymentIntent._api_confirm if u == "/v1/payment_intents/{id}/confirm" else f)
                           for (m, u, f) in resources.extra_apis]

_original_pi_export = PaymentIntent._export


def _pi_export(self, expand=None):
    exported = _original_pi_export(self, expand=expand)
    expanded = any(path.split(".")[0] == "latest_charge" for path in (expand or []))
    if isinstance(exported.get("latest_charge"), dict) and not expanded:
        exported["latest_charge"] = exported["latest_charge"]["id"]
    exported.pop("charges", None)  # removed from PaymentIntents in API version 2022-11-15
    return exported


PaymentIntent._export = _pi_export
_original_pi_on_success = PaymentIntent._on_success


def _pi_on_success(self):
    _attach_for_future(self)
    _original_pi_on_success(self)


PaymentIntent._on_success = _pi_on_success


def _attach_for_future(intent) -> None:
    if getattr(intent, "setup_future_usage", None) and intent.customer and intent.payment_method:
        PaymentMethod._api_retrieve(intent.payment_method).customer = intent.customer


# --- Charges: details, SEPA processing, charge.* events -------------------------------------------------


def _payment_method_details(self):
    method = PaymentMethod._api_retrieve(self.payment_method)
    if method.type == "card":
        card = method.card
        return {"type": "card", "card": {key: card[key] for key in ("brand", "last4", "exp_month", "exp_year", "country",
                                                                    "fingerprint", "funding")}}
    if method.type == "sepa_debit":
        sepa = method.sepa_debit
        return {"type": "sepa_debit", "sepa_debit": {"bank_code": sepa["bank_code"], "country": sepa["country"],
                                                     "last4": sepa["last4"], "fingerprint": sepa["fingerprint"],
                                                     "mandate": "mandate_" + sepa["mandate_reference"]}}
    return {"type": method.type}


Charge.payment_method_details = property(_payment_method_details)


def _settle(charge) -> None:
    txn = BalanceTransaction(amount=charge.amount, currency=charge.currency, description=charge.description, exchange_rate=None,
                             reporting_category="charge", source=charge.id, type="charge")
    method = PaymentMethod._api_retrieve(charge.payment_method).type if charge.payment_method else "card"
    if method == "sepa_debit":
        txn.type = "payment"  # as Stripe types non-card payments
    txn.fee = stripe_fee(charge.amount, method)
    txn.fee_details = [{"amount": txn.fee, "application": None, "currency": charge.currency, "description": "Stripe processing fees",
                        "type": "stripe_fee"}]
    charge.balance_transaction = txn.id
    charge.status = "succeeded"


def stripe_fee(amount: int, method: str) -> int:
    """Stripe's standard European pricing in minor units: cards 1.5 % + 0.25, SEPA Direct Debit 0.35."""
    if method == "sepa_debit":
        return 35
    return (amount * 15 + 500) // 1000 + 25


def _initialize_charge(self, on_success=None, on_failure_now=None, on_failure_later=None):
    """Replaces localstripe's: SEPA goes through `processing`; every state change sends its charge.* event."""
    if self._is_async_payment_method():
        self.status = "pending"
        emit("charge.pending", self)
        if self.payment_intent:
            emit("payment_intent.processing", PaymentIntent._api_retrieve(self.payment_intent))

        async def later():
            await asyncio.sleep(SEPA_DELAY_SECONDS)
            if self._authorized:
                _settle(self)
                emit("charge.succeeded", self)
                if on_success:
                    on_success()
            else:
                self._set_auth_failure()
                emit("charge.failed", self)
                if on_failure_later:
                    on_failure_later()

        asyncio.ensure_future(later())
        return
    if not self._authorized:
        self._set_auth_failure()
        emit("charge.failed", self)
        if on_failure_now:
            on_failure_now()
        return
    self.status = "succeeded"
    if self.captured:
        _settle(self)
        emit("charge.succeeded", self)
        if on_success:
            on_success()


Charge._initialize_charge = _initialize_charge


def _set_auth_failure(self):
    """localstripe words every failure as a card decline; a SEPA debit fails as Stripe reports it: the bank's reason."""
    self.status = "failed"
    if self._is_async_payment_method():
        self.failure_code = "insufficient_funds"
        self.failure_message = "The customer's account has insufficient funds to cover this payment."
    else:
        self.failure_code, self.failure_message = "card_declined", "Your card was declined."


Charge._set_auth_failure = _set_auth_failure


# --- Refunds: capped, with their events -------------------------------------------------------------

_original_refund_init = Refund.__init__


def _refund_init(self, charge=None, payment_intent=None, amount=None, metadata=None, reason=None, **kwargs):
    charge_id = charge
    if payment_intent is not None and charge is None:
        latest = PaymentIntent._api_retrieve(payment_intent).latest_charge
        charge_id = latest.id if latest is not None else None
    if charge_id is not None:
        charge_obj = Charge._api_retrieve(charge_id)
        remaining = charge_obj.amount - charge_obj.amount_refunded
        wanted = resources.try_convert_to_int(amount) if amount is not None else remaining
        if remaining <= 0:
            raise UserError(400, f"Charge {charge_id} has already been refunded.", {"code": "charge_already_refunded"})
        if isinstance(wanted, int) and wanted > remaining:
            raise UserError(400, f"Refund amount ({wanted}) is greater than unrefunded amount on charge ({remaining})",
                            {"code": "amount_too_large", "param": "amount"})
    _original_refund_init(self, charge=charge, payment_intent=payment_intent, amount=amount, metadata=metadata, **kwargs)
    self.reason = reason
    if getattr(self, "balance_transaction", None):  # Stripe sends no exchange rate when nothing was converted
        BalanceTransaction._api_retrieve(self.balance_transaction).exchange_rate = None
    emit("refund.created", self)
    emit("charge.refunded", Charge._api_retrieve(self.charge))


Refund.__init__ = _refund_init


# --- SetupIntents attach their payment method ------------------------------------------------------

_original_si_attach = SetupIntent._attach_pm


def _si_attach(self, pm):
    _original_si_attach(self, pm)
    if self.status == "succeeded":
        if self.customer:
            pm.customer = self.customer
        emit("setup_intent.succeeded", self)


SetupIntent._attach_pm = _si_attach


# --- Balance transactions per payout, Stripe's automatic payout of the day --------------------------------


def _balance_transactions(cls, url, limit=None, starting_after=None, payout=None, **kwargs):
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs))
    listing = resources.List(url, limit=limit, starting_after=starting_after)
    items = [value for key, value in store.items() if key.startswith("balance_transaction:")]
    if payout is not None:
        if not Payout._api_retrieve(payout).automatic:
            raise UserError(400, "Balance transaction history can only be filtered on automatic transfers, not manual.")
        items = [txn for txn in items if getattr(txn, "_payout", None) == payout]
    listing._list = sorted(items, key=lambda txn: txn.created, reverse=True)
    return listing


BalanceTransaction._api_list_all = classmethod(_balance_transactions)


def run_payout(currency: str = "eur") -> Payout:
    """Every available balance transaction in `currency` not paid out yet goes into one automatic, paid payout."""
    waiting = [value for key, value in store.items() if key.startswith("balance_transaction:") and value.currency == currency
               and getattr(value, "_payout", None) is None]
    amount = sum(txn.net for txn in waiting)
    if amount <= 0:
        raise UserError(400, f"Nothing to pay out in {currency}.")
    payout = Payout(amount=amount, currency="eur")  # localstripe makes manual EUR payouts only: made automatic below
    payout.currency, payout.automatic, payout.reconciliation_status, payout.status = currency, True, "completed", "paid"
    # localstripe's constructor takes charge and refund transactions only: one is made, then turned into the payout's own.
    own = BalanceTransaction(amount=-amount, currency=currency, description="STRIPE PAYOUT", exchange_rate=None,
                             reporting_category="charge", source=waiting[0].source, type="charge")
    own.type, own.reporting_category, own.source = "payout", "payout", payout.id
    payout.balance_transaction = own.id
    for txn in [*waiting, own]:
        txn._payout = payout.id
    emit("payout.paid", payout)
    emit("payout.reconciliation_completed", payout)
    return payout


async def run_payout_view(request):
    data = await server.get_post_data(request) or {}
    return server.json_response(run_payout(str(data.get("currency") or "eur"))._export())


async def unannounced_charge_view(request):
    """A settled card charge that no event announces (made in the Dashboard, say): the product never hears of it."""
    data = await server.get_post_data(request) or {}
    amount = resources.try_convert_to_int(data.get("amount"))
    if not isinstance(amount, int) or amount <= 0:
        raise UserError(400, "amount must be a positive integer")
    charge = Charge(amount=amount, currency=str(data.get("currency") or "eur"), source=PaymentMethod._api_retrieve("pm_card_visa").id)
    _settle(charge)
    return server.json_response(charge._export())


# --- Disputes and the Files API (Stripe's chargebacks, answered with evidence) --------------------------

# Stripe's dispute evidence: text fields and file fields (a file id with purpose `dispute_evidence`).
EVIDENCE_TEXT_FIELDS = ("access_activity_log", "billing_address", "cancellation_policy_disclosure", "cancellation_rebuttal",
                        "customer_email_address", "customer_name", "customer_purchase_ip", "duplicate_charge_explanation",
                        "duplicate_charge_id", "product_description", "refund_policy_disclosure", "refund_refusal_explanation",
                        "service_date", "shipping_address", "shipping_carrier", "shipping_date", "shipping_tracking_number",
                        "uncategorized_text")
EVIDENCE_FILE_FIELDS = ("cancellation_policy", "customer_communication", "customer_signature", "duplicate_charge_documentation",
                        "receipt", "refund_policy", "service_documentation", "shipping_documentation", "uncategorized_file")
DISPUTE_REASONS = ("bank_cannot_process", "check_returned", "credit_not_processed", "customer_initiated", "debit_not_authorized",
                   "duplicate", "fraudulent", "general", "incorrect_account_details", "insufficient_funds", "product_not_received",
                   "product_unacceptable", "subscription_canceled", "unrecognized")
DISPUTE_FEE = 1500  # Stripe's dispute fee in Europe: 15.00 EUR, taken with the withdrawal
EVIDENCE_DAYS = 7
FILE_PURPOSES = ("dispute_evidence", "identity_document", "business_logo", "business_icon", "customer_signature",
                 "tax_document_user_upload", "additional_verification")


class File(resources.StripeObject):
    """An upload of Stripe's Files API; its content is kept (not exported), its size is the bytes received."""

    object = "file"
    _id_prefix = "file_"

    def __init__(self, *, purpose: str, filename: str, content: bytes):
        super().__init__()
        self.purpose, self.filename, self.size, self._content = purpose, filename, len(content), content
        self.title, self.expires_at = None, None
        self.type = filename.rpartition(".")[2].lower() if "." in filename else None
        self.url = f"https://files.stripe.com/v1/files/{self.id}/contents"
        self.links = {"object": "list", "data": [], "has_more": False, "url": f"/v1/file_links?file={self.id}"}


class Dispute(resources.StripeObject):
    """A chargeback of a settled charge, shaped as Stripe's: the funds (and Stripe's fee) are withdrawn at once."""

    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, charge, *, reason: str, evidence_days: float = EVIDENCE_DAYS):
        super().__init__()
        self.amount = charge.amount - (charge.amount_refunded or 0)  # Stripe disputes what was not refunded
        self.currency, self.charge, self.payment_intent, self.reason = charge.currency, charge.id, charge.payment_intent, reason
        self.status = "needs_response"
        self.is_charge_refundable = False
        self.metadata = {}
        self.evidence = dict.fromkeys(EVIDENCE_TEXT_FIELDS + EVIDENCE_FILE_FIELDS)
        self.evidence_details = {"due_by": int(time.time() + evidence_days * 86400), "has_evidence": False, "past_due": False,
                                 "submission_count": 0}
        method = charge.payment_method_details
        self.payment_method_details = {"type": method["type"], method["type"]: {
            **({"brand": method["card"]["brand"], "network_reason_code": "10.4"} if method["type"] == "card" else {})}}
        # The withdrawal: localstripe's constructor takes charge transactions only, so one is made and then retyped.
        txn = BalanceTransaction(amount=-self.amount, currency=self.currency, description=f"Chargeback withdrawal for {charge.id}",
                                 exchange_rate=None, reporting_category="charge", source=charge.id, type="charge")
        txn.type, txn.reporting_category, txn.source = "adjustment", "dispute", self.id
        txn.fee = DISPUTE_FEE
        txn.fee_details = [{"amount": DISPUTE_FEE, "application": None, "currency": self.currency, "description": "Dispute fee",
                            "type": "stripe_fee"}]
        self._balance_transaction_ids = [txn.id]

    @property
    def balance_transactions(self):
        return [BalanceTransaction._api_retrieve(txn_id)._export() for txn_id in self._balance_transaction_ids]

    def _answerable(self) -> bool:
        return self.status in ("needs_response", "warning_needs_response")


def open_dispute(charge_id: str, *, reason: str = "fraudulent", evidence_days: float = EVIDENCE_DAYS) -> Dispute:
    """What a cardholder's bank does: dispute the charge. `charge.dispute.created` and `charge.dispute.funds_withdrawn` follow."""
    charge = Charge._api_retrieve(charge_id)
    if reason not in DISPUTE_REASONS:
        raise UserError(400, f"Invalid reason: must be one of {', '.join(DISPUTE_REASONS)}", {"param": "reason"})
    if charge.status != "succeeded" or not charge.balance_transaction:
        raise UserError(400, f"Charge {charge_id} is {charge.status}: only a settled charge can be disputed.")
    if getattr(charge, "disputed", False):
        raise UserError(400, f"Charge {charge_id} is already disputed.", {"code": "charge_disputed"})
    if charge.amount - (charge.amount_refunded or 0) <= 0:
        raise UserError(400, f"Charge {charge_id} was refunded in full: nothing to dispute.")
    dispute = Dispute(charge, reason=reason, evidence_days=evidence_days)
    charge.disputed = True
    emit("charge.dispute.created", dispute)
    emit("charge.dispute.funds_withdrawn", dispute)
    return dispute


def update_dispute(dispute_id: str, evidence=None, submit="true", metadata=None, **kwargs) -> Dispute:
    """Evidence is saved (staged); with submit (Stripe's default) it goes to the bank: under review, no more changes."""
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs), {"param": next(iter(kwargs))})
    dispute = Dispute._api_retrieve(dispute_id)
    evidence = evidence or {}
    if not isinstance(evidence, dict) or (metadata is not None and not isinstance(metadata, dict)):
        raise UserError(400, "evidence and metadata must be hashes.")
    unknown = [key for key in evidence if key not in EVIDENCE_TEXT_FIELDS + EVIDENCE_FILE_FIELDS]
    if unknown:
        raise UserError(400, f"Received unknown parameter: evidence[{unknown[0]}]", {"param": f"evidence[{unknown[0]}]"})
    if not dispute._answerable():
        raise UserError(400, f"This dispute is {dispute.status}: its evidence can no longer be changed.")
    details = dispute.evidence_details
    if details["past_due"] or details["due_by"] < time.time():
        details["past_due"] = True
        raise UserError(400, "The evidence due date for this dispute has passed.")
    for field in EVIDENCE_FILE_FIELDS:
        if evidence.get(field):
            upload = store.get("file:" + str(evidence[field]))
            if upload is None:
                raise UserError(400, f"No such file upload: '{evidence[field]}'", {"param": f"evidence[{field}]"})
            if upload.purpose != "dispute_evidence":
                raise UserError(400, f"File {upload.id} has purpose {upload.purpose}, not dispute_evidence.",
                                {"param": f"evidence[{field}]"})
    submit = resources.try_convert_to_bool(submit)
    if not isinstance(submit, bool):
        raise UserError(400, "Invalid boolean: submit", {"param": "submit"})
    dispute.evidence.update({key: value or None for key, value in evidence.items()})
    if metadata:
        dispute.metadata.update(metadata)
    details["has_evidence"] = any(dispute.evidence.values())
    if submit:
        dispute.status = "warning_under_review" if dispute.status.startswith("warning_") else "under_review"
        details["submission_count"] += 1
    emit("charge.dispute.updated", dispute)
    return dispute


def close_dispute(dispute_id: str) -> Dispute:
    """Accepting the dispute: Stripe closes it as lost (the withdrawn money stays with the cardholder)."""
    dispute = Dispute._api_retrieve(dispute_id)
    if dispute.status not in ("needs_response", "warning_needs_response", "under_review", "warning_under_review"):
        raise UserError(400, f"This dispute is already closed ({dispute.status}).")
    dispute.status = "warning_closed" if dispute.status.startswith("warning_") else "lost"
    emit("charge.dispute.closed", dispute)
    return dispute


def _list_disputes(url, limit=None, starting_after=None, charge=None, payment_intent=None, **kwargs):
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs))
    listing = resources.List(url, limit=limit, starting_after=starting_after)
    items = [value for key, value in store.items() if key.startswith("dispute:")]
    listing._list = sorted([d for d in items if (charge is None or d.charge == charge)
                            and (payment_intent is None or d.payment_intent == payment_intent)],
                           key=lambda d: d.created, reverse=True)
    return listing


async def dispute_charge_view(request):
    """Demo/test hook (not Stripe's API): the cardholder's bank disputes the charge."""
    data = await server.get_post_data(request) or {}
    days = resources.try_convert_to_float(data.get("evidence_days", EVIDENCE_DAYS))
    if not isinstance(days, float):
        raise UserError(400, "evidence_days must be a number")
    dispute = open_dispute(request.match_info["charge_id"], reason=str(data.get("reason") or "fraudulent"), evidence_days=days)
    return server.json_response(dispute._export())


async def retrieve_dispute_view(request):
    return server.json_response(Dispute._api_retrieve(request.match_info["id"])._export())


async def list_disputes_view(request):
    data = server.unflatten_data(request.query)
    data.pop("expand", None)
    return server.json_response(_list_disputes("/v1/disputes", **data)._export())


async def update_dispute_view(request):
    data = await server.get_post_data(request) or {}
    data.pop("expand", None)
    return server.json_response(update_dispute(request.match_info["id"], **data)._export())


async def close_dispute_view(request):
    return server.json_response(close_dispute(request.match_info["id"])._export())


async def create_file_view(request):
    """POST /v1/files: multipart with `purpose` and `file`, as the SDK sends it to its files base address."""
    form = await request.post()
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, web.FileField):
        raise UserError(400, "Missing required param: file.", {"param": "file"})
    if purpose not in FILE_PURPOSES:
        raise UserError(400, f"Invalid purpose: must be one of {', '.join(FILE_PURPOSES)}", {"param": "purpose"})
    upload.file.seek(0)
    created = File(purpose=purpose, filename=upload.filename or "upload", content=upload.file.read())
    return server.json_response(created._export())


async def retrieve_file_view(request):
    return server.json_response(File._api_retrieve(request.match_info["id"])._export())


# --- HTTP: idempotency keys, card errors, the account ---------------------------------------------

from localstripe import server  # noqa: E402  (imported after the patches: it registers routes at import)

_idempotent: dict[tuple[str, str], tuple[str, int, bytes, str]] = {}
_idempotency_locks: dict[tuple[str, str], asyncio.Lock] = {}


def multipart_fingerprint(form) -> bytes:
    """A multipart request's parameters as bytes to compare (a file by its name and content's digest)."""
    parts = []
    for name, value in form.items():
        if isinstance(value, web.FileField):
            value.file.seek(0)
            value = f"{value.filename}:{hashlib.sha256(value.file.read()).hexdigest()}"
            form[name].file.seek(0)
        parts.append(f"{name}={value}")
    return "\n".join(sorted(parts)).encode()


@web.middleware
async def idempotency_middleware(request, handler):
    if request.method == "POST" and request.content_type == "multipart/form-data":
        # Parsed (and cached) before anything reads the raw body: aiohttp cannot parse a multipart body once read.
        body = multipart_fingerprint(await request.post())
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    if request.content_type != "multipart/form-data":
        body = await request.read()
    fingerprint = hashlib.sha256(request.path.encode() + b"\n" + body).hexdigest()
    cache_key = (request.headers.get("Authorization", ""), key)
    lock = _idempotency_locks.setdefault(cache_key, asyncio.Lock())
    async with lock:
        if cache_key in _idempotent:
            seen, status, payload, content_type = _idempotent[cache_key]
            if seen != fingerprint:
                return server.json_response({"error": {
                    "type": "idempotency_error",
                    "message": f"Keys for idempotent requests can only be used with the same parameters they were first used with. "
                               f"Try using a key other than '{key}' if you meant to execute a different request."}}, status=400)
            return web.Response(body=payload, status=status, content_type=content_type, headers={"Idempotent-Replayed": "true"})
        response = await handler(request)
        if response.status < 500:  # Stripe saves every answer but server errors
            _idempotent[cache_key] = (fingerprint, response.status, response.body, response.content_type)
        return response


@web.middleware
async def card_error_middleware(request, handler):
    response = await handler(request)
    if response.status == 402 and response.body:
        payload = json.loads(response.body)
        payload.setdefault("error", {})["type"] = "card_error"
        charge_id = payload["error"].get("charge")
        if charge_id and request.path.startswith("/v1/payment_intents"):
            charge = Charge._api_retrieve(charge_id)
            if charge.payment_intent:
                payload["error"]["payment_intent"] = PaymentIntent._api_retrieve(charge.payment_intent)._export()
        return server.json_response(payload, status=402)
    return response


async def retrieve_account(request):
    if server.get_api_key(request) is None:
        raise UserError(401, "Unauthorized")
    return server.json_response({"id": "acct_localstripe", "object": "account", "business_profile": {"name": "localstripe"},
                                 "charges_enabled": True, "country": "DE", "default_currency": "eur", "livemode": False,
                                 "settings": {"dashboard": {"display_name": "localstripe (offline)"}}, "created": int(time.time())})


def build_app() -> web.Application:
    app = server.app
    if idempotency_middleware not in app.middlewares:
        app.middlewares.insert(0, idempotency_middleware)
        app.middlewares.insert(1, card_error_middleware)
        app.router.add_get("/v1/account", retrieve_account)
        app.router.add_post("/_config/payouts/run", run_payout_view)
        app.router.add_post("/_config/charges/unannounced", unannounced_charge_view)
        app.router.add_post("/_config/charges/{charge_id}/dispute", dispute_charge_view)
        app.router.add_get("/v1/disputes", list_disputes_view)
        app.router.add_get("/v1/disputes/{id}", retrieve_dispute_view)
        app.router.add_post("/v1/disputes/{id}", update_dispute_view)
        app.router.add_post("/v1/disputes/{id}/close", close_dispute_view)
        app.router.add_post("/v1/files", create_file_view)
        app.router.add_get("/v1/files/{id}", retrieve_file_view)
    return app


def reset() -> None:
    """Forget everything (between tests)."""
    store.clear()
    _idempotent.clear()
    _idempotency_locks.clear()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--store", help="keep the objects in this file across restarts (the demo); default: memory only")
    args = parser.parse_args(argv)
    global STORE_PATH
    STORE_PATH = args.store
    store.try_load_from_disk()
    logging.basicConfig(level=logging.INFO, format="localstripe %(message)s")
    web.run_app(build_app(), host=args.host, port=args.port, access_log=logging.getLogger("aiohttp.access"), print=None)


if __name__ == "__main__":
    main()
