"""A stateful, Stripe-compatible HTTP server for tests (the product reaches it through STRIPE_API_BASE).

It answers the official SDK with objects built from Stripe's own example objects
(shared/stripe-fixtures/fixtures3.json), Stripe's error format and statuses, and Stripe's
idempotency semantics (replay of the first answer; a different body with the same key is an
error). Test controls: a request log, fault injection (errors, delays, "processed but the answer
was lost"), settling SEPA charges, failing refunds, Dashboard refunds and disputes, and Stripe's automatic payout
of the day (`run_payout`: balance transactions with Stripe's fees for what the fake knows, the payout, its events).
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import threading
import time
from decimal import ROUND_HALF_UP, Decimal
from email import policy as email_policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

# Stripe's own example objects (a subset of shared/stripe-fixtures/fixtures3.json, MIT), committed so tests
# never depend on files outside the repository.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe" / "objects.json"
TEMPLATES = json.loads(FIXTURES.read_text())["resources"]
API_VERSION = "2026-10-28.endive"
TWO_DECIMAL_MINIMUM = {"eur": 50, "usd": 50, "gbp": 30, "chf": 50}

MAGIC_METHODS = {
    "pm_card_visa": {"type": "card", "brand": "visa", "last4": "4242", "outcome": "succeed"},
    "pm_card_mastercard": {"type": "card", "brand": "mastercard", "last4": "4444", "outcome": "succeed"},
    "pm_card_chargeDeclined": {"type": "card", "brand": "visa", "last4": "0002", "outcome": "decline", "decline_code": "generic_decline"},
    "pm_card_chargeDeclinedInsufficientFunds": {"type": "card", "brand": "visa", "last4": "9995", "outcome": "decline",
                                                "decline_code": "insufficient_funds"},
    "pm_card_authenticationRequired": {"type": "card", "brand": "visa", "last4": "3184", "outcome": "authenticate"},
    "pm_sepa_debit": {"type": "sepa_debit", "last4": "3000", "outcome": "processing"},
    "pm_sepa_debit_fail": {"type": "sepa_debit", "last4": "3202", "outcome": "processing_fail"},
    "pm_alipay": {"type": "alipay", "outcome": "redirect"},
}


FILE_PURPOSES = {"dispute_evidence", "identity_document", "business_logo", "business_icon", "customer_signature",
                 "additional_verification", "pci_document", "tax_document_user_upload", "account_requirement"}


def parse_multipart(content_type: str, body: bytes) -> tuple[dict, bytes | None]:
    """A multipart/form-data body as the SDK sends a file upload: its fields (a file field as {filename, size, sha256},
    so a request log and the idempotency check can compare it) and the uploaded bytes."""
    message = BytesParser(policy=email_policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    pairs, upload = [], None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        content = part.get_payload(decode=True) or b""
        if filename is not None:
            upload = content
            pairs.append((f"{name}[filename]", filename))
            pairs.append((f"{name}[size]", str(len(content))))
            pairs.append((f"{name}[sha256]", hashlib.sha256(content).hexdigest()))
        else:
            pairs.append((name, content.decode()))
    return parse_form(pairs), upload


def dispute_has_evidence(dispute: dict) -> bool:
    return any(value for value in (dispute.get("evidence") or {}).values())


class StripeFail(Exception):
    def __init__(self, status: int, error_type: str, message: str, **extra):
        super().__init__(message)
        self.status, self.body = status, {"error": {"type": error_type, "message": message, **extra}}


def parse_form(pairs: list[tuple[str, str]]) -> dict:
    """Stripe's form encoding: a[b][c]=v, a[0]=v, a[]=v -> nested dicts and lists."""
    root: dict = {}
    for raw_key, value in pairs:
        parts = raw_key.replace("]", "").split("[")
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if last:
                if part == "" or part.isdigit():
                    node.setdefault("__list__", []).append(value)
                else:
                    node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(root)


def _lists(node):
    if isinstance(node, dict):
        if set(node) == {"__list__"}:
            return [_lists(item) for item in node["__list__"]]
        if node and all(key.isdigit() for key in node):
            return [_lists(node[key]) for key in sorted(node, key=int)]
        return {key: _lists(value) for key, value in node.items()}
    return node


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeFail(400, "invalid_request_error", f"Invalid integer: {value}", param=name) from None


def _bool(value) -> bool:
    return str(value).lower() == "true"


class FakeStripeServer:
    def __init__(self):
        self.lock = threading.RLock()
        self.account_id = "acct_fake" + secrets.token_hex(6)
        self.api_version = API_VERSION
        self._httpd: ThreadingHTTPServer | None = None
        self.reset()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeStripeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are separate writes: without TCP_NODELAY, Nagle + delayed ACK add 40 ms to some
            # answers (keep-alive), which would distort every timing taken against this server.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                server._dispatch(self, "GET")

            def do_POST(self):
                server._dispatch(self, "POST")

            def do_DELETE(self):
                server._dispatch(self, "DELETE")

            def do_OPTIONS(self):  # CORS preflight from a browser page (the Stripe.js double)
                server._send(self, 204, None)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def reset(self) -> None:
        with self.lock:
            self.objects: dict[str, dict] = {}
            self.events: list[dict] = []
            self.requests: list[dict] = []
            self.idempotency: dict[tuple, tuple] = {}
            self.faults: list[dict] = []
            self.observers: list = []  # test hooks called with (method, path) before each request is answered
            self.refunds_by_charge: dict[str, list[str]] = {}
            self.redirects: dict[str, str] = {}  # PaymentIntent id -> return_url, while the customer is on Alipay's page
            self.mode = "test"
            # Payouts: the balance transactions of each payout, what was paid out already, transactions waiting for
            # the next payout (a failed payout's money, extra lines), and the fraction of a unit kept per currency.
            self.payout_transactions: dict[str, list[str]] = {}
            self.paid_out: set[tuple[str, str]] = set()
            self.waiting_transactions: list[str] = []
            self.carried: dict[str, int] = {}
            self.file_contents: dict[str, bytes] = {}  # file id -> the uploaded bytes

    # --- test controls -----------------------------------------------------------------------
    def inject(self, method: str, path_prefix: str, *, status: int = 500, times: int = 1, delay: float | None = None,
               body: dict | None = None, after_processing: bool = False) -> None:
        with self.lock:
            self.faults.append({"method": method, "path": path_prefix, "status": status, "times": times, "delay": delay,
                                "body": body, "after": after_processing})

    def count(self, method: str, path_prefix: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["method"] == method and r["path"].startswith(path_prefix))

    def expire_idempotency_keys(self) -> None:
        with self.lock:
            self.idempotency.clear()

    def settle_charge(self, charge_id: str, succeed: bool = True, failure_code: str = "insufficient_funds") -> dict:
        with self.lock:
            charge = self.objects[charge_id]
            pi = self.objects.get(charge.get("payment_intent") or "")
            if succeed:
                charge.update(status="succeeded", paid=True, captured=True, amount_captured=charge["amount"])
                self._event("charge.succeeded", charge)
                if pi:
                    pi.update(status="succeeded", amount_received=pi["amount"])
                    self._event("payment_intent.succeeded", pi)
            else:
                message = "The customer's account has insufficient funds to cover this payment."
                charge.update(status="failed", paid=False, failure_code=failure_code, failure_message=message)
                self._event("charge.failed", charge)
                if pi:
                    pi.update(status="requires_payment_method", last_payment_error={
                        "type": "card_error" if charge["payment_method_details"]["type"] == "card" else "invalid_request_error",
                        "code": failure_code, "message": message, "charge": charge_id, "payment_method": {"id": charge["payment_method"]}})
                    self._event("payment_intent.payment_failed", pi)
            return copy.deepcopy(charge)

    def fail_refund(self, refund_id: str, failure_reason: str = "expired_or_canceled_card") -> dict:
        with self.lock:
            refund = self.objects[refund_id]
            refund.update(status="failed", failure_reason=failure_reason)
            charge = self.objects[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            self._event("refund.failed", refund)
            self._event("charge.refund.updated", refund)
            return copy.deepcopy(refund)

    def create_dashboard_refund(self, charge_id: str, amount: int | None = None) -> dict:
        with self.lock:
            return copy.deepcopy(self._refund({"charge": charge_id, **({"amount": str(amount)} if amount else {})}))

    def dispute_charge(self, charge_id: str, *, outcome: str | None = None, amount: int | None = None, inquiry: bool = False,
                       due_in_days: float = 7, reason: str | None = None) -> list[dict]:
        """Open a dispute of the charge (or of `amount` of it): a chargeback withdraws the funds at once, as for cards; an
        inquiry (`warning_needs_response`) withdraws nothing. `outcome` 'won' or 'lost' closes a chargeback (an inquiry:
        any outcome closes it as `warning_closed`)."""
        with self.lock:
            charge = self.objects[charge_id]
            dispute = copy.deepcopy(TEMPLATES["dispute"])
            disputable = charge["amount"] - charge.get("amount_refunded", 0)  # Stripe disputes what was not refunded
            dispute.update(id="dp_" + secrets.token_hex(8), charge=charge_id, amount=amount or disputable, currency=charge["currency"],
                           status="warning_needs_response" if inquiry else "needs_response", created=int(time.time()),
                           livemode=charge["livemode"], payment_intent=charge.get("payment_intent"), metadata={},
                           is_charge_refundable=inquiry)
            if reason:
                dispute["reason"] = reason
            # Evidence is due some days after the dispute opens (a negative number: already past due).
            due_by = int(time.time() + due_in_days * 86400)
            dispute["evidence_details"] = {**dispute["evidence_details"], "due_by": due_by, "past_due": due_in_days < 0,
                                           "has_evidence": False, "submission_count": 0}
            self.objects[dispute["id"]] = dispute
            charge["disputed"] = True
            events = [self._event("charge.dispute.created", dispute)]
            if inquiry:
                if outcome:
                    dispute["status"] = "warning_closed"
                    events.append(self._event("charge.dispute.closed", dispute))
                return events
            events.append(self._event("charge.dispute.funds_withdrawn", dispute))
            if outcome == "won":
                dispute["status"] = "won"
                events += [self._event("charge.dispute.funds_reinstated", dispute), self._event("charge.dispute.closed", dispute)]
            elif outcome == "lost":
                dispute["status"] = "lost"
                events.append(self._event("charge.dispute.closed", dispute))
            return events

    def add_source(self, *, amount: int, currency: str = "eur", source_type: str = "sepa_debit", metadata: dict | None = None) -> dict:
        with self.lock:
            source = copy.deepcopy(TEMPLATES["source"])
            source.update(id="src_" + secrets.token_hex(8), amount=amount, currency=currency, type=source_type, status="chargeable",
                          metadata=metadata or {}, livemode=False)
            self.objects[source["id"]] = source
            return copy.deepcopy(source)

    def complete_redirect(self, payment_intent_id: str, *, authorize: bool = True) -> str:
        """The customer authorizes (or refuses) on Alipay's page: the charge and its events, then the URL Stripe sends the
        browser back to (`return_url` with payment_intent, its client secret and redirect_status)."""
        from urllib.parse import urlencode

        with self.lock:
            pi = self._get(payment_intent_id, "payment_intent")
            return_url = self.redirects.pop(payment_intent_id, None)
            if return_url is None or pi["status"] != "requires_action":
                raise StripeFail(400, "invalid_request_error", f"PaymentIntent {payment_intent_id} is not waiting for a redirect.")
            pm = self.objects[pi["payment_method"]]
            if authorize:
                self._charge(pi, pm, "succeeded")
                pi.update(status="succeeded", amount_received=pi["amount"], next_action=None)
                self._event("payment_intent.succeeded", pi)
            else:
                message = "The customer did not approve the payment."
                charge = self._charge(pi, pm, "failed", failure_code="payment_intent_authentication_failure", failure_message=message)
                pi.update(status="requires_payment_method", next_action=None, last_payment_error={
                    "type": "invalid_request_error", "code": "payment_intent_payment_attempt_failed", "message": message,
                    "charge": charge["id"], "payment_method": copy.deepcopy(pm)})
                self._event("payment_intent.payment_failed", pi)
            query = urlencode({"payment_intent": pi["id"], "payment_intent_client_secret": pi["client_secret"],
                               "redirect_status": "succeeded" if authorize else "failed"})
            return f"{return_url}{'&' if '?' in return_url else '?'}{query}"

    # --- payouts and balance transactions -------------------------------------------------------------
    def add_charge(self, *, amount: int, currency: str = "eur", method: str = "card", created: int | None = None) -> dict:
        """A succeeded charge that no event announces (made outside the product, e.g. in the Dashboard)."""
        with self.lock:
            charge = copy.deepcopy(TEMPLATES["charge"])
            charge.update(id=self._id("ch"), amount=amount, currency=currency, status="succeeded", paid=True, captured=True,
                          amount_captured=amount, amount_refunded=0, refunded=False, disputed=False, metadata={}, payment_intent=None,
                          payment_method_details={"type": method, method: {}}, created=created or int(time.time()),
                          livemode=self.mode == "live")
            charge.pop("refunds", None)
            self.objects[charge["id"]] = charge
            return copy.deepcopy(charge)

    def add_balance_transaction(self, *, amount: int, currency: str = "eur", type: str = "adjustment",  # noqa: A002 - Stripe's name
                                reporting_category: str = "other_adjustment", fee: int = 0, source: str | None = None,
                                description: str = "") -> dict:
        """A balance transaction of Stripe's own (a fee line, an adjustment...) for the next payout."""
        with self.lock:
            txn = self._balance_transaction(amount=amount, currency=currency, type=type, reporting_category=reporting_category,
                                            fee=fee, source=source, description=description)
            self.waiting_transactions.append(txn["id"])
            return copy.deepcopy(txn)

    def run_payout(self, *, currency: str = "eur", exchange_rates: dict[str, str] | None = None, monthly_fee: int | None = None,
                   reconciliation: str = "completed") -> dict:
        """Stripe's automatic payout of the day in `currency`: a balance transaction, with Stripe's fees, for every
        succeeded charge, refund, failed refund and dispute not paid out yet (charges in another currency only when
        `exchange_rates` converts them), then the payout of their net and its `payout.paid` (and, unless
        `reconciliation` is "in_progress", `payout.reconciliation_completed`) events. HUF and TWD are paid out in
        whole units: the fraction stays for the next payout."""
        with self.lock:
            rates = {key.lower(): Decimal(value) for key, value in (exchange_rates or {}).items()}
            included = list(self.waiting_transactions)
            self.waiting_transactions.clear()
            for charge in sorted(self._all("charge"), key=lambda c: c["created"]):
                rate = self._settlement_rate(charge["currency"], currency, rates)
                if charge["status"] == "succeeded" and rate is not None and self._first_time("charge", charge["id"]):
                    included.append(self._charge_transaction(charge, currency, rate)["id"])
            for refund in sorted(self._all("refund"), key=lambda r: r["created"]):
                charge = self.objects[refund["charge"]]
                rate = self._settlement_rate(refund["currency"], currency, rates)
                if rate is None:
                    continue
                if self._first_time("refund", refund["id"]):
                    sepa = charge["payment_method_details"].get("type") == "sepa_debit"
                    included.append(self._converted_transaction(refund, -refund["amount"], currency, rate, "payment_refund" if sepa
                                                                else "refund", "refund", "REFUND FOR CHARGE")["id"])
                if refund["status"] == "failed" and self._first_time("refund_failure", refund["id"]):
                    included.append(self._converted_transaction(refund, refund["amount"], currency, rate, "refund_failure",
                                                                "refund_failure", "REFUND FAILURE")["id"])
            for dispute in sorted(self._all("dispute"), key=lambda d: d["created"]):
                rate = self._settlement_rate(dispute["currency"], currency, rates)
                if rate is None or dispute["status"].startswith("warning_"):  # an inquiry moves no money
                    continue
                if self._first_time("dispute", dispute["id"]):
                    txn = self._converted_transaction(dispute, -dispute["amount"], currency, rate, "adjustment", "dispute",
                                                      f"Chargeback withdrawal for {dispute['charge']}", fee=1500, fee_description="Dispute fee")
                    included.append(txn["id"])
                if dispute["status"] == "won" and self._first_time("dispute_reversal", dispute["id"]):
                    included.append(self._converted_transaction(dispute, dispute["amount"], currency, rate, "adjustment", "dispute_reversal",
                                                                f"Chargeback reversal for {dispute['charge']}")["id"])
            if monthly_fee:
                included.append(self._balance_transaction(amount=-monthly_fee, currency=currency, type="stripe_fee", reporting_category="fee",
                                                          description="Billing - Usage Fee")["id"])
            total = sum(self.objects[txn_id]["net"] for txn_id in included) + self.carried.get(currency, 0)
            amount = total - total % 100 if currency.upper() in ("HUF", "TWD") else total
            if amount <= 0:
                raise ValueError(f"Nothing to pay out in {currency}: the balance is {total}.")
            self.carried[currency] = total - amount
            payout = self._payout(amount=amount, currency=currency, automatic=True, status="paid", reconciliation=reconciliation)
            own = self._balance_transaction(amount=-amount, currency=currency, type="payout", reporting_category="payout",
                                            source=payout["id"], description="STRIPE PAYOUT")
            payout["balance_transaction"] = own["id"]
            self.payout_transactions[payout["id"]] = [*included, own["id"]]
            self._event("payout.paid", payout)
            if reconciliation == "completed":
                self._event("payout.reconciliation_completed", payout)
            return copy.deepcopy(payout)

    def complete_payout_reconciliation(self, payout_id: str) -> dict:
        with self.lock:
            payout = self._get(payout_id, "payout")
            payout["reconciliation_status"] = "completed"
            return self._event("payout.reconciliation_completed", payout)

    def fail_payout(self, payout_id: str, failure_code: str = "account_closed") -> dict:
        """The bank returned the payout: `payout.failed`, and its money back in the balance for the next payout."""
        with self.lock:
            payout = self._get(payout_id, "payout")
            payout.update(status="failed", failure_code=failure_code, failure_message="The bank account has been closed.")
            back = self._balance_transaction(amount=payout["amount"], currency=payout["currency"], type="payout_failure",
                                             reporting_category="payout_reversal", source=payout_id, description="PAYOUT FAILURE")
            payout["failure_balance_transaction"] = back["id"]
            self.waiting_transactions.append(back["id"])
            return self._event("payout.failed", payout)

    def _first_time(self, kind: str, object_id: str) -> bool:
        if (kind, object_id) in self.paid_out:
            return False
        self.paid_out.add((kind, object_id))
        return True

    @staticmethod
    def _settlement_rate(currency: str, settlement: str, rates: dict) -> Decimal | None:
        return Decimal(1) if currency == settlement else rates.get(currency)

    def _charge_transaction(self, charge: dict, currency: str, rate: Decimal) -> dict:
        method = charge["payment_method_details"].get("type")
        amount = int((charge["amount"] * rate).to_integral_value(ROUND_HALF_UP))
        # Stripe's standard European pricing: cards 1.5 % + 0.25, SEPA Direct Debit 0.35, others 2.9 % + 0.30.
        percent, fixed = {"card": (Decimal("0.015"), 25), "sepa_debit": (Decimal(0), 35)}.get(method, (Decimal("0.029"), 30))
        fee = int((amount * percent).to_integral_value(ROUND_HALF_UP)) + fixed
        txn = self._converted_transaction(charge, charge["amount"], currency, rate, "payment" if method == "sepa_debit" else "charge",
                                          "charge", charge.get("description") or "", fee=fee, fee_description="Stripe processing fees")
        charge["balance_transaction"] = txn["id"]
        return txn

    def _converted_transaction(self, source: dict, amount: int, currency: str, rate: Decimal, type: str, category: str,  # noqa: A002
                               description: str, *, fee: int = 0, fee_description: str = "") -> dict:
        converted = int((amount * rate).to_integral_value(ROUND_HALF_UP))
        txn = self._balance_transaction(amount=converted, currency=currency, type=type, reporting_category=category, fee=fee,
                                        source=source["id"], description=description, fee_description=fee_description,
                                        created=source.get("created"))
        if source["currency"] != currency:
            txn["exchange_rate"] = float(rate)  # a JSON number, as Stripe sends it
        return txn

    def _balance_transaction(self, *, amount: int, currency: str, type: str, reporting_category: str, fee: int = 0,  # noqa: A002
                             source: str | None = None, description: str = "", fee_description: str = "",
                             created: int | None = None) -> dict:
        txn = copy.deepcopy(TEMPLATES["balance_transaction"])
        created = created or int(time.time())
        details = [{"amount": fee, "application": None, "currency": currency, "description": fee_description or "Stripe fee",
                    "type": "stripe_fee"}] if fee else []
        txn.update(id=self._id("txn"), amount=amount, currency=currency, fee=fee, fee_details=details, net=amount - fee,
                   type=type, reporting_category=reporting_category, source=source, description=description or None,
                   exchange_rate=None, created=created, available_on=created + 2 * 86400, status="available")
        self.objects[txn["id"]] = txn
        return txn

    def _payout(self, *, amount: int, currency: str, automatic: bool, status: str, reconciliation: str) -> dict:
        payout = copy.deepcopy(TEMPLATES["payout"])
        now = int(time.time())
        payout.update(id=self._id("po"), amount=amount, currency=currency, automatic=automatic, status=status,
                      reconciliation_status=reconciliation if automatic else "not_applicable", created=now,
                      arrival_date=now - now % 86400 + 2 * 86400, livemode=self.mode == "live", metadata={},
                      balance_transaction=None, failure_balance_transaction=None, failure_code=None, failure_message=None,
                      description="STRIPE PAYOUT", destination="ba_" + secrets.token_hex(8))
        self.objects[payout["id"]] = payout
        return payout

    def _balance_transactions(self, params: dict) -> dict:
        if params.get("payout"):
            payout = self._get(params["payout"], "payout")
            if not payout["automatic"]:
                raise StripeFail(400, "invalid_request_error", "Balance transaction history can only be filtered on automatic "
                                                               "transfers, not manual.", param="payout")
            items = [self.objects[txn_id] for txn_id in reversed(self.payout_transactions.get(payout["id"], []))]
        else:
            items = list(reversed(self._all("balance_transaction")))
        if _int(params.get("limit") or 10, "limit") > 100:
            raise StripeFail(400, "invalid_request_error", "This value must be less than or equal to 100.", param="limit")
        page = self._list(items, params)
        if "data.source" in (params.get("expand") or []):
            page["data"] = [{**txn, "source": copy.deepcopy(self.objects.get(txn["source"], txn["source"]))} if txn.get("source")
                            else txn for txn in page["data"]]
        return page

    def events_of(self, *types: str) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(e) for e in self.events if not types or e["type"] in types]

    # --- HTTP --------------------------------------------------------------------------------
    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        if method == "GET" and parts.path == "/stripe-double.js":
            return self._send_script(handler)
        if method == "GET" and parts.path.startswith("/alipay/authorize/"):
            return self._alipay_page(handler, parts)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        upload = None
        if method == "POST" and (handler.headers.get("Content-Type") or "").startswith("multipart/form-data"):
            params, upload = parse_multipart(handler.headers["Content-Type"], body)
        else:
            raw = body.decode()
            params = parse_form(parse_qsl(raw if method == "POST" else parts.query, keep_blank_values=True))
        key = (handler.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        headers = {name: value for name, value in handler.headers.items()}
        idem = handler.headers.get("Idempotency-Key")
        for observer in list(self.observers):
            observer(method, parts.path)
        with self.lock:
            self.requests.append({"method": method, "path": parts.path, "params": params, "headers": headers,
                                  "idempotency_key": idem, "api_key": key, "stripe_version": handler.headers.get("Stripe-Version")})
            fault = self._take_fault(method, parts.path)
        if fault and not fault["after"]:
            if fault["delay"]:
                time.sleep(fault["delay"])
            else:
                return self._send(handler, fault["status"], fault["body"] or {"error": {"type": "api_error", "message": "Fake outage."}})
        status, body, replayed = self._handle(method, parts.path, params, key, idem, upload)
        if fault and fault["after"]:
            if fault["delay"]:
                time.sleep(fault["delay"])
            else:
                return self._send(handler, fault["status"], fault["body"] or {"error": {"type": "api_error", "message": "Fake outage."}})
        self._send(handler, status, body, replayed)

    def _alipay_page(self, handler, parts):
        """Alipay's authorization page in test mode: authorize or fail, then back to the return URL."""
        pi_id = parts.path.split("/")[3]
        outcome = dict(parse_qsl(parts.query)).get("outcome")
        if outcome in ("authorize", "fail"):
            try:
                location = self.complete_redirect(pi_id, authorize=outcome == "authorize")
            except StripeFail as fail:
                return self._send(handler, fail.status, fail.body)
            return self._send_raw(handler, 302, b"", "text/plain", {"Location": location})
        page = (f"<!doctype html><title>Alipay test payment</title><h1>Alipay test payment</h1><p>{pi_id}</p>"
                f'<a id="authorize" href="?outcome=authorize">Authorize test payment</a> '
                f'<a id="fail" href="?outcome=fail">Fail test payment</a>').encode()
        return self._send_raw(handler, 200, page, "text/html; charset=utf-8", {})

    def _send_raw(self, handler, status, data: bytes, content_type: str, headers: dict):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _take_fault(self, method, path):
        for fault in self.faults:
            if fault["method"] == method and path.startswith(fault["path"]) and fault["times"] > 0:
                fault["times"] -= 1
                return dict(fault)
        return None

    def _send_script(self, handler):
        data = (Path(__file__).with_name("stripe_double.js")).read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/javascript")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _send(self, handler, status, body, replayed=False):
        data = json.dumps(body).encode() if body is not None else b""
        try:
            handler.send_response(status)
            handler.send_header("Access-Control-Allow-Origin", "*")
            handler.send_header("Access-Control-Allow-Headers", "Content-Type")
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("Request-Id", "req_" + secrets.token_hex(6))
            if replayed:
                handler.send_header("Idempotent-Replayed", "true")
            if status >= 500:
                handler.send_header("Stripe-Should-Retry", "true")
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (timeout test)
            pass

    def _handle(self, method, path, params, key, idem, upload=None):
        with self.lock:
            if not key and str(params.get("key", "")).startswith("pk_"):
                # Stripe.js confirms with the publishable key and the intent's client secret, nothing else.
                key = params.pop("key").replace("pk_", "sk_", 1)
                secret = params.pop("client_secret", "")
                target = self.objects.get(path.split("/")[3]) if path.count("/") >= 4 else None
                if not (path.endswith("/confirm") and target and target.get("client_secret") == secret):
                    return 401, {"error": {"type": "invalid_request_error", "message": "Publishable keys may only confirm intents."}}, False
            if not key or "invalid" in key or not key.startswith(("sk_test_", "rk_test_", "sk_live_", "rk_live_")):
                masked = (key[:8] + "*" * 4 + key[-4:]) if key else ""
                return 401, {"error": {"type": "invalid_request_error", "message": f"Invalid API Key provided: {masked}"}}, False
            self.mode = "live" if "_live_" in key else "test"
            scope = (key, method, path, idem)
            if method == "POST" and idem:
                stored = self.idempotency.get(scope[:1] + (idem,))
                if stored is not None:
                    if stored[0] != (path, json.dumps(params, sort_keys=True)):
                        return 400, {"error": {"type": "idempotency_error", "message": "Keys for idempotent requests can only be "
                                                                                      "used with the same parameters they were first used with."}}, False
                    return stored[1], copy.deepcopy(stored[2]), True
            try:
                status, body = 200, self._route(method, path, params, upload)
            except StripeFail as fail:
                status, body = fail.status, fail.body
            body = copy.deepcopy(body)
            if method == "POST" and idem:
                self.idempotency[(key, idem)] = ((path, json.dumps(params, sort_keys=True)), status, copy.deepcopy(body))
            return status, body, False

    def _route(self, method, path, params, upload=None):
        segments = [s for s in path.split("/") if s][1:]  # drop "v1"
        if not segments:
            raise StripeFail(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")
        resource, rest = segments[0], segments[1:]
        if resource == "account" and method == "GET":
            account = copy.deepcopy(TEMPLATES["account"])
            account.update(id=self.account_id)
            return account
        if resource == "events":
            if len(params.get("types") or []) > 20:
                raise StripeFail(400, "invalid_request_error", "You may only specify up to 20 types.", param="types")
            return self._list([e for e in reversed(self.events) if self._event_matches(e, params)], params) if not rest \
                else self._get(rest[0])
        if resource == "customers":
            if not rest and method == "POST":
                return self._customer(params)
            return self._get(rest[0]) if method == "GET" else self._update(rest[0], params)
        if resource == "payment_methods":
            if not rest and method == "POST":
                return self._payment_method_create(params)
            if len(rest) == 2 and rest[1] == "attach":
                return self._attach(self._pm(rest[0]), params.get("customer"))
            if len(rest) == 2 and rest[1] == "detach":
                pm = self._pm(rest[0])
                pm["customer"] = None
                self._event("payment_method.detached", pm)
                return pm
            return self._pm(rest[0])
        if resource == "payment_intents":
            if not rest:
                return self._pi_create(params) if method == "POST" else self._list(self._all("payment_intent"), params)
            pi = self._get(rest[0], "payment_intent")
            if len(rest) == 2 and rest[1] == "confirm":
                return self._pi_confirm(pi, params)
            if len(rest) == 2 and rest[1] == "cancel":
                if pi["status"] in ("succeeded", "processing", "canceled"):  # as Stripe: the test sees the refusal
                    raise StripeFail(400, "invalid_request_error", f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}.",
                                     code="payment_intent_unexpected_state")
                pi.update(status="canceled", canceled_at=int(time.time()))
                self._event("payment_intent.canceled", pi)
                return pi
            if method == "POST":
                return self._update(rest[0], params)
            return self._expanded(pi, params)
        if resource == "setup_intents":
            if not rest:
                return self._si_create(params)
            si = self._get(rest[0], "setup_intent")
            if len(rest) == 2 and rest[1] == "confirm":
                return self._si_confirm(si, params)
            return si
        if resource == "charges":
            if not rest:
                if method == "POST":
                    return self._charge_from_source(params)
                charges = [c for c in self._all("charge") if all(str(c.get(k)) == str(v) for k, v in params.items()
                                                                   if k in ("payment_intent", "customer"))]
                return self._list(charges, params)
            charge = self._get(rest[0], "charge")
            return self._expanded(charge, params)
        if resource == "refunds":
            if not rest:
                if method == "POST":
                    return self._refund(params)
                refunds = [r for r in reversed(self._all("refund")) if all(r.get(k) == v for k, v in params.items()
                                                                            if k in ("charge", "payment_intent"))]
                return self._list(refunds, params)
            return self._get(rest[0], "refund")
        if resource == "sources":
            return self._get(rest[0], "source")
        if resource == "payouts":
            if not rest and method == "POST":  # a manual payout: Stripe cannot tell which transactions it carries
                return self._payout(amount=_int(params.get("amount"), "amount"), currency=(params.get("currency") or "eur").lower(),
                                    automatic=False, status="pending", reconciliation="not_applicable")
            if not rest:
                arrival = params.get("arrival_date") or {}
                payouts = [p for p in reversed(self._all("payout"))
                           if not (isinstance(arrival, dict) and arrival.get("gte") and p["arrival_date"] < int(arrival["gte"]))]
                return self._list(payouts, params)
            return self._get(rest[0], "payout")
        if resource == "balance_transactions":
            return self._balance_transactions(params) if not rest else self._get(rest[0], "balance_transaction")
        if resource == "files":
            return self._file_create(params, upload) if not rest and method == "POST" else self._get(rest[0], "file")
        if resource == "disputes":
            if not rest:
                return self._list(list(reversed(self._all("dispute"))), params)
            dispute = self._get(rest[0], "dispute")
            if len(rest) == 2 and rest[1] == "close" and method == "POST":
                return self._dispute_close(dispute)
            if method == "POST":
                return self._dispute_update(dispute, params)
            return dispute
        raise StripeFail(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    # --- helpers -----------------------------------------------------------------------------
    def _id(self, prefix):
        return f"{prefix}_{secrets.token_hex(12)}"

    def _get(self, object_id, kind=None):
        obj = self.objects.get(object_id)
        if obj is None or (kind and obj.get("object") != kind):
            raise StripeFail(404, "invalid_request_error", f"No such {kind or 'object'}: '{object_id}'", code="resource_missing",
                             param="id")
        return obj

    def _all(self, kind):
        return [o for o in self.objects.values() if o.get("object") == kind]

    def _update(self, object_id, params):
        obj = self._get(object_id)
        for key, value in params.items():
            if key == "metadata":
                obj.setdefault("metadata", {}).update(value)
            elif key != "expand":
                obj[key] = value
        return obj

    def _list(self, items, params):
        limit = int(params.get("limit") or 10)
        if params.get("starting_after"):
            ids = [i["id"] for i in items]
            start = ids.index(params["starting_after"]) + 1 if params["starting_after"] in ids else len(items)
            items = items[start:]
        return {"object": "list", "url": "/v1/list", "has_more": len(items) > limit, "data": items[:limit]}

    def _event_matches(self, event, params):
        types = params.get("types") or ([params["type"]] if params.get("type") else None)
        if types and event["type"] not in types:
            return False
        created = params.get("created") or {}
        return not (isinstance(created, dict) and created.get("gte") and event["created"] < int(created["gte"]))

    def _expanded(self, obj, params):
        expand = params.get("expand") or []
        result = copy.deepcopy(obj)
        if "latest_charge" in expand and result.get("latest_charge"):
            result["latest_charge"] = copy.deepcopy(self.objects[result["latest_charge"]])
        if "refunds" in expand and result.get("object") == "charge":
            refunds = [copy.deepcopy(self.objects[r]) for r in self.refunds_by_charge.get(result["id"], [])]
            result["refunds"] = {"object": "list", "data": refunds, "has_more": False, "url": f"/v1/charges/{result['id']}/refunds"}
        return result

    def _event(self, event_type, obj):
        event = copy.deepcopy(TEMPLATES["event"])
        event.update(id=self._id("evt"), type=event_type, api_version=self.api_version, created=int(time.time()),
                     livemode=self.mode == "live", data={"object": copy.deepcopy(obj)})
        self.events.append(event)
        return copy.deepcopy(event)

    def _file_create(self, params, upload):
        """Stripe's Files API: a multipart upload with a purpose; the content is kept for tests (`file_contents`)."""
        if upload is None or not params.get("file"):
            raise StripeFail(400, "invalid_request_error", "Missing required param: file.", param="file")
        purpose = params.get("purpose")
        if purpose not in FILE_PURPOSES:
            raise StripeFail(400, "invalid_request_error", f"Invalid purpose: {purpose}", param="purpose")
        filename = params["file"]["filename"]
        file_id = self._id("file")
        suffix = filename.rpartition(".")[2].lower() if "." in filename else ""
        stored = {"id": file_id, "object": "file", "created": int(time.time()), "expires_at": None, "filename": filename,
                  "links": {"object": "list", "data": [], "has_more": False, "url": f"/v1/file_links?file={file_id}"},
                  "purpose": purpose, "size": len(upload), "title": None, "type": suffix or None,
                  "url": f"https://files.stripe.com/v1/files/{file_id}/contents"}
        self.objects[file_id] = stored
        self.file_contents[file_id] = upload
        return stored

    def _dispute_close(self, dispute):
        """Accepting a dispute: Stripe closes it as lost (an inquiry as warning_closed) and tells the webhooks."""
        if dispute["status"] not in ("needs_response", "warning_needs_response", "under_review", "warning_under_review"):
            raise StripeFail(400, "invalid_request_error", f"This dispute is already closed ({dispute['status']}).")
        dispute["status"] = "warning_closed" if dispute["status"].startswith("warning_") else "lost"
        dispute["evidence_details"] = {**(dispute.get("evidence_details") or {}), "has_evidence": dispute_has_evidence(dispute)}
        self._event("charge.dispute.closed", dispute)
        return dispute

    def _dispute_update(self, dispute, params):
        """Evidence (saved, and with submit=true sent to the network: under review) and metadata."""
        if dispute["status"] not in ("needs_response", "warning_needs_response"):
            raise StripeFail(400, "invalid_request_error", f"This dispute is {dispute['status']}: its evidence can no longer be changed.")
        details = dispute.setdefault("evidence_details", {})
        if details.get("past_due") or (details.get("due_by") and details["due_by"] < int(time.time())):
            raise StripeFail(400, "invalid_request_error", "The evidence due date has passed.")
        evidence = params.get("evidence") or {}
        for field in ("receipt", "service_documentation", "uncategorized_file"):
            if evidence.get(field):
                self._get(evidence[field], "file")
        dispute.setdefault("evidence", {}).update(evidence)
        if params.get("metadata"):
            dispute.setdefault("metadata", {}).update(params["metadata"])
        details["has_evidence"] = dispute_has_evidence(dispute)
        if _bool(params.get("submit")):
            dispute["status"] = "warning_under_review" if dispute["status"].startswith("warning_") else "under_review"
            details["submission_count"] = int(details.get("submission_count") or 0) + 1
        self._event("charge.dispute.updated", dispute)
        return dispute

    def _customer(self, params):
        customer = copy.deepcopy(TEMPLATES["customer"])
        customer.update(id=self._id("cus"), email=params.get("email"), name=params.get("name"), metadata=params.get("metadata") or {},
                        created=int(time.time()), livemode=self.mode == "live")
        self.objects[customer["id"]] = customer
        return customer

    def _pm_object(self, spec, pm_id):
        pm = copy.deepcopy(TEMPLATES["payment_method"])
        pm.update(id=pm_id, type=spec["type"], customer=None, metadata={}, created=int(time.time()), livemode=self.mode == "live")
        pm.pop("card", None)
        if spec["type"] == "card":
            pm["card"] = {**TEMPLATES["payment_method"]["card"], "brand": spec["brand"], "last4": spec["last4"], "exp_month": 12,
                          "exp_year": 2034}
        elif spec["type"] == "sepa_debit":
            pm["sepa_debit"] = {"bank_code": "37040044", "country": "DE", "last4": spec["last4"], "fingerprint": "fp"}
        else:
            pm[spec["type"]] = {}
        pm["_spec"] = spec
        return pm

    def _pm(self, pm_id):
        """A payment method by id; a magic id is cloned into a concrete pm_... the first time it is used."""
        if pm_id in MAGIC_METHODS:
            pm = self._pm_object(MAGIC_METHODS[pm_id], self._id("pm"))
            self.objects[pm["id"]] = pm
            return pm
        return self._get(pm_id, "payment_method")

    def _payment_method_create(self, params):
        method_type = params.get("type") or "card"
        if method_type == "sepa_debit":
            iban = (params.get("sepa_debit") or {}).get("iban", "")
            spec = MAGIC_METHODS["pm_sepa_debit_fail" if iban.startswith("AT86") else "pm_sepa_debit"]
            spec = {**spec, "last4": iban[-4:] or spec["last4"]}
        else:
            spec = MAGIC_METHODS.get((params.get("card") or {}).get("token", "").replace("tok_", "pm_card_"), MAGIC_METHODS["pm_card_visa"])
        pm = self._pm_object(spec, self._id("pm"))
        self.objects[pm["id"]] = pm
        return pm

    def _attach(self, pm, customer_id):
        if customer_id:
            self._get(customer_id, "customer")
            pm["customer"] = customer_id
        return pm

    def _pi_create(self, params):
        if "amount" not in params:
            raise StripeFail(400, "invalid_request_error", "Missing required param: amount.", param="amount")
        if "currency" not in params:
            raise StripeFail(400, "invalid_request_error", "Missing required param: currency.", param="currency")
        amount, currency = _int(params["amount"], "amount"), params["currency"].lower()
        if amount < TWO_DECIMAL_MINIMUM.get(currency, 1):
            raise StripeFail(400, "invalid_request_error", "Amount must be at least €0.50 eur", code="amount_too_small", param="amount")
        types = params.get("payment_method_types") or ["card"]
        if "sepa_debit" in types and currency != "eur":
            raise StripeFail(400, "invalid_request_error", "The payment method `sepa_debit` does not support currency.",
                             param="payment_method_types")
        pi = copy.deepcopy(TEMPLATES["payment_intent"])
        pi_id = self._id("pi")
        pi.update(id=pi_id, amount=amount, currency=currency, payment_method_types=types, metadata=params.get("metadata") or {},
                  description=params.get("description"), customer=params.get("customer"), status="requires_payment_method",
                  setup_future_usage=params.get("setup_future_usage"), latest_charge=None, last_payment_error=None,
                  client_secret=f"{pi_id}_secret_{secrets.token_hex(8)}", created=int(time.time()), canceled_at=None,
                  livemode=self.mode == "live", payment_method=None, amount_received=0, next_action=None, processing=None)
        self.objects[pi_id] = pi
        if params.get("payment_method"):
            pi["payment_method"] = self._pm(params["payment_method"])["id"]
        if _bool(params.get("confirm")):
            return self._pi_confirm(pi, {k: v for k, v in params.items() if k in ("off_session", "return_url", "mandate_data")})
        return pi

    def _pi_confirm(self, pi, params):
        if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise StripeFail(400, "invalid_request_error", f"You cannot confirm this PaymentIntent because it has a status of {pi['status']}.",
                             code="payment_intent_unexpected_state")
        if params.get("payment_method"):
            pi["payment_method"] = self._pm(params["payment_method"])["id"]
        if not pi.get("payment_method"):
            raise StripeFail(400, "invalid_request_error", "You must provide a payment method.", code="payment_intent_unexpected_state")
        pm = self.objects[pi["payment_method"]]
        spec = pm["_spec"]
        off_session = _bool(params.get("off_session"))
        if pi.get("customer") and (pi.get("setup_future_usage") or off_session):
            self._attach(pm, pi["customer"])
        if spec["outcome"] == "authenticate":
            if off_session:
                charge = self._charge(pi, pm, "failed", failure_code="authentication_required",
                                      failure_message="Your card was declined. This transaction requires authentication.")
                return self._card_error(pi, charge, "authentication_required", "authentication_required",
                                        "Your card was declined. This transaction requires authentication.")
            pi.update(status="requires_action", next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {}})
            return pi
        if spec["outcome"] == "redirect":
            # Alipay: the customer authorizes on Alipay's page; the charge exists only once they did (or refused).
            if not params.get("return_url"):
                raise StripeFail(400, "invalid_request_error", "A `return_url` must be specified because this Payment Intent is "
                                 "configured to automatically accept the payment methods enabled in the Dashboard, some of which "
                                 "may require a full page redirect to succeed.", param="return_url")
            self.redirects[pi["id"]] = params["return_url"]
            pi.update(status="requires_action", next_action={"type": "alipay_handle_redirect", "alipay_handle_redirect": {
                "url": f"{self.url}/alipay/authorize/{pi['id']}", "return_url": params["return_url"], "native_url": None,
                "native_data": None}})
            return pi
        if spec["outcome"] == "decline":
            charge = self._charge(pi, pm, "failed", failure_code="card_declined", failure_message="Your card was declined.")
            return self._card_error(pi, charge, "card_declined", spec["decline_code"], "Your card was declined.")
        if spec["outcome"] in ("processing", "processing_fail"):
            charge = self._charge(pi, pm, "pending")
            pi.update(status="processing", processing={"type": "sepa_debit"})
            self._event("payment_intent.processing", pi)
            return pi if charge else pi
        self._charge(pi, pm, "succeeded")
        pi.update(status="succeeded", amount_received=pi["amount"])
        self._event("payment_intent.succeeded", pi)
        return pi

    def _card_error(self, pi, charge, code, decline_code, message):
        pi.update(status="requires_payment_method", last_payment_error={
            "type": "card_error", "code": code, "decline_code": decline_code, "message": message, "charge": charge["id"],
            "payment_method": copy.deepcopy(self.objects[pi["payment_method"]])})
        self._event("payment_intent.payment_failed", pi)
        raise StripeFail(402, "card_error", message, code=code, decline_code=decline_code, charge=charge["id"],
                         payment_intent=copy.deepcopy(pi))

    def _charge(self, pi, pm, status, failure_code=None, failure_message=None):
        charge = copy.deepcopy(TEMPLATES["charge"])
        details = {"type": pm["type"]}
        if pm["type"] == "card":
            details["card"] = {**TEMPLATES["charge"]["payment_method_details"]["card"], "brand": pm["card"]["brand"],
                               "last4": pm["card"]["last4"], "exp_month": pm["card"]["exp_month"], "exp_year": pm["card"]["exp_year"]}
        elif pm["type"] == "sepa_debit":
            details["sepa_debit"] = {**pm["sepa_debit"], "mandate": self._id("mandate")}
        elif pm["type"] == "alipay":
            details["alipay"] = {"buyer_id": "2088" + secrets.token_hex(6), "fingerprint": "fp_" + secrets.token_hex(6),
                                 "transaction_id": secrets.token_hex(12)}
        else:
            details[pm["type"]] = {}
        charge.update(id=self._id("ch"), amount=pi["amount"], currency=pi["currency"], status=status, payment_intent=pi["id"],
                      payment_method=pm["id"], payment_method_details=details, metadata=copy.deepcopy(pi["metadata"]),
                      customer=pi.get("customer"), created=int(time.time()), livemode=self.mode == "live",
                      paid=status == "succeeded", captured=status == "succeeded", amount_captured=pi["amount"] if status == "succeeded" else 0,
                      amount_refunded=0, refunded=False, disputed=False, failure_code=failure_code, failure_message=failure_message,
                      description=pi.get("description"), balance_transaction="txn_" + secrets.token_hex(8))
        charge.pop("refunds", None)
        self.objects[charge["id"]] = charge
        pi["latest_charge"] = charge["id"]
        self._event({"pending": "charge.pending", "succeeded": "charge.succeeded", "failed": "charge.failed"}[status], charge)
        return charge

    def _si_create(self, params):
        si = copy.deepcopy(TEMPLATES["setup_intent"])
        si_id = self._id("seti")
        si.update(id=si_id, customer=params.get("customer"), payment_method_types=params.get("payment_method_types") or ["card"],
                  usage=params.get("usage") or "off_session", metadata=params.get("metadata") or {}, status="requires_payment_method",
                  client_secret=f"{si_id}_secret_{secrets.token_hex(8)}", payment_method=None, mandate=None, latest_attempt=None,
                  last_setup_error=None, next_action=None, livemode=self.mode == "live", created=int(time.time()))
        self.objects[si_id] = si
        return si

    def _si_confirm(self, si, params):
        pm = self._pm(params.get("payment_method") or "pm_card_visa")
        self._attach(pm, si.get("customer"))
        si.update(status="succeeded", payment_method=pm["id"], mandate=self._id("mandate") if pm["type"] == "sepa_debit" else None)
        self._event("setup_intent.succeeded", si)
        return si

    def _charge_from_source(self, params):
        source = self._get(params.get("source", ""), "source")
        charge = copy.deepcopy(TEMPLATES["charge"])
        status = "pending" if source["type"] == "sepa_debit" else "succeeded"
        charge.update(id=self._id("py" if source["type"] == "sepa_debit" else "ch"), amount=_int(params.get("amount"), "amount"),
                      currency=params.get("currency"), status=status, metadata=params.get("metadata") or {}, payment_intent=None,
                      payment_method=None, payment_method_details={"type": source["type"], source["type"]: {}}, source=source,
                      created=int(time.time()), livemode=False, amount_refunded=0, refunded=False)
        charge.pop("refunds", None)
        source["status"] = "consumed"
        self.objects[charge["id"]] = charge
        self._event(f"charge.{status}", charge)
        return charge

    def _refund(self, params):
        charge_id = params.get("charge")
        if not charge_id and params.get("payment_intent"):
            charge_id = self._get(params["payment_intent"], "payment_intent").get("latest_charge")
        charge = self._get(charge_id or "", "charge")
        if charge["status"] != "succeeded":
            raise StripeFail(400, "invalid_request_error", f"Charge {charge['id']} has not succeeded and cannot be refunded.")
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise StripeFail(400, "invalid_request_error", f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = _int(params["amount"], "amount") if "amount" in params else remaining
        if amount <= 0:
            raise StripeFail(400, "invalid_request_error", "Invalid positive integer", param="amount")
        if amount > remaining:
            raise StripeFail(400, "invalid_request_error",
                             f"Refund amount ({amount / 100:.2f}) is greater than unrefunded amount on charge ({remaining / 100:.2f})",
                             code="amount_too_large", param="amount")
        refund = copy.deepcopy(TEMPLATES["refund"])
        refund.update(id=self._id("re"), amount=amount, charge=charge["id"], currency=charge["currency"], created=int(time.time()),
                      metadata=params.get("metadata") or {}, payment_intent=charge.get("payment_intent"), reason=params.get("reason"),
                      status="pending" if charge["payment_method_details"].get("type") == "sepa_debit" else "succeeded")
        self.objects[refund["id"]] = refund
        self.refunds_by_charge.setdefault(charge["id"], []).insert(0, refund["id"])
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self._event("refund.created", refund)
        self._event("charge.refunded", charge)
        return refund
