"""Which invoices are due a reminder today, in each entity's own calendar."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Exists, Max, OuterRef, QuerySet
from django.utils import timezone

from billing.constants import BalanceStatus, BalanceType, InvoiceKind, InvoiceStatus
from billing.models import Balance, Invoice
from payments.constants import AttemptStatus
from payments.models import PaymentAttempt
from reminders.models import Reminder, ReminderSchedule


def today_in(time_zone: str, *, now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(ZoneInfo(time_zone)).date()


def remindable_invoices() -> QuerySet[Invoice]:
    """Open invoices nobody is paying right now: not paid, cancelled or draft, no credit notes, and no SEPA debit in
    flight (a pending payment balance books the invoice paid at once, but it is checked anyway, as is a payment
    attempt still processing whose webhook has not arrived)."""
    pending_payment = Balance.objects.filter(invoice=OuterRef("pk"), type=BalanceType.PAYMENT, status=BalanceStatus.PENDING)
    processing = PaymentAttempt.objects.filter(invoice=OuterRef("pk"), status=AttemptStatus.PROCESSING)
    return (Invoice.objects.filter(kind=InvoiceKind.INVOICE, status=InvoiceStatus.OPEN, due_date__isnull=False)
            .exclude(Exists(pending_payment)).exclude(Exists(processing)))


def schedule_days(schedule: ReminderSchedule) -> list[int]:
    return sorted(step.days_from_due for step in schedule.steps.all() if step.active)


def due_step(due_date: date, days: list[int], today: date, *, max_lateness: int) -> int | None:
    """The step an invoice is due for today: the latest step whose day has come, unless that day is more than
    `max_lateness` days ago (then it was missed, and a customer is not sent a stale reminder)."""
    reached = [day for day in days if due_date + timedelta(days=day) <= today]
    if not reached:
        return None
    step = max(reached)
    return step if (today - (due_date + timedelta(days=step))).days <= max_lateness else None


def reminders_due(schedule: ReminderSchedule, *, today: date) -> Iterator[tuple[Invoice, int]]:
    """(invoice, step) for every remindable invoice of the schedule's entity whose due step has no reminder yet, nor a
    later one (a step added to the schedule later never reaches back behind a reminder already sent)."""
    days = schedule_days(schedule)
    if not days:
        return
    max_lateness = settings.REMINDER_MAX_LATENESS_DAYS
    candidates = remindable_invoices().filter(
        business_entity_id=schedule.business_entity_id,
        due_date__gte=today - timedelta(days=days[-1] + max_lateness), due_date__lte=today - timedelta(days=days[0]),
    ).annotate(latest_step_sent=Max("reminders__days_from_due")).select_related("account", "business_entity").order_by("due_date", "id")
    for invoice in candidates:
        step = due_step(invoice.due_date, days, today, max_lateness=max_lateness)
        if step is not None and (invoice.latest_step_sent is None or invoice.latest_step_sent < step):
            yield invoice, step


def unsent_reminders(*, step_day_since: date, created_before: datetime, max_attempts: int) -> QuerySet[Reminder]:
    """Reminders claimed but not sent (a mail server down, a crash) whose invoice is still remindable and whose step
    is recent enough to be worth sending."""
    return Reminder.objects.filter(sent_at__isnull=True, invoice__in=remindable_invoices(), step_day__gte=step_day_since,
                                   created_at__lt=created_before, attempts__lt=max_attempts).exclude(recipient="").order_by("id")
