"""Admin: each entity's reminder schedule (steps editable, the resulting dates shown) and the reminders sent, also
on the invoice page."""

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html_join

from billing.admin import INVOICE_PAGE_INLINES, ReadOnly
from reminders.models import Reminder, ReminderSchedule, ReminderStep
from reminders.selectors import schedule_days, today_in


class ReminderStepInline(admin.TabularInline):
    model = ReminderStep
    extra = 1
    fields = ("days_from_due", "active")


@admin.register(ReminderSchedule)
class ReminderScheduleAdmin(admin.ModelAdmin):
    list_display = ("business_entity", "active", "time_zone", "steps_display")
    list_filter = ("active",)
    readonly_fields = ("example",)
    inlines = [ReminderStepInline]

    @admin.display(description="steps (days from the due date)")
    def steps_display(self, obj):
        return ", ".join(f"{day:+d}" for day in schedule_days(obj)) or "none"

    @admin.display(description="example")
    def example(self, obj):
        if not obj or not obj.pk or not schedule_days(obj):
            return "Save steps to see when an invoice gets its reminders."
        due = today_in(obj.time_zone) + timedelta(days=7)
        return format_html_join(
            "", "<div>{}: reminder on {} ({} days)</div>",
            ((f"Invoice due {due:%a %d %b %Y}", (due + timedelta(days=day)).strftime("%a %d %b %Y"), f"{day:+d}")
             for day in schedule_days(obj)))


@admin.register(Reminder)
class ReminderAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("invoice", "days_from_due", "step_day", "recipient", "status", "attempts")
    list_filter = ("days_from_due", "invoice__business_entity")
    search_fields = ("invoice__number", "recipient")
    list_select_related = ("invoice",)

    @admin.display(description="status")
    def status(self, obj):
        return reminder_status(obj)


def reminder_status(reminder: Reminder) -> str:
    if reminder.sent_at:
        return f"sent {timezone.localtime(reminder.sent_at):%Y-%m-%d %H:%M}"
    if not reminder.recipient:
        return "not sent: the account has no email address"
    return f"not sent ({reminder.attempts} attempts){': ' + reminder.last_error if reminder.last_error else ''}"


class InvoiceRemindersInline(ReadOnly, admin.TabularInline):
    model = Reminder
    fk_name = "invoice"
    extra = 0
    fields = ("days_from_due", "step_day", "recipient", "status")
    readonly_fields = fields
    verbose_name_plural = "reminders sent"

    @admin.display(description="status")
    def status(self, obj):
        return reminder_status(obj)


INVOICE_PAGE_INLINES.append(InvoiceRemindersInline)
