"""Payment reminders: each business entity's schedule of steps relative to the due date, and every reminder sent.

A Reminder row is both the history shown on the invoice and the outbox of its email: unique per invoice and
step, so a step is emailed once, whatever the retries or overlapping beat runs.
"""

from zoneinfo import available_timezones

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


def validate_time_zone(value: str) -> None:
    if value not in available_timezones():
        raise ValidationError(f"{value!r} is not a time zone name such as Europe/Berlin.")


class ReminderSchedule(models.Model):
    business_entity = models.OneToOneField("billing.BusinessEntity", on_delete=models.PROTECT, related_name="reminder_schedule")
    active = models.BooleanField(default=True)
    time_zone = models.CharField(max_length=64, default="Europe/Berlin", validators=[validate_time_zone],
                                 help_text="Where the entity's day starts: a step is due from midnight of its day there.")

    class Meta:
        ordering = ["business_entity__name"]

    def __str__(self) -> str:
        return f"Reminders of {self.business_entity}"


class ReminderStep(models.Model):
    schedule = models.ForeignKey(ReminderSchedule, on_delete=models.CASCADE, related_name="steps")
    days_from_due = models.SmallIntegerField(
        validators=[MinValueValidator(-60), MaxValueValidator(365)],
        help_text="Days relative to the due date: -3 is three days before it, 0 the due date, 14 two weeks after.")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["days_from_due"]
        constraints = [models.UniqueConstraint(fields=["schedule", "days_from_due"], name="one_step_per_day_of_a_schedule")]

    def __str__(self) -> str:
        return f"{self.days_from_due:+d} days"


class Reminder(models.Model):
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT, related_name="reminders")
    days_from_due = models.SmallIntegerField()
    step_day = models.DateField(help_text="The day this step fell on (due date + days), in the entity's time zone.")
    recipient = models.EmailField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-step_day", "-id"]
        constraints = [models.UniqueConstraint(fields=["invoice", "days_from_due"], name="one_reminder_per_invoice_and_step")]

    def __str__(self) -> str:
        return f"Reminder {self.days_from_due:+d} days for {self.invoice}"
