"""Sending payment reminders: each open invoice's due step once (SPEC §14).

Invariants:
- one Reminder per invoice and step (database constraint), claimed durably before its email goes out, so
  overlapping beat runs and retries never send a step twice; the email itself is sent once (payments.emails.send_once);
- never for paid, cancelled, draft or credit-note invoices, nor while a SEPA debit is in flight: checked when the
  step is chosen and again just before sending;
- "today" is the entity's own calendar day (its schedule's time zone).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from billing.ledger.sql import durable_atomic
from billing.selectors import open_amount
from payments.emails import NotToBeSent, customer_email, send_once, stable_message_id
from payments.selectors import payment_link_for
from reminders.models import Reminder, ReminderSchedule
from reminders.selectors import remindable_invoices, reminders_due, today_in, unsent_reminders

MAX_EMAIL_ATTEMPTS = 5


def send_due_reminders(*, now: datetime | None = None) -> dict[str, int]:
    """The beat task: every active schedule's due reminders, then another try for those a failure left unsent."""
    started = timezone.now()
    counts = {"sent": 0, "not_sent": 0}
    for schedule in ReminderSchedule.objects.filter(active=True).select_related("business_entity").prefetch_related("steps"):
        today = today_in(schedule.time_zone, now=now)
        for invoice, step in list(reminders_due(schedule, today=today)):
            reminder = _claim(invoice, step=step, step_day=invoice.due_date + timedelta(days=step))
            if reminder is not None:
                counts["sent" if send_reminder(reminder_id=reminder.pk) else "not_sent"] += 1
    oldest_step_day = (now or started).date() - timedelta(days=settings.REMINDER_MAX_LATENESS_DAYS + 1)
    for reminder_id in unsent_reminders(step_day_since=oldest_step_day, created_before=started,
                                        max_attempts=MAX_EMAIL_ATTEMPTS).values_list("id", flat=True):
        counts["sent" if send_reminder(reminder_id=reminder_id) else "not_sent"] += 1
    return counts


def _claim(invoice, *, step: int, step_day) -> Reminder | None:
    """The reminder's row, committed before anything is sent; None when another run claimed this step first."""
    try:
        with durable_atomic():
            return Reminder.objects.create(invoice=invoice, days_from_due=step, step_day=step_day, recipient=invoice.account.email)
    except IntegrityError:
        return None


def send_reminder(*, reminder_id: int) -> bool:
    """Email one claimed reminder (text and HTML, with the payment link) unless it was sent. True when sent now."""

    def build(reminder: Reminder):
        invoice = remindable_invoices().select_related("account", "business_entity").filter(pk=reminder.invoice_id).first()
        if invoice is None:
            raise NotToBeSent("Not sent: the invoice was paid, cancelled or is being paid by SEPA Direct Debit.")
        return customer_email(
            account=invoice.account, entity=invoice.business_entity, template="reminders/email/reminder", to=reminder.recipient,
            context={"invoice": invoice, "reminder": reminder, "open_amount": open_amount(invoice), "link": payment_link_for(invoice)},
            message_id=stable_message_id("reminder", f"{invoice.pk}.{reminder.days_from_due}"))

    return send_once(Reminder, reminder_id, build)
