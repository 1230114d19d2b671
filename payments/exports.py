"""CSV exports of payouts for finance: one row per payout (the bank statement line) followed by its lines, streamed
so that a month of payouts with thousands of lines never sits in memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date

from django.db.models import QuerySet

from billing.money import MoneyError, exponent
from payments.models import Payout, PayoutLine

HEADER = ["record", "payout", "arrival_date", "payout_amount", "payout_currency", "payout_status", "stripe_status", "setting",
          "balance_transaction", "created", "type", "reporting_category", "kind", "source", "charge", "gross", "fee", "net",
          "currency", "exchange_rate", "source_amount", "source_currency", "matched", "balances", "payment_entries", "note"]
LINE_FIELDS = ("balance_transaction_id", "stripe_created", "type", "reporting_category", "kind", "source_id", "charge_id", "gross",
               "fee", "net", "currency", "exchange_rate", "source_amount", "source_currency", "matched", "balance_ids",
               "payment_entry_ids", "note", "payout_id")
# A spreadsheet runs a cell starting with one of these as a formula; text from Stripe or the books must not.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


MAX_RANGE_DAYS = 400


class ExportRangeError(ValueError):
    """A date range finance cannot export; the message says why."""


def _text(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _number(value) -> str:
    return "" if value is None else str(value)


def _amount(value, currency: str) -> str:
    """Plain digits with the currency's decimals (the books keep three for every currency)."""
    if value is None:
        return ""
    try:
        return f"{value:.{exponent(currency)}f}"
    except MoneyError:
        return str(value)


def _payout_row(payout: Payout) -> list[str]:
    summary = "; ".join(item.get("sentence", "") for item in payout.differences or [])
    currency = payout.currency
    return ["payout", payout.stripe_payout_id, _number(payout.arrival_date), _amount(payout.amount, currency), currency, payout.status,
            payout.stripe_status, _text(payout.provider_setting.name), payout.balance_transaction_id, _number(payout.stripe_created),
            "payout", "", "", "", "", _amount(payout.charges_gross, currency), _amount(payout.fees_total, currency),
            _amount(payout.lines_net, currency),
            payout.currency, "", "", "", "" if payout.reconciled_at is None else str(not payout.differences).lower(), "", "",
            _text(summary)]


def _line_row(payout: Payout, line: dict) -> list[str]:
    currency, rate = line["currency"], line["exchange_rate"]
    return ["line", payout.stripe_payout_id, _number(payout.arrival_date), _amount(payout.amount, payout.currency), payout.currency,
            payout.status, payout.stripe_status, _text(payout.provider_setting.name), line["balance_transaction_id"],
            _number(line["stripe_created"]), _text(line["type"]), _text(line["reporting_category"]), line["kind"],
            _text(line["source_id"]), _text(line["charge_id"]), _amount(line["gross"], currency), _amount(line["fee"], currency),
            _amount(line["net"], currency), currency, _number(rate.normalize() if rate is not None else None),
            _amount(line["source_amount"], line["source_currency"]), line["source_currency"], str(line["matched"]).lower(),
            " ".join(map(str, line["balance_ids"] or [])), " ".join(map(str, line["payment_entry_ids"] or [])), _text(line["note"])]


def payout_rows(payouts: Iterable[Payout]) -> Iterator[list[str]]:
    """The header, then each payout and its lines in order. Lines are read in chunks, one payout after another."""
    yield HEADER
    for payout in payouts:
        yield _payout_row(payout)
        for line in PayoutLine.objects.filter(payout=payout).order_by("id").values(*LINE_FIELDS).iterator(chunk_size=2000):
            yield _line_row(payout, line)


def payouts_arriving(queryset: QuerySet[Payout], first: date, last: date) -> QuerySet[Payout]:
    if last < first:
        raise ExportRangeError(f"The range ends ({last}) before it starts ({first}).")
    if (last - first).days > MAX_RANGE_DAYS:
        raise ExportRangeError(f"Export at most {MAX_RANGE_DAYS} days at once ({first} to {last} is {(last - first).days}).")
    return queryset.filter(arrival_date__gte=first, arrival_date__lte=last).select_related("provider_setting").order_by(
        "arrival_date", "id")


