"""The invariants of SPEC §11 that need the payments app's data (a charge's amount and state, its disputes),
registered with billing's `check_books` (billing.ledger.checks) when the app is ready."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Sum

from billing.constants import MONEY_RECEIVED_KINDS, BalanceType, PaymentEntryKind, PaymentEntryStatus
from billing.ledger.checks import Violation, entity_names, register
from billing.models import Balance, PaymentEntry
from billing.money import MoneyError, format_amount
from payments.constants import MONEY_TRANSACTION_STATUSES
from payments.models import Dispute, PaymentTransaction

STRIPE_CHARGE_PREFIXES = ("ch_", "py_")


def _money(amount, currency: str) -> str:
    try:
        return format_amount(amount, currency)
    except (MoneyError, TypeError):
        return f"{amount} {currency}"


def _entity(tx: PaymentTransaction, names: dict[int, str]) -> str:
    return names.get(tx.invoice.business_entity_id, "") if tx.invoice_id else ""


@register
def charge_money_is_booked_once() -> Iterable[Violation]:
    """4. Per charge, while pending or succeeded: its payment balances (overrefund halves excluded) plus the entries
    holding its unbooked money equal minus the charge amount; once it failed (or an authorization never captured),
    zero."""
    names = entity_names()
    booked: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    payments = Balance.objects.filter(type=BalanceType.PAYMENT, is_overrefund=False, provider_setting__isnull=False)
    held = PaymentEntry.objects.filter(kind__in=MONEY_RECEIVED_KINDS, parent=None, status=PaymentEntryStatus.OPEN,
                                       provider_setting__isnull=False).exclude(currency="XXX")
    for rows in (payments, held):
        for setting_id, charge_id, total in rows.values_list("provider_setting_id", "transaction_number").annotate(total=Sum("amount"))\
                .values_list("provider_setting_id", "transaction_number", "total"):
            booked[(setting_id, charge_id)] += total
    transactions = {(tx.provider_setting_id, tx.charge_id): tx for tx in PaymentTransaction.objects.select_related("invoice")}
    for key, tx in sorted(transactions.items(), key=lambda item: item[1].pk):
        actual = booked.pop(key, Decimal("0"))
        if tx.status in MONEY_TRANSACTION_STATUSES and tx.booked_at is not None:
            if tx.amount is None:
                continue  # an amount Stripe reported in a shape the books cannot take: held as reported
            expected = -tx.amount
        else:
            expected = Decimal("0")
        if actual != expected:
            held, charged = _money(-actual, tx.currency), _money(tx.amount, tx.currency)
            yield Violation(4, _entity(tx, names), f"charge {tx.charge_id}",
                            f"its payment balances and entries hold {held}, but the {tx.status} charge of {charged} needs "
                            f"{_money(-expected, tx.currency)}", actual - expected, tx.currency)
    for (setting_id, charge_id), actual in sorted(booked.items()):
        if actual and charge_id.startswith(STRIPE_CHARGE_PREFIXES):
            yield Violation(4, "", f"charge {charge_id}", f"payment balances of Stripe setting {setting_id} for a charge this "
                            "service has no transaction of", actual)


@register
def disputes_take_back_at_most_their_amount() -> Iterable[Violation]:
    """6. A dispute's withdrawal is booked once, never more than the dispute's amount, and reversed once: what stays
    withdrawn is the dispute's amount (or what the charge held) while lost or withdrawn, nothing once reinstated or
    for an inquiry."""
    withdrawn: dict[str, Decimal] = defaultdict(Decimal)
    for dispute_id, total in Balance.objects.filter(type=BalanceType.ADJUSTMENT).exclude(dispute_id="")\
            .values_list("dispute_id").annotate(total=Sum("amount")).values_list("dispute_id", "total"):
        withdrawn[dispute_id] += total
    gross: dict[str, Decimal] = defaultdict(Decimal)
    for dispute_id, total in Balance.objects.filter(type=BalanceType.ADJUSTMENT, amount__gt=0).exclude(dispute_id="")\
            .values_list("dispute_id").annotate(total=Sum("amount")).values_list("dispute_id", "total"):
        gross[dispute_id] += total
    # Withdrawals kept beside an entry: open ones are still withdrawn; resolved ones were either booked as adjustments
    # when the entry was resolved (counted above) or reversed when the funds came back.
    for entry in PaymentEntry.objects.filter(kind=PaymentEntryKind.DISPUTE_WITHDRAWAL, resolved_balance__isnull=True):
        gross[entry.dispute_id] += entry.amount
        if entry.status == PaymentEntryStatus.OPEN:
            withdrawn[entry.dispute_id] += entry.amount
    names = entity_names()
    for dispute in Dispute.objects.select_related("transaction__invoice").order_by("id"):
        entity, subject = _entity(dispute.transaction, names), f"dispute {dispute.dispute_id}"
        taken, net = gross.pop(dispute.dispute_id, Decimal("0")), withdrawn.pop(dispute.dispute_id, Decimal("0"))
        if taken > dispute.amount:
            yield Violation(6, entity, subject, "more was withdrawn than the dispute's amount", taken - dispute.amount, dispute.currency)
        if (dispute.is_inquiry or not dispute.funds_withdrawn) and taken:
            yield Violation(6, entity, subject, "money withdrawn for a dispute that withdrew none", taken, dispute.currency)
        if dispute.funds_reinstated and net:
            yield Violation(6, entity, subject, "reinstated, but not all of its withdrawal was reversed", net, dispute.currency)
    for dispute_id, taken in sorted(gross.items()):
        if taken:
            yield Violation(6, "", f"dispute {dispute_id}", "adjustments of a dispute this service has no record of", taken)
