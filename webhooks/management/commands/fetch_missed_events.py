"""Fetch events from Stripe's Events API (it keeps 30 days) and feed the missing ones through the inbox."""

import time

from django.core.management.base import BaseCommand, CommandError

from providers.constants import WEBHOOK_EVENTS
from providers.models import ProviderSetting
from providers.stripe import gateway
from webhooks.services import ingest_fetched_event


class Command(BaseCommand):
    help = "Fetch Stripe events of the last N days (max 30) and store those the service never received."

    def add_arguments(self, parser):
        parser.add_argument("--setting", default="all", help="provider setting id, or 'all'")
        parser.add_argument("--days", type=int, default=30)

    def handle(self, *args, setting, days, **options):
        if not 1 <= days <= 30:
            raise CommandError("--days must be between 1 and 30 (Stripe keeps events for 30 days).")
        settings_ = ProviderSetting.objects.all() if setting == "all" else ProviderSetting.objects.filter(pk=setting)
        if not settings_.exists():
            raise CommandError(f"No provider setting {setting}.")
        since = int(time.time()) - days * 86400
        for provider_setting in settings_:
            fetched = stored = 0
            try:
                for event in gateway.iter_events(provider_setting, created_gte=since, types=list(WEBHOOK_EVENTS)):
                    fetched += 1
                    stored += ingest_fetched_event(provider_setting, event)
            except gateway.StripeGatewayError as exc:
                self.stderr.write(f"{provider_setting}: {exc}")
                continue
            self.stdout.write(f"{provider_setting}: {fetched} events fetched, {stored} new stored and queued.")
