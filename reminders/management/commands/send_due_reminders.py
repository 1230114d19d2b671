"""Send the reminders that are due now (what the hourly beat task does), e.g. in the demo without a Celery beat."""

from django.core.management.base import BaseCommand

from reminders.services import send_due_reminders


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        counts = send_due_reminders()
        self.stdout.write(f"Reminders sent: {counts['sent']}, not sent (see the reminder history): {counts['not_sent']}.")
