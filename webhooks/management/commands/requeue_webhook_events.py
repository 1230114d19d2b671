"""Re-enqueue webhook events still `received` (what the beat task does every minute), e.g. after an outage."""

from datetime import timedelta

from django.core.management.base import BaseCommand

from webhooks.services import requeue_stale_events


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, default=60, help="seconds since the event was received (default 60)")

    def handle(self, *args, older_than, **options):
        count = requeue_stale_events(older_than=timedelta(seconds=older_than))
        self.stdout.write(f"{count} event(s) re-enqueued.")
