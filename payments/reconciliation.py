"""Selectors of payout reconciliation: what the books say about each line of a Stripe payout (reads only).

Each kind of line has its own small reader of the books (`_charge_books`, `_refund_books`, `_dispute_books`,
`_fee_books`, `_payout_books`, `_other_books`), each reading every line of its kind at once (one to three
queries), so a payout of 10,000 lines is read in the same few queries as one of 10. `explain_lines` then matches each line to what its
reader found: it marks the line matched (with a sentence and the ids it matched) or returns the difference, in
Stripe's amount and currency of the source object (the charge's own currency for a converted charge).

Nothing here writes: payments/services/payouts.py stores the lines, fees, differences and status.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Coalesce

from billing.constants import MONEY_RECEIVED_KINDS, BalanceStatus, BalanceType, PaymentEntryKind, PaymentEntryStatus
from billing.models import Balance, PaymentEntry
from billing.money import MoneyError, exponent
from payments.constants import DifferenceKind, PayoutLineKind, TransactionStatus
from payments.models import PaymentTransaction, Payout, PayoutLine

# Stripe pays out whole units only in these currencies (charges and refunds have two decimals): the fraction of a
# unit that could not be paid out stays in the Stripe balance and is no difference.
WHOLE_UNIT_PAYOUT_CURRENCIES = frozenset({"HUF", "TWD"})
# Named one by one up to this many; beyond, one more difference says how many more there are.
MAX_NAMED_MISSING = 1000


def money_text(amount: Decimal | None, currency: str) -> str:
    """'100.00 EUR', with every decimal Stripe counts in (HUF's fractions stay visible)."""
    if amount is None:
        return f"? {currency}"
    try:
        places = exponent(currency)
    except MoneyError:
        return f"{amount} {currency}"
    return f"{Decimal(amount):,.{places}f} {currency}"


def difference(kind: str, object_id: str, *, expected: str = "", actual: str = "", sentence: str) -> dict:
    return {"kind": str(kind), "object_id": object_id, "expected": expected, "actual": actual, "sentence": sentence}


class Booked(NamedTuple):
    """One balance or payment entry as matching needs it (a tuple: a payout reads thousands)."""

    id: int
    amount: Decimal
    currency: str
    pending: bool = False
    entry: bool = False  # a payment entry, not a balance


class Charge(NamedTuple):
    """A charge's PaymentTransaction as matching needs it (a tuple: a payout reads thousands)."""

    pk: int
    charge_id: str
    provider_setting_id: int
    amount: Decimal | None
    currency: str
    status: str


@dataclass
class Books:
    """What the books hold for the lines of one payout: one dict per reader, keyed by Stripe id."""

    transactions: dict[str, Charge] = field(default_factory=dict)
    payment_balances: dict[str, list[Booked]] = field(default_factory=dict)
    payment_entries: dict[str, list[Booked]] = field(default_factory=dict)
    refund_balances: dict[str, list[Booked]] = field(default_factory=dict)
    refunds_beside_entries: dict[str, list[Booked]] = field(default_factory=dict)
    refund_failures: dict[str, list[Booked]] = field(default_factory=dict)
    dispute_withdrawals: dict[str, list[Booked]] = field(default_factory=dict)
    dispute_reinstatements: dict[str, list[Booked]] = field(default_factory=dict)
    payouts: dict[str, Payout] = field(default_factory=dict)


# --- Reading the books, one reader per kind of line ----------------------------------------------------


def read_books(payout: Payout, lines: list[PayoutLine]) -> Books:
    """Everything the lines of `payout` can match, in a constant number of queries whatever their number."""
    by_kind: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        if line.source_id:
            by_kind[line.kind].add(line.source_id)
    charge_ids = {line.charge_id for line in lines if line.charge_id}
    books = Books()
    books.transactions, books.payment_balances, books.payment_entries = _charge_books(
        payout.provider_setting_id, charge_ids, by_kind[PayoutLineKind.CHARGE])
    refund_ids = by_kind[PayoutLineKind.REFUND] | by_kind[PayoutLineKind.REFUND_FAILURE]
    books.refund_balances, books.refunds_beside_entries, books.refund_failures = _refund_books(refund_ids)
    books.dispute_withdrawals, books.dispute_reinstatements = _dispute_books(by_kind[PayoutLineKind.DISPUTE])
    books.payouts = _payout_books(payout.provider_setting_id, by_kind[PayoutLineKind.PAYOUT])
    _fee_books(by_kind[PayoutLineKind.FEE])
    _other_books(by_kind[PayoutLineKind.OTHER])
    return books


def _charge_books(provider_setting_id: int, charge_ids: set[str], paid_out_charge_ids: set[str]):
    """Charges: their PaymentTransactions (also those behind refunds and disputes), and for the charges paid out,
    their payment balances (split parts included, overrefund halves excluded: SPEC §11 rule 4) under the payout's
    setting or their transaction's, and the open PaymentEntries holding money received that could not be booked on
    an invoice. Three queries."""
    transactions = {row[1]: Charge(*row) for row in PaymentTransaction.objects.filter(charge_id__in=charge_ids).values_list(
        "id", "charge_id", "provider_setting_id", "amount", "currency", "status")} if charge_ids else {}
    balances: dict[str, list[Booked]] = defaultdict(list)
    entries: dict[str, list[Booked]] = defaultdict(list)
    if not paid_out_charge_ids:
        return transactions, balances, entries
    settings_ = {provider_setting_id} | {tx.provider_setting_id for tx in transactions.values()}
    # The (provider_setting, transaction_number) index serves this.
    rows = Balance.objects.filter(provider_setting_id__in=settings_, transaction_number__in=paid_out_charge_ids,
                                  type=BalanceType.PAYMENT, is_overrefund=False).order_by("date", "id")
    for balance_id, number, amount, currency, status in rows.values_list("id", "transaction_number", "amount", "currency", "status"):
        balances[number].append(Booked(balance_id, amount, currency, pending=status == BalanceStatus.PENDING))
    rows = PaymentEntry.objects.filter(transaction_number__in=paid_out_charge_ids, kind__in=MONEY_RECEIVED_KINDS, parent=None,
                                       status=PaymentEntryStatus.OPEN).order_by("id")
    for entry_id, number, amount, currency in rows.values_list("id", "transaction_number", "amount", "currency"):
        entries[number].append(Booked(entry_id, amount, currency))
    return transactions, balances, entries


def _refund_books(refund_ids: set[str]):
    """Refunds: their refund balances (overrefund halves included), the open entries keeping a refund beside money
    held in an entry (or on no account: booked when that entry is resolved), and the "Refund failed" entries of
    failed ones. Two queries."""
    balances: dict[str, list[Booked]] = defaultdict(list)
    beside: dict[str, list[Booked]] = defaultdict(list)
    failures: dict[str, list[Booked]] = defaultdict(list)
    if not refund_ids:
        return balances, beside, failures
    rows = Balance.objects.filter(type=BalanceType.REFUND, stripe_refund_id__in=refund_ids).order_by("date", "id")
    for balance_id, refund_id, amount, currency in rows.values_list("id", "stripe_refund_id", "amount", "currency"):
        balances[refund_id].append(Booked(balance_id, amount, currency))
    rows = PaymentEntry.objects.filter(stripe_refund_id__in=refund_ids).filter(
        Q(kind=PaymentEntryKind.REFUND_OF_UNBOOKED, status=PaymentEntryStatus.OPEN) | Q(kind=PaymentEntryKind.REFUND_FAILED)).order_by("id")
    for entry_id, refund_id, kind, amount, currency in rows.values_list("id", "stripe_refund_id", "kind", "amount", "currency"):
        (failures if kind == PaymentEntryKind.REFUND_FAILED else beside)[refund_id].append(Booked(entry_id, amount, currency))
    return balances, beside, failures


def _dispute_books(dispute_ids: set[str]) -> tuple[dict[str, list[Booked]], dict[str, list[Booked]]]:
    """Disputes: what the books took back for each dispute id (positive adjustment balances, and the entries keeping a
    withdrawal beside money held in an entry) and what they gave back (negative adjustments; a withdrawal kept
    beside an entry that was reinstated before the entry was resolved). Two queries.

    The ledger marks a dispute's adjustments with the dispute id (`Balance.dispute_id`; their transaction number is
    the charge's) and keeps a withdrawal of money held in an entry as a DISPUTE_WITHDRAWAL entry with that id."""
    withdrawals: dict[str, list[Booked]] = defaultdict(list)
    reinstatements: dict[str, list[Booked]] = defaultdict(list)
    if not dispute_ids:
        return withdrawals, reinstatements
    rows = Balance.objects.filter(type=BalanceType.ADJUSTMENT, dispute_id__in=dispute_ids).order_by("date", "id")
    for balance_id, dispute_id, amount, currency in rows.values_list("id", "dispute_id", "amount", "currency"):
        (withdrawals if amount > 0 else reinstatements)[dispute_id].append(Booked(balance_id, amount, currency))
    # An entry's withdrawal resolved with a balance was rebooked as adjustments (counted above); resolved without one,
    # it was reinstated while the money still sat in the entry.
    rows = PaymentEntry.objects.filter(kind=PaymentEntryKind.DISPUTE_WITHDRAWAL, dispute_id__in=dispute_ids,
                                       resolved_balance__isnull=True).order_by("id")
    for entry_id, dispute_id, status, amount, currency in rows.values_list("id", "dispute_id", "status", "amount", "currency"):
        withdrawals[dispute_id].append(Booked(entry_id, amount, currency, entry=True))
        if status == PaymentEntryStatus.RESOLVED:
            reinstatements[dispute_id].append(Booked(entry_id, -amount, currency, entry=True))
    return withdrawals, reinstatements


def _payout_books(provider_setting_id: int, payout_ids: set[str]) -> dict[str, Payout]:
    """Payouts: the mirrored payouts a payout line names (the payout itself, or an earlier one that failed or was
    canceled and whose money came back). One query."""
    if not payout_ids:
        return {}
    return {payout.stripe_payout_id: payout for payout in Payout.objects.filter(
        provider_setting_id=provider_setting_id, stripe_payout_id__in=payout_ids).only("id", "stripe_payout_id", "stripe_status")}


def _fee_books(fee_source_ids: set[str]) -> None:
    """Stripe's fees are not in the books (they are the entity's cost, not a customer's money): reconciling records
    them as StripeFee rows, so there is nothing to read."""


def _other_books(other_source_ids: set[str]) -> None:
    """Other lines (Stripe's own adjustments, reserves, transfers...) have nothing in the books to match."""


# --- Matching each line ------------------------------------------------------------------------------


def _source_money(line: PayoutLine) -> tuple[Decimal, str] | None:
    """What Stripe says the source object was worth, in its own currency (a positive amount)."""
    if line.source_amount is not None and line.source_currency:
        return abs(line.source_amount), line.source_currency
    if line.exchange_rate is None:
        return abs(line.gross), line.currency
    return None  # converted, and the source was not expanded


def _sum_in(booked: Iterable[Booked], currency: str) -> Decimal | None:
    """The sum of amounts, or None when one is in another currency (then no amount can be said to match)."""
    total = Decimal("0")
    for item in booked:
        if item.currency != currency:
            return None
        total += item.amount
    return total


def _link(line: PayoutLine, books: Books, balances=(), entries=()) -> None:
    tx = books.transactions.get(line.charge_id)
    line.transaction_id = tx.pk if tx else None
    line.balance_ids = [item.id for item in balances]
    line.payment_entry_ids = [item.id for item in entries]


def _matched(line: PayoutLine, note: str) -> None:
    line.matched, line.note = True, note


def _differs(line: PayoutLine, found: dict) -> dict:
    line.matched, line.note = False, found["sentence"]
    return found


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s" if not word.endswith("y") else f"{count} {word[:-1]}ies"


def _match_charge(line: PayoutLine, books: Books, payout: Payout) -> dict | None:
    charge_id = line.source_id
    tx = books.transactions.get(charge_id)
    balances, entries = books.payment_balances.get(charge_id, []), books.payment_entries.get(charge_id, [])
    _link(line, books, balances, entries)
    stripe_money = _source_money(line)
    if stripe_money is None and tx is not None and tx.amount is not None:
        stripe_money = (tx.amount, tx.currency)
    amount, currency = stripe_money if stripe_money else (None, line.currency)
    if tx is None and not balances and not entries:
        return _differs(line, difference(
            DifferenceKind.UNKNOWN_CHARGE, charge_id, expected=money_text(amount, currency), actual="nothing booked",
            sentence=f"Charge {charge_id} of {money_text(amount, currency)} is in payout {payout.stripe_payout_id}, "
                     "but the books do not know it."))
    if tx is not None and tx.status == TransactionStatus.FAILED:
        return _differs(line, difference(
            DifferenceKind.CHARGE_FAILED_IN_BOOKS, charge_id, expected=money_text(amount, currency), actual="failed",
            sentence=f"Charge {charge_id} of {money_text(amount, currency)} is in payout {payout.stripe_payout_id}, "
                     "but the books say it failed."))
    booked = _sum_in([*balances, *entries], currency)
    if booked is None or amount is None or -booked != amount:
        held = money_text(-booked, currency) if booked is not None else \
            ", ".join(money_text(-item.amount, item.currency) for item in [*balances, *entries])
        return _differs(line, difference(
            DifferenceKind.AMOUNT_DIFFERS, charge_id, expected=money_text(amount, currency), actual=held,
            sentence=f"Charge {charge_id}: Stripe paid out {money_text(amount, currency)}, the books hold {held}."))
    parts = [_plural(len(balances), "payment balance")] if balances else []
    if entries:
        parts.append(_plural(len(entries), "open payment entry"))
    note = f"Payment of {money_text(amount, currency)} booked: {', '.join(parts)}."
    if any(item.pending for item in balances):
        note += " The books still show it pending (its success event has not been applied yet)."
    if line.exchange_rate is not None and currency != line.currency:
        note += f" Settled as {money_text(line.gross, line.currency)} at {line.exchange_rate.normalize()}."
    _matched(line, note)
    return None


def _match_refund(line: PayoutLine, books: Books, payout: Payout) -> dict | None:
    refund_id = line.source_id
    balances, unbooked = books.refund_balances.get(refund_id, []), books.refunds_beside_entries.get(refund_id, [])
    _link(line, books, balances, unbooked)
    amount, currency = _source_money(line) or (None, line.currency)
    if not balances and not unbooked:
        return _differs(line, difference(
            DifferenceKind.UNKNOWN_REFUND, refund_id, expected=money_text(amount, currency), actual="nothing booked",
            sentence=f"Refund {refund_id} of {money_text(amount, currency)} is in payout {payout.stripe_payout_id}, "
                     "but the books never saw it."))
    booked = _sum_in([*balances, *unbooked], currency)
    if booked is None or booked != amount:
        held = money_text(booked, currency) if booked is not None else "amounts in another currency"
        return _differs(line, difference(
            DifferenceKind.AMOUNT_DIFFERS, refund_id, expected=money_text(amount, currency), actual=held,
            sentence=f"Refund {refund_id}: Stripe took {money_text(amount, currency)} out of the payout, the books hold {held}."))
    where = ", ".join([_plural(len(balances), "refund balance")] * bool(balances) +
                      ["kept beside the entry holding the payment"] * bool(unbooked))
    _matched(line, f"Refund of {money_text(amount, currency)} booked: {where}.")
    return None


def _match_refund_failure(line: PayoutLine, books: Books, payout: Payout) -> dict | None:
    refund_id = line.source_id
    failures = books.refund_failures.get(refund_id, [])
    _link(line, books, entries=failures)
    amount, currency = _source_money(line) or (None, line.currency)
    if not failures:
        return _differs(line, difference(
            DifferenceKind.UNKNOWN_REFUND_FAILURE, refund_id, expected=money_text(amount, currency), actual="no failure booked",
            sentence=f"Refund {refund_id} failed and its {money_text(amount, currency)} came back in payout "
                     f"{payout.stripe_payout_id}, but the books do not record the failure."))
    _matched(line, f"Refund {refund_id} failed; its money came back (the books hold its \"Refund failed\" entry).")
    return None


def _match_dispute(line: PayoutLine, books: Books, payout: Payout) -> dict | None:
    dispute_id = line.source_id
    withdrawn = line.gross < 0  # a dispute takes money; its reversal (won) gives it back
    relevant = (books.dispute_withdrawals if withdrawn else books.dispute_reinstatements).get(dispute_id, [])
    _link(line, books, [item for item in relevant if not item.entry], [item for item in relevant if item.entry])
    amount, currency = _source_money(line) or (None, line.currency)
    what = "took" if withdrawn else "gave back"
    if not relevant:
        return _differs(line, difference(
            DifferenceKind.UNKNOWN_DISPUTE, dispute_id, expected=money_text(amount, currency), actual="nothing booked",
            sentence=f"Dispute {dispute_id} {what} {money_text(amount, currency)} in payout {payout.stripe_payout_id} "
                     f"(charge {line.charge_id or 'unknown'}), but the books hold no adjustment for it."))
    booked = _sum_in(relevant, currency)
    if booked is None or abs(booked) != amount:
        held = money_text(abs(booked), currency) if booked is not None else "amounts in another currency"
        return _differs(line, difference(
            DifferenceKind.AMOUNT_DIFFERS, dispute_id, expected=money_text(amount, currency), actual=held,
            sentence=f"Dispute {dispute_id}: Stripe {what} {money_text(amount, currency)}, the books' adjustment is {held}."))
    where = "kept beside the entry holding the payment" if all(item.entry for item in relevant) else "booked as adjustments"
    _matched(line, f"Dispute {'withdrawal' if withdrawn else 'reversal'} of {money_text(amount, currency)} {where}.")
    return None


def _match_fee(line: PayoutLine, books: Books, payout: Payout) -> dict | None:
    _link(line, books)
    _matched(line, f"Stripe fee of {money_text(-line.net, line.currency)}: the entity's cost, recorded as a Stripe fee.")
    return None


def _match_payout(line: PayoutLine, books: Books, payout: Payout) -> dict | None:
    _link(line, books)
    if line.source_id == payout.stripe_payout_id:
        if line.gross != -payout.amount:
            return _differs(line, difference(
                DifferenceKind.AMOUNT_DIFFERS, line.source_id, expected=money_text(payout.amount, payout.currency),
                actual=money_text(-line.gross, line.currency),
                sentence=f"Payout {payout.stripe_payout_id} is {money_text(payout.amount, payout.currency)}, but its own "
                         f"balance transaction moved {money_text(-line.gross, line.currency)}."))
        _matched(line, "The payout itself.")
        return None
    earlier = books.payouts.get(line.source_id)
    if earlier is None:
        return _differs(line, difference(
            DifferenceKind.UNKNOWN_PAYOUT, line.source_id, expected="a mirrored payout", actual="not mirrored",
            sentence=f"{money_text(line.gross, line.currency)} of payout {line.source_id} ({line.type.replace('_', ' ')}) came "
                     f"back in payout {payout.stripe_payout_id}, but this service never saw payout {line.source_id}."))
    _matched(line, f"Payout {line.source_id} ({earlier.stripe_status or 'unknown status'}): its money came back.")
    return None


def _match_other(line: PayoutLine, books: Books, payout: Payout) -> dict | None:
    _link(line, books)
    return _differs(line, difference(
        DifferenceKind.UNEXPLAINED, line.balance_transaction_id, expected="", actual=money_text(line.gross, line.currency),
        sentence=f"Stripe moved {money_text(line.gross, line.currency)} in payout {payout.stripe_payout_id} "
                 f"({line.type}, {line.reporting_category or 'no category'}, {line.balance_transaction_id}) that the books "
                 "do not explain."))


MATCHERS = {
    PayoutLineKind.CHARGE: _match_charge,
    PayoutLineKind.REFUND: _match_refund,
    PayoutLineKind.REFUND_FAILURE: _match_refund_failure,
    PayoutLineKind.DISPUTE: _match_dispute,
    PayoutLineKind.FEE: _match_fee,
    PayoutLineKind.PAYOUT: _match_payout,
    PayoutLineKind.OTHER: _match_other,
}


def explain_lines(payout: Payout, lines: list[PayoutLine]) -> list[dict]:
    """Match every line to the books (sets matched, note and the ids it matched on each line) and return the
    differences: per line in line order, then the payout's own (its lines' total, money that never reached a
    payout)."""
    books = read_books(payout, lines)
    differences = []
    for line in lines:
        found = MATCHERS[line.kind](line, books, payout)
        if found is None and line.gross - line.fee != line.net:
            found = _differs(line, difference(
                DifferenceKind.LINE_ARITHMETIC, line.balance_transaction_id, expected=money_text(line.gross - line.fee, line.currency),
                actual=money_text(line.net, line.currency),
                sentence=f"Balance transaction {line.balance_transaction_id}: {money_text(line.gross, line.currency)} less a fee "
                         f"of {money_text(line.fee, line.currency)} is not its net {money_text(line.net, line.currency)}."))
        if found is None and line.currency != payout.currency:
            found = _differs(line, difference(
                DifferenceKind.CURRENCY, line.balance_transaction_id, expected=payout.currency, actual=line.currency,
                sentence=f"Balance transaction {line.balance_transaction_id} is in {line.currency}, payout "
                         f"{payout.stripe_payout_id} in {payout.currency}."))
        if found is not None:
            differences.append(found)
    total = payout_total_difference(payout, lines)
    if total is not None:
        differences.append(total)
    differences.extend(money_not_paid_out(payout))
    return differences


def is_the_payout_itself(payout: Payout, line: PayoutLine) -> bool:
    return line.kind == PayoutLineKind.PAYOUT and line.source_id == payout.stripe_payout_id


def payout_total_difference(payout: Payout, lines: list[PayoutLine]) -> dict | None:
    """gross − fees − refunds − disputes (± other lines) = the payout amount, i.e. the lines' nets add up to it. In
    HUF and TWD, which Stripe pays out in whole units, a fraction of a unit left in the Stripe balance is no
    difference."""
    net = sum((line.net for line in lines if not is_the_payout_itself(payout, line)), Decimal("0"))
    gap = payout.amount - net
    if gap == 0 or (payout.currency in WHOLE_UNIT_PAYOUT_CURRENCIES and abs(gap) < 1):
        return None
    return difference(
        DifferenceKind.PAYOUT_TOTAL, payout.stripe_payout_id, expected=money_text(payout.amount, payout.currency),
        actual=money_text(net, payout.currency),
        sentence=f"The lines of payout {payout.stripe_payout_id} add up to {money_text(net, payout.currency)}, but "
                 f"{money_text(payout.amount, payout.currency)} reached the bank.")


def settlement_window(payout: Payout) -> tuple:
    """The booking times whose money should first have reached the bank with this payout: booked more than the
    setting's delay before this payout was made, and not before the previous automatic payout's cutoff (so a
    missing payment is named once, on the first payout that should have carried it). The first payout of a
    setting looks back one delay more."""
    delay = timedelta(days=payout.provider_setting.payout_delay_days)
    made = payout.stripe_created or payout.created_at
    previous = (Payout.objects.filter(provider_setting_id=payout.provider_setting_id, automatic=True, stripe_created__lte=made)
                .exclude(pk=payout.pk).exclude(stripe_status__in=("failed", "canceled"))
                .order_by("-stripe_created", "-id").values_list("stripe_created", flat=True).first())
    upper = made - delay
    lower = (previous - delay) if previous else upper - delay
    return lower, upper


def money_not_paid_out(payout: Payout) -> list[dict]:
    """Money the books hold for charges of this setting (succeeded or disputed) that should have reached the bank by
    this payout (see settlement_window) and is in no payout's lines. Measured from the time of the charge's last
    Stripe event (for SEPA, when it succeeded), else its creation."""
    lower, upper = settlement_window(payout)
    in_a_payout = PayoutLine.objects.filter(kind=PayoutLineKind.CHARGE, source_id=OuterRef("charge_id"))
    missing = list(PaymentTransaction.objects.filter(provider_setting_id=payout.provider_setting_id, booked_at__isnull=False,
                                                 status__in=(TransactionStatus.SUCCEEDED, TransactionStatus.DISPUTED))
               .annotate(settled=Coalesce("stripe_created", "charge_created"))
               .filter(settled__gt=lower, settled__lte=upper).filter(~Exists(in_a_payout))
               .order_by("settled", "id").values_list("charge_id", "amount", "currency", "settled")[:MAX_NAMED_MISSING + 1])
    days = payout.provider_setting.payout_delay_days
    found = [difference(
        DifferenceKind.NOT_PAID_OUT, charge_id, expected=f"in a payout by {(settled + timedelta(days=days)).date()}",
        actual="in no payout",
        sentence=f"Charge {charge_id} of {money_text(amount, currency)}, booked {settled.date()}, reached no payout within the "
                 f"expected {days} days.") for charge_id, amount, currency, settled in missing[:MAX_NAMED_MISSING]]
    if len(missing) > MAX_NAMED_MISSING:
        found.append(difference(DifferenceKind.NOT_PAID_OUT, "", sentence=f"More booked charges than the {MAX_NAMED_MISSING} "
                                                                          "named reached no payout."))
    return found
