"""The invariants of SPEC §11 that need refund requests, registered with billing's `check_books` when the app is ready."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Sum

from billing.constants import BalanceType, PaymentEntryKind
from billing.ledger.checks import Violation, register
from billing.models import Balance, PaymentEntry
from refunds.models import RefundRequest, RefundStatus

NOT_REFUNDED = (RefundStatus.FAILED, RefundStatus.CANCELED)


@register
def refunds_match_what_stripe_refunded() -> Iterable[Violation]:
    """4. Per charge: its refund balances (overrefund halves included), the refunds kept beside an entry and its
    "Refund failed" entries add up to what Stripe has refunded and not failed (the requests booked and not failed)."""
    booked: dict[str, Decimal] = defaultdict(Decimal)
    for charge_id, total in Balance.objects.filter(type=BalanceType.REFUND, refunds_balance__isnull=False)\
            .values_list("transaction_number").annotate(total=Sum("amount")).values_list("transaction_number", "total"):
        booked[charge_id] += total
    entries = PaymentEntry.objects.filter(kind=PaymentEntryKind.REFUND_OF_UNBOOKED, resolved_balance__isnull=True)
    for rows in (entries, PaymentEntry.objects.filter(kind=PaymentEntryKind.REFUND_FAILED)):
        totals = rows.values_list("transaction_number").annotate(total=Sum("amount")).values_list("transaction_number", "total")
        for charge_id, total in totals:
            booked[charge_id] += total
    refunded: dict[str, tuple[Decimal, str]] = {}
    for charge_id, currency, total in RefundRequest.objects.filter(applied_at__isnull=False).exclude(status__in=NOT_REFUNDED)\
            .values_list("charge_id", "currency").annotate(total=Sum("amount")).values_list("charge_id", "currency", "total"):
        refunded[charge_id] = (total, currency)
    charges = set(booked) | set(refunded)
    currencies = dict(RefundRequest.objects.filter(charge_id__in=charges).values_list("charge_id", "currency"))
    for charge_id in sorted(charges):
        expected, currency = refunded.get(charge_id, (Decimal("0"), currencies.get(charge_id, "")))
        actual = booked.get(charge_id, Decimal("0"))
        if actual != expected:
            yield Violation(4, "", f"charge {charge_id}", f"refunds booked {actual}, but Stripe refunded {expected} (not failed)",
                            actual - expected, currency)


@register
def every_refund_is_booked() -> Iterable[Violation]:
    """5. Every refund booked by a request is in the books exactly once: refund balances or one entry."""
    with_balances = set(Balance.objects.filter(type=BalanceType.REFUND).exclude(stripe_refund_id="")
                        .values_list("stripe_refund_id", flat=True).distinct())
    in_entries = set(PaymentEntry.objects.filter(kind=PaymentEntryKind.REFUND_OF_UNBOOKED, resolved_balance__isnull=True)
                     .values_list("stripe_refund_id", flat=True))
    for request in RefundRequest.objects.filter(applied_at__isnull=False).order_by("id"):
        refund_id = request.stripe_refund_id or f"request-{request.pk}"
        if refund_id not in with_balances and refund_id not in in_entries:
            yield Violation(5, "", f"refund {refund_id}", f"request {request.pk} was booked, but no refund balance or entry carries it",
                            request.amount, request.currency)
