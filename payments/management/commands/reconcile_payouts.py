"""Reconcile Stripe payouts arriving since a date: for payouts whose webhooks were missed, or to check again."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from payments.services.payouts import reconcile_payouts_since
from providers.models import ProviderSetting


class Command(BaseCommand):
    help = ("Mirror and reconcile the Stripe payouts arriving on or after --since (YYYY-MM-DD), for every setting or one: "
            "payouts not reconciled yet are fetched and matched to the books, mismatched ones are matched again.")

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="first arrival date, YYYY-MM-DD")
        parser.add_argument("--setting", help="provider setting id (default: every setting with a secret key)")

    def handle(self, *args, since, setting=None, **options):
        try:
            first_day = date.fromisoformat(since)
        except ValueError:
            raise CommandError(f"--since must be a date like 2026-11-30, not {since!r}.")
        if first_day > date.today():
            raise CommandError(f"--since {first_day} is in the future.")
        settings_ = ProviderSetting.objects.exclude(secret_key_encrypted="")
        if setting is not None:
            if not str(setting).isdigit() or not settings_.filter(pk=setting).exists():
                raise CommandError(f"There is no provider setting {setting} with a secret key.")
            settings_ = settings_.filter(pk=setting)
        payouts = reconcile_payouts_since(first_day, settings_=settings_, report=self.stdout.write)
        self.stdout.write(f"{len(payouts)} payout(s) arriving since {first_day} checked.")
