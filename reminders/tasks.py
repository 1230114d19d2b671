"""Celery tasks of reminders: thin, they call services."""

from celery import shared_task

from reminders import services


@shared_task(name="reminders.tasks.send_due_reminders")
def send_due_reminders():
    return services.send_due_reminders()
