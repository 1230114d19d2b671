"""Delete processed and ignored webhook events older than WEBHOOK_RETENTION_DAYS (what the daily beat task does), in
batches of 1,000; failed and unprocessed events are kept. --dry-run only counts them."""

from django.conf import settings
from django.core.management.base import BaseCommand

from webhooks.services import purge_old_events, purgeable_events


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
        parser.add_argument("--budget", type=float, default=3600.0, help="stop after this many seconds (default 3600)")

    def handle(self, *args, dry_run, budget, **options):
        days = settings.WEBHOOK_RETENTION_DAYS
        if dry_run:
            count = purgeable_events().count()
            self.stdout.write(f"{count} event(s) processed more than {days} days ago would be deleted (dry run).")
            return
        count = purge_old_events(budget_seconds=budget)
        self.stdout.write(f"{count} event(s) processed more than {days} days ago deleted.")
