"""Payouts: mirror Stripe's payouts, list what each one paid out, and reconcile every line to the books.

Flow (SPEC §12): a `payout.*` event (or the daily task, for payouts whose events were missed) mirrors the payout;
once Stripe has paid and itemised it (`reconciliation_status` completed), a task fetches the payout and its balance
transactions through the gateway, page by page and outside any transaction, then `reconcile_payout` writes the
lines, the Stripe fees, each line's match and the payout's status in one transaction, with bulk statements: a
payout of 10,000 lines costs the same number of queries as one of 10. Manual payouts cannot be itemised by Stripe
and are marked so.

The books (Balance, PaymentEntry, Invoice.status) are only read here (payments/reconciliation.py). Stripe's fees
are recorded as StripeFee rows, one per fee of a line, linked to the line and to the charge's PaymentTransaction:
not as balances, because a Balance is a customer's money on an account and the books' invariants (SPEC §11) are
about that money, whereas a fee is the business entity's own cost, taken by Stripe out of the payout.

Invariants: one Payout per setting and Stripe id; its lines are exactly the balance transactions Stripe listed for
it (replaced as a whole, never merged); the mirrored Stripe status only moves forward (a late `payout.paid` never
undoes `failed`), so events apply in any order; reconciling again gives the same lines and status.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.money import MoneyError, from_minor_units, normalize_currency
from payments.constants import PayoutLineKind, PayoutStatus
from payments.models import Payout, PayoutLine, StripeFee
from payments.reconciliation import explain_lines, is_the_payout_itself
from payments.services.transactions import object_id, stripe_time
from providers.models import ProviderSetting
from providers.stripe import gateway

logger = logging.getLogger(__name__)

# Stripe's payout statuses in the order they happen; failed and canceled are final.
STRIPE_STATUS_RANK = {"pending": 0, "in_transit": 1, "paid": 2, "failed": 3, "canceled": 3}
RECONCILIATION_RANK = {"": 0, "not_applicable": 0, "in_progress": 1, "completed": 2}
FINAL_STRIPE_STATUSES = ("failed", "canceled")

CHARGE_TYPES = {"charge", "payment"}
REFUND_TYPES = {"refund", "payment_refund"}
FEE_TYPES = {"stripe_fee", "stripe_fx_fee", "tax_fee"}
PAYOUT_TYPES = {"payout", "payout_cancel", "payout_failure"}
DISPUTE_CATEGORIES = {"dispute", "dispute_reversal"}


class PayoutError(ValueError):
    """A payout could not be reconciled; the message is a sentence for finance staff. A ValueError: retrying an
    event that carries it cannot help (webhooks.tasks marks it failed at once, replayable after a fix)."""


# --- Stripe's objects as the service reads them ------------------------------------------------------


def _kind(txn: dict, source) -> str:
    txn_type, category = txn.get("type") or "", txn.get("reporting_category") or ""
    source_object = source.get("object") if isinstance(source, dict) else ""
    if txn_type in CHARGE_TYPES:
        return PayoutLineKind.CHARGE
    if txn_type in REFUND_TYPES:
        return PayoutLineKind.REFUND
    if txn_type == "refund_failure":
        return PayoutLineKind.REFUND_FAILURE
    if category in DISPUTE_CATEGORIES or source_object == "dispute":
        return PayoutLineKind.DISPUTE
    if txn_type in FEE_TYPES or category == "fee":
        return PayoutLineKind.FEE
    if txn_type in PAYOUT_TYPES:
        return PayoutLineKind.PAYOUT
    return PayoutLineKind.OTHER


def _exchange_rate(value) -> Decimal | None:
    """Stripe sends the rate as a JSON number: read from its text, never through float arithmetic."""
    if value is None or value == "":
        return None
    try:
        return Decimal(repr(value) if isinstance(value, float) else str(value))
    except ArithmeticError:
        return None


def _money(minor, currency: str) -> Decimal:
    return from_minor_units(int(minor or 0) if not isinstance(minor, bool) else minor, currency)


def line_from_balance_transaction(payout: Payout, txn: dict) -> PayoutLine:
    """A PayoutLine (not saved) from one of Stripe's balance transactions, its source expanded or not.

    Amounts are in the payout's (settlement) currency; a converted charge keeps its own amount and currency and
    the exchange rate. A line whose money cannot be read (an unknown currency, a non-integer amount) is kept as
    an unexplained line with zero amounts, so the payout shows as mismatched instead of failing to reconcile."""
    source = txn.get("source")
    source_id = object_id(source)
    kind = _kind(txn, source)
    line = PayoutLine(
        payout=payout, balance_transaction_id=str(txn.get("id") or ""), type=str(txn.get("type") or "")[:60],
        reporting_category=str(txn.get("reporting_category") or "")[:60], kind=kind, source_id=source_id,
        description=str(txn.get("description") or "")[:255], stripe_created=stripe_time(txn.get("created")),
        available_on=stripe_time(txn.get("available_on")), exchange_rate=_exchange_rate(txn.get("exchange_rate")),
        fee_details=[detail for detail in (txn.get("fee_details") or []) if isinstance(detail, dict)],
        charge_id=source_id if kind == PayoutLineKind.CHARGE else "",
    )
    try:
        line.currency = normalize_currency(txn.get("currency") or "")
        line.gross, line.fee, line.net = (_money(txn.get(name), line.currency) for name in ("amount", "fee", "net"))
    except (MoneyError, TypeError, ValueError):
        line.kind, line.currency = PayoutLineKind.OTHER, payout.currency
        line.gross = line.fee = line.net = Decimal("0")
        line.description = f"Unreadable amount from Stripe: {txn.get('amount')!r} {txn.get('currency')!r}"[:255]
        return line
    if isinstance(source, dict):
        if kind != PayoutLineKind.CHARGE:
            line.charge_id = object_id(source.get("charge"))
        try:
            if source.get("amount") is not None and source.get("currency"):
                line.source_currency = normalize_currency(source["currency"])
                line.source_amount = _money(source["amount"], line.source_currency)
        except (MoneyError, TypeError, ValueError):
            line.source_amount, line.source_currency = None, ""
    return line


def fees_of_line(line: PayoutLine) -> list[StripeFee]:
    """Stripe's fees of a line (not saved): one per entry of its fee_details (or its fee when it has none), plus
    the line itself when it is a fee line (a monthly fee has no charge behind it)."""
    fees = []
    common = {"payout": line.payout, "payout_line": line, "transaction_id": line.transaction_id,
              "balance_transaction_id": line.balance_transaction_id, "charge_id": line.charge_id,
              "stripe_created": line.stripe_created}
    if line.kind == PayoutLineKind.FEE and line.gross:
        fees.append(StripeFee(fee_type=line.type, description=line.description, amount=-line.gross, currency=line.currency, **common))
    details = line.fee_details or []
    for detail in details:
        try:
            currency = normalize_currency(detail.get("currency") or line.currency)
            amount = _money(detail.get("amount"), currency)
        except (MoneyError, TypeError, ValueError):
            continue
        if amount:
            fees.append(StripeFee(fee_type=str(detail.get("type") or "stripe_fee")[:40], amount=amount, currency=currency,
                                  description=str(detail.get("description") or "")[:255], **common))
    if not details and line.fee:
        fees.append(StripeFee(fee_type="stripe_fee", description=line.description, amount=line.fee, currency=line.currency, **common))
    return fees


# --- Mirroring a payout ----------------------------------------------------------------------------


def _payout_fields(stripe_payout: dict) -> dict:
    currency = normalize_currency(stripe_payout.get("currency") or "")
    arrival = stripe_time(stripe_payout.get("arrival_date"))
    return {
        "amount": _money(stripe_payout.get("amount"), currency), "currency": currency,
        "arrival_date": arrival.date() if arrival else None, "stripe_created": stripe_time(stripe_payout.get("created")),
        "automatic": bool(stripe_payout.get("automatic", True)), "method": str(stripe_payout.get("method") or "")[:20],
        "description": str(stripe_payout.get("description") or "")[:255],
        "balance_transaction_id": object_id(stripe_payout.get("balance_transaction")),
        "failure_code": str(stripe_payout.get("failure_code") or "")[:100], "failure_message": stripe_payout.get("failure_message") or "",
    }


def status_before_lines(payout: Payout) -> str:
    """The status a payout has from Stripe's facts alone (the lines decide between reconciled and mismatched)."""
    if not payout.automatic:
        return PayoutStatus.NOT_ITEMISABLE
    if payout.stripe_status in FINAL_STRIPE_STATUSES:
        return PayoutStatus.FAILED
    if payout.reconciled_at is not None:
        return PayoutStatus.MISMATCHED if payout.differences else PayoutStatus.RECONCILED
    return PayoutStatus.PENDING


def can_be_itemised(payout: Payout) -> bool:
    """Stripe lists an automatic payout's balance transactions once it is paid (or on its way) and its
    reconciliation is completed (API versions without reconciliation_status: once paid)."""
    if not payout.automatic or payout.stripe_status in FINAL_STRIPE_STATUSES:
        return False
    if payout.stripe_reconciliation_status:
        return payout.stripe_reconciliation_status == "completed" and payout.stripe_status in ("in_transit", "paid")
    return payout.stripe_status == "paid"


@transaction.atomic
def record_payout(setting: ProviderSetting, stripe_payout: dict) -> Payout:
    """Mirror a payout as Stripe describes it (an event's payload or a fetch), in any order: Stripe's status and
    reconciliation status only move forward, and the other facts come from the newest description."""
    try:
        fields = _payout_fields(stripe_payout)
    except (MoneyError, TypeError, ValueError) as exc:
        raise PayoutError(f"Stripe's payout {stripe_payout.get('id')!r} cannot be read: {exc}") from None
    payout, created = Payout.objects.select_for_update().get_or_create(
        provider_setting=setting, stripe_payout_id=str(stripe_payout.get("id") or ""), defaults=fields)
    incoming_status = str(stripe_payout.get("status") or "")
    incoming_reconciliation = str(stripe_payout.get("reconciliation_status") or "")
    newer = STRIPE_STATUS_RANK.get(incoming_status, 0) >= STRIPE_STATUS_RANK.get(payout.stripe_status, 0)
    if payout.stripe_status in FINAL_STRIPE_STATUSES:
        newer = incoming_status == payout.stripe_status  # final: only the same final status may refresh the facts
    if newer:
        for name, value in fields.items():
            setattr(payout, name, value)
        payout.stripe_status = incoming_status
    if RECONCILIATION_RANK.get(incoming_reconciliation, 0) >= RECONCILIATION_RANK.get(payout.stripe_reconciliation_status, 0):
        payout.stripe_reconciliation_status = incoming_reconciliation
    payout.status = status_before_lines(payout)
    payout.save()
    return payout


def record_payout_event(setting: ProviderSetting, stripe_payout: dict) -> Payout:
    """A `payout.*` event: mirror the payout, and when Stripe can itemise it and it was not reconciled yet, have a
    task fetch and reconcile its lines after the commit (listing 10,000 lines page by page outlasts an event's
    processing budget, and the task has its own time limit and retries). No Stripe call here."""
    payout = record_payout(setting, stripe_payout)
    if can_be_itemised(payout) and payout.reconciled_at is None:
        from payments.tasks import reconcile_payout as task

        transaction.on_commit(lambda: task.delay(setting.pk, payout.stripe_payout_id))
    return payout


# --- Reconciling ---------------------------------------------------------------------------------


def fetch_and_reconcile(setting: ProviderSetting, payout_id: str, *, stripe_payout: dict | None = None) -> Payout:
    """Fetch the payout (unless given) and its balance transactions from Stripe, then reconcile. The Stripe calls
    run before any transaction is opened, so no lock is held while waiting for Stripe."""
    stripe_payout = stripe_payout or gateway.retrieve_payout(setting, payout_id)
    payout = record_payout(setting, stripe_payout)
    if not can_be_itemised(payout):
        return payout
    balance_transactions = gateway.list_payout_balance_transactions(setting, payout_id=payout.stripe_payout_id)
    return reconcile_payout(payout, balance_transactions=balance_transactions)


@transaction.atomic
def reconcile_payout(payout: Payout, *, balance_transactions: list[dict]) -> Payout:
    """Write the payout's lines (as listed by Stripe) and their fees, match every line to the books, and set the
    payout's totals, differences and status; one transaction, with the payout row locked (two reconciliations of
    one payout wait for each other). Replaces whatever an earlier reconciliation wrote."""
    payout = Payout.objects.select_for_update().select_related("provider_setting").get(pk=payout.pk)
    lines = [line_from_balance_transaction(payout, txn) for txn in balance_transactions]
    return _store(payout, lines)


@transaction.atomic
def rematch_payout(payout: Payout) -> Payout:
    """Match a reconciled payout's stored lines to the books again (no Stripe call): after finance corrected the
    books, a mismatched payout may now reconcile."""
    payout = Payout.objects.select_for_update().select_related("provider_setting").get(pk=payout.pk)
    if payout.reconciled_at is None:
        raise PayoutError(f"Payout {payout.stripe_payout_id} has no lines yet: Stripe has not itemised it.")
    copied = [field.attname for field in PayoutLine._meta.concrete_fields if not field.primary_key]
    lines = [PayoutLine(**values) for values in PayoutLine.objects.filter(payout=payout).order_by("id").values(*copied)]
    for line in lines:
        line.payout = payout
    return _store(payout, lines)


def _store(payout: Payout, lines: list[PayoutLine]) -> Payout:
    differences = explain_lines(payout, lines)
    StripeFee.objects.filter(payout=payout).delete()  # one statement each (see StripeFee.payout_line)
    PayoutLine.objects.filter(payout=payout).delete()
    PayoutLine.objects.bulk_create(lines)  # one INSERT (UNNEST on PostgreSQL), ids returned
    StripeFee.objects.bulk_create([fee for line in lines for fee in fees_of_line(line)])
    _set_totals(payout, lines)
    payout.differences = differences
    payout.reconciled_at = timezone.now()
    payout.last_error = ""
    payout.status = status_before_lines(payout)
    payout.save()
    return payout


def _set_totals(payout: Payout, lines: list[PayoutLine]) -> None:
    """gross − fees − refunds − disputes + other = the lines' net (the payout itself excluded)."""
    zero = Decimal("0")
    totals = dict.fromkeys(("charges_gross", "fees_total", "refunds_total", "disputes_total", "other_total", "lines_net"), zero)
    counted = [line for line in lines if not is_the_payout_itself(payout, line)]
    for line in counted:
        totals["lines_net"] += line.net
        totals["fees_total"] += line.fee
        if line.kind == PayoutLineKind.CHARGE:
            totals["charges_gross"] += line.gross
        elif line.kind in (PayoutLineKind.REFUND, PayoutLineKind.REFUND_FAILURE):
            totals["refunds_total"] -= line.gross
        elif line.kind == PayoutLineKind.DISPUTE:
            totals["disputes_total"] -= line.gross
        elif line.kind == PayoutLineKind.FEE:
            totals["fees_total"] -= line.gross
        else:
            totals["other_total"] += line.gross
    for name, value in totals.items():
        setattr(payout, name, value)
    payout.line_count = len(counted)


def record_reconciliation_error(payout: Payout, message: str) -> None:
    Payout.objects.filter(pk=payout.pk).update(last_error=message[:4000], updated_at=timezone.now())


# --- Payouts whose events were missed --------------------------------------------------------------


def reconcile_payouts_since(since: date, *, settings_=None, report=None) -> list[Payout]:
    """Every payout arriving on or after `since`, per setting (all settings with a secret key by default): mirror
    it, reconcile it if Stripe can itemise it and it was not reconciled yet, and match a mismatched one to the books
    again. A setting whose Stripe calls fail is reported and skipped; the others go on."""
    settings_ = list(settings_ if settings_ is not None else ProviderSetting.objects.exclude(secret_key_encrypted=""))
    arrival_gte = int(datetime.combine(since, time.min, tzinfo=UTC).timestamp())
    done: list[Payout] = []
    for setting in settings_:
        try:
            stripe_payouts = list(gateway.iter_payouts(setting, arrival_date_gte=arrival_gte))
        except gateway.StripeGatewayError as exc:
            logger.warning("Payouts of setting %s could not be listed: %s", setting.pk, exc)
            if report:
                report(f"{setting}: payouts could not be listed: {exc}")
            continue
        for stripe_payout in stripe_payouts:
            payout = _catch_up(setting, stripe_payout, report)
            if payout is not None:
                done.append(payout)
    return done


def _catch_up(setting: ProviderSetting, stripe_payout: dict, report) -> Payout | None:
    try:
        payout = record_payout(setting, stripe_payout)
        if can_be_itemised(payout) and payout.reconciled_at is None:
            payout = fetch_and_reconcile(setting, payout.stripe_payout_id, stripe_payout=stripe_payout)
        elif payout.status == PayoutStatus.MISMATCHED:
            payout = rematch_payout(payout)
    except (gateway.StripeGatewayError, PayoutError) as exc:
        logger.warning("Payout %s of setting %s could not be reconciled: %s", stripe_payout.get("id"), setting.pk, exc)
        if report:
            report(f"{setting}: payout {stripe_payout.get('id')}: {exc}")
        return None
    if report:
        report(describe(payout))
    return payout


def describe(payout: Payout) -> str:
    from payments.reconciliation import money_text

    lines = f", {payout.line_count} lines" if payout.reconciled_at else ""
    differences = f", {payout.difference_count} difference(s)" if payout.differences else ""
    return (f"{payout.stripe_payout_id} arriving {payout.arrival_date}: {money_text(payout.amount, payout.currency)}, "
            f"{payout.get_status_display().lower()}{lines}{differences}")
