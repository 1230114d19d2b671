"""The figures of the finance dashboard (SPEC §13), each one aggregate query (GROUP BY / conditional aggregation) per
panel: no Python loop over the rows of the books. Every figure comes with the admin changelist filter behind it.

Works on PostgreSQL and on SQLite (the offline demo): the processing-lag percentiles use percentile_cont on
PostgreSQL and a bounded sample of the last hour's events elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.db import connection
from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, FloatField, Func, Max, Min, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.urls import reverse
from django.utils import timezone

from billing.constants import BalanceType, InvoiceKind, InvoiceStatus
from billing.models import Balance, BusinessEntity, Invoice
from payments.constants import TransactionStatus
from payments.models import PaymentTransaction, Payout
from providers.models import ProviderSetting
from providers.selectors import setting_serves_entity
from refunds.models import RefundRequest, RefundStatus
from webhooks.models import EventStatus, WebhookEvent

ZERO = Decimal("0")
# (label, first day past due, last day past due or None): the outstanding amount's age buckets.
AGE_BUCKETS = [("0–30", 0, 30), ("31–60", 31, 60), ("61–90", 61, 90), ("> 90", 91, None)]
LAG_WINDOW = timedelta(hours=1)
# SQLite has no percentile_cont: the percentiles there come from the newest events of the window, at most this many.
LAG_SAMPLE = 5000


def changelist(model, **filters) -> str:
    """The admin changelist of a model filtered by querystring lookups the changelist accepts."""
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    params = {key: value for key, value in filters.items() if value is not None}
    return f"{url}?{urlencode(params)}" if params else url


@dataclass(frozen=True)
class Scope:
    """What the dashboard shows: one business entity, one currency, the days from `start` to `end` (both included)."""

    entity: BusinessEntity
    currency: str
    start: date
    end: date
    setting_ids: tuple[int, ...] = field(default=())

    @property
    def settings_param(self) -> str:
        # An entity no setting serves gets an impossible id, so its links show no rows rather than everyone's.
        return ",".join(map(str, self.setting_ids)) or "0"


def entities() -> list[BusinessEntity]:
    return list(BusinessEntity.objects.order_by("name", "id"))


def currencies_of(entity: BusinessEntity) -> list[str]:
    """The currencies the entity invoices in, its default first."""
    found = set(Invoice.objects.filter(business_entity=entity).values_list("currency", flat=True).distinct())
    return [entity.default_currency, *sorted(found - {entity.default_currency})]


def settings_serving(entity: BusinessEntity) -> tuple[int, ...]:
    """The provider settings whose money belongs to the entity (a handful of settings, not rows of the books)."""
    return tuple(s.pk for s in ProviderSetting.objects.order_by("id") if setting_serves_entity(s, entity.pk))


def scope(entity: BusinessEntity, currency: str, start: date, end: date) -> Scope:
    return Scope(entity, currency, start, end, settings_serving(entity))


# --- Money in, refunded, disputed per day ---------------------------------------------------------------------------


def _balance_filters(scope: Scope, start: date, end: date, **more) -> dict:
    return {"account__business_entity__id__exact": scope.entity.pk, "currency__exact": scope.currency,
            "date__date__gte": start.isoformat(), "date__date__lte": end.isoformat(), **more}


PAYMENT = {"type__exact": BalanceType.PAYMENT}
REFUND = {"type__exact": BalanceType.REFUND}
DISPUTE_WITHDRAWN = {"type__exact": BalanceType.ADJUSTMENT, "amount__gt": "0"}


def money_per_day(scope: Scope) -> dict:
    """Money in (payment balances), refunded (refund balances) and disputed (the funds disputes withdrew) per day of
    the range, as positive amounts, with the totals: one GROUP BY day with conditional sums."""
    rows = (Balance.objects.filter(account__business_entity=scope.entity, currency=scope.currency,
                                   date__date__gte=scope.start, date__date__lte=scope.end)
            .annotate(day=TruncDate("date")).values("day")
            .annotate(money_in=Sum(-F("amount"), filter=Q(type=BalanceType.PAYMENT)),
                      refunded=Sum("amount", filter=Q(type=BalanceType.REFUND)),
                      disputed=Sum("amount", filter=Q(type=BalanceType.ADJUSTMENT, amount__gt=0)))
            .order_by("day"))
    by_day = {row["day"]: row for row in rows}
    days, series = [], {"money_in": [], "refunded": [], "disputed": []}
    totals = dict.fromkeys(series, ZERO)
    day = scope.start
    while day <= scope.end:  # the days of the range (at most MAX_RANGE_DAYS), not rows
        row = by_day.get(day, {})
        days.append(day)
        for key in series:
            value = row.get(key) or ZERO
            series[key].append(value)
            totals[key] += value
        day += timedelta(days=1)
    links = {"money_in": changelist(Balance, **_balance_filters(scope, scope.start, scope.end, **PAYMENT)),
             "refunded": changelist(Balance, **_balance_filters(scope, scope.start, scope.end, **REFUND)),
             "disputed": changelist(Balance, **_balance_filters(scope, scope.start, scope.end, **DISPUTE_WITHDRAWN))}
    day_links = [{key: changelist(Balance, **_balance_filters(scope, d, d, **kind)) for key, kind in
                  (("money_in", PAYMENT), ("refunded", REFUND), ("disputed", DISPUTE_WITHDRAWN))} for d in days]
    return {"days": days, "series": series, "totals": totals, "links": links, "day_links": day_links}


# --- Outstanding by age ---------------------------------------------------------------------------------------------


def _bucket_dates(today: date, first: int, last: int | None) -> tuple[date | None, date]:
    """Due dates `first`..`last` days before today (oldest first; None: no lower bound)."""
    return (today - timedelta(days=last) if last is not None else None), today - timedelta(days=first)


def outstanding_by_age(scope: Scope, today: date | None = None) -> list[dict]:
    """Open invoices past their due date, by days past due: their open amount (amount plus the balances linked to
    them) and count. Two grouped queries: the invoices' amounts, and their balances' sums, per bucket."""
    today = today or timezone.localdate()
    open_invoices = Q(business_entity=scope.entity, currency=scope.currency, status=InvoiceStatus.OPEN, kind=InvoiceKind.INVOICE,
                      due_date__lte=today)
    buckets = []
    for label, first, last in AGE_BUCKETS:
        oldest, newest = _bucket_dates(today, first, last)
        due = Q(due_date__lte=newest) & (Q(due_date__gte=oldest) if oldest else Q())
        buckets.append((label, due, oldest, newest))
    invoice_sums = Invoice.objects.filter(open_invoices).aggregate(
        **{f"amount_{i}": Sum("amount", filter=due) for i, (_, due, _, _) in enumerate(buckets)},
        **{f"count_{i}": Count("id", filter=due) for i, (_, due, _, _) in enumerate(buckets)})
    balance_sums = Balance.objects.filter(_prefixed(open_invoices)).aggregate(
        **{f"paid_{i}": Sum("amount", filter=_prefixed(due)) for i, (_, due, _, _) in enumerate(buckets)})
    result = []
    for i, (label, _, oldest, newest) in enumerate(buckets):
        amount = (invoice_sums[f"amount_{i}"] or ZERO) + (balance_sums[f"paid_{i}"] or ZERO)
        link = changelist(Invoice, **{"business_entity__id__exact": scope.entity.pk, "currency__exact": scope.currency,
                                      "status__exact": InvoiceStatus.OPEN, "kind__exact": InvoiceKind.INVOICE,
                                      "due_date__gte": oldest.isoformat() if oldest else None, "due_date__lte": newest.isoformat()})
        result.append({"label": label, "amount": amount, "count": invoice_sums[f"count_{i}"], "link": link})
    return result


def _prefixed(condition: Q) -> Q:
    """The same due-date condition, read through a balance's invoice."""
    prefixed = Q()
    prefixed.connector, prefixed.negated = condition.connector, condition.negated
    for child in condition.children:
        prefixed.children.append(_prefixed(child) if isinstance(child, Q) else (f"invoice__{child[0]}", child[1]))
    return prefixed


# --- Payment failures, payouts, pending refunds ---------------------------------------------------------------------


def _day_range_q(field_name: str, scope: Scope) -> Q:
    return Q(**{f"{field_name}__date__gte": scope.start, f"{field_name}__date__lte": scope.end})


def payment_failures(scope: Scope) -> list[dict]:
    """Failed charges of the entity's settings in the currency and range, by method and reason (Stripe's message)."""
    rows = (PaymentTransaction.objects.filter(_day_range_q("created_at", scope), status=TransactionStatus.FAILED,
                                              currency=scope.currency, provider_setting_id__in=scope.setting_ids)
            .values("method_type", "last_error").annotate(count=Count("id"), amount=Coalesce(Sum("amount"), ZERO))
            .order_by("-count", "method_type", "last_error"))
    return [{"method": row["method_type"] or "-", "reason": row["last_error"] or "(no reason given)", "count": row["count"],
             "amount": row["amount"],
             "link": changelist(PaymentTransaction, status__exact=TransactionStatus.FAILED, method_type=row["method_type"],
                                last_error=row["last_error"], currency__exact=scope.currency,
                                provider_setting__id__in=scope.settings_param, created_at__date__gte=scope.start.isoformat(),
                                created_at__date__lte=scope.end.isoformat())}
            for row in rows[:50]]


def payouts_by_status(scope: Scope) -> list[dict]:
    """Payouts arriving in the range, by reconciliation status: how many, how much, how many differences."""
    rows = (Payout.objects.filter(currency=scope.currency, provider_setting_id__in=scope.setting_ids,
                                  arrival_date__gte=scope.start, arrival_date__lte=scope.end)
            .values("status").annotate(count=Count("id"), amount=Coalesce(Sum("amount"), ZERO)).order_by("status"))
    labels = dict(Payout._meta.get_field("status").choices)
    return [{"status": labels.get(row["status"], row["status"]), "count": row["count"], "amount": row["amount"],
             "link": changelist(Payout, status__exact=row["status"], currency__exact=scope.currency,
                                provider_setting__id__in=scope.settings_param, arrival_date__gte=scope.start.isoformat(),
                                arrival_date__lte=scope.end.isoformat())}
            for row in rows]


def pending_refunds(scope: Scope) -> dict:
    """Refund requests still waiting for Stripe's answer (any age: a pending refund is pending until it is not)."""
    figures = RefundRequest.objects.filter(status=RefundStatus.PENDING, currency=scope.currency,
                                           provider_setting_id__in=scope.setting_ids).aggregate(
        count=Count("id"), amount=Coalesce(Sum("amount"), ZERO), oldest=Min("created_at"))
    return {**figures, "link": changelist(RefundRequest, status__exact=RefundStatus.PENDING, currency__exact=scope.currency,
                                          provider_setting__id__in=scope.settings_param)}


# --- Webhook inbox health -------------------------------------------------------------------------------------------


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate: the continuous percentile of the expression's values."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def _percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks, as percentile_cont does."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def processing_lag(now: datetime | None = None) -> dict:
    """p50 and p95 of processed_at - received_at, in seconds, over the events processed in the last hour."""
    now = now or timezone.now()
    recent = WebhookEvent.objects.filter(processed_at__gte=now - LAG_WINDOW, processed_at__isnull=False)
    lag = ExpressionWrapper(F("processed_at") - F("received_at"), output_field=DurationField())
    if connection.vendor == "postgresql":
        figures = recent.annotate(lag=lag).aggregate(count=Count("id"), p50=PercentileCont(_epoch("lag"), 0.5),
                                                     p95=PercentileCont(_epoch("lag"), 0.95))
        return {"count": figures["count"], "p50": figures["p50"], "p95": figures["p95"], "sampled": False}
    sample = list(recent.order_by("-processed_at").annotate(lag=lag).values_list("lag", flat=True)[:LAG_SAMPLE])
    seconds = [value.total_seconds() for value in sample if value is not None]
    count = recent.count() if len(sample) >= LAG_SAMPLE else len(sample)
    return {"count": count, "p50": _percentile(seconds, 0.5), "p95": _percentile(seconds, 0.95), "sampled": count > len(sample)}


def _epoch(name: str) -> Func:
    return Func(F(name), template="EXTRACT(EPOCH FROM %(expressions)s)", output_field=FloatField())


def inbox_health(now: datetime | None = None) -> dict:
    """The inbox as a whole (every entity's lanes together): events waiting and the oldest, failed events, and lag."""
    now = now or timezone.now()
    figures = WebhookEvent.objects.filter(status__in=[EventStatus.RECEIVED, EventStatus.FAILED]).aggregate(
        waiting=Count("id", filter=Q(status=EventStatus.RECEIVED)),
        oldest_waiting=Min("received_at", filter=Q(status=EventStatus.RECEIVED)),
        failed=Count("id", filter=Q(status=EventStatus.FAILED)), last_failed=Max("received_at", filter=Q(status=EventStatus.FAILED)))
    lag = processing_lag(now)
    since = (now - LAG_WINDOW).isoformat()
    return {**figures, "lag": lag, "oldest_waiting_age": (now - figures["oldest_waiting"]) if figures["oldest_waiting"] else None,
            "links": {"waiting": changelist(WebhookEvent, status__exact=EventStatus.RECEIVED),
                      "failed": changelist(WebhookEvent, status__exact=EventStatus.FAILED),
                      "lag": changelist(WebhookEvent, processed_at__gte=since)}}


def dashboard(scope: Scope) -> dict:
    return {"money": money_per_day(scope), "outstanding": outstanding_by_age(scope), "failures": payment_failures(scope),
            "payouts": payouts_by_status(scope), "refunds": pending_refunds(scope), "inbox": inbox_health()}
