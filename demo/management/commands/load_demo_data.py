"""Demo data for `make run`: two branded business entities, accounts, open invoices (EUR and JPY), a credit
note, an admin and a finance user. Idempotent. With STRIPE_* keys in the environment it also creates the
default Stripe setting."""

import os
from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from billing.constants import InvoiceKind, InvoiceStatus
from billing.ledger import recompute_invoices
from billing.models import Account, BusinessEntity, Invoice
from refunds.permissions import ensure_finance_group

ENTITIES = [
    {"slug": "acme-de", "name": "ACME Deutschland", "display_name": "ACME Deutschland GmbH", "default_currency": "EUR",
     "support_email": "billing@acme.example", "logo_url": ""},
    {"slug": "acme-jp", "name": "ACME Japan", "display_name": "ACME Japan KK", "default_currency": "JPY",
     "support_email": "billing@acme-jp.example", "logo_url": ""},
]
# (entity, account, number, kind, amount, currency, days until due)
INVOICES = [
    ("acme-de", "Muster GmbH", "DEMO-1001", InvoiceKind.INVOICE, "119.00", "EUR", 14),
    ("acme-de", "Muster GmbH", "DEMO-1002", InvoiceKind.INVOICE, "49.90", "EUR", 14),
    ("acme-de", "Muster GmbH", "DEMO-CN-1", InvoiceKind.CREDIT, "-19.90", "EUR", 14),
    ("acme-de", "Beispiel AG", "DEMO-1003", InvoiceKind.INVOICE, "250.00", "EUR", 14),
    ("acme-de", "Beispiel AG", "DEMO-1004", InvoiceKind.INVOICE, "75.00", "EUR", -1),  # overdue: its +1 reminder is due
    ("acme-jp", "Yamada Trading", "DEMO-2001", InvoiceKind.INVOICE, "5000", "JPY", 14),
]
# The customers' languages (receipts, reminders and emails): Muster GmbH reads German.
LANGUAGES = {"Muster GmbH": "de"}
REMINDER_DAYS = (-3, 1, 7, 14)


class Command(BaseCommand):
    help = __doc__

    @transaction.atomic
    def handle(self, *args, **options):
        from django.conf import settings

        entities = {}
        for spec in ENTITIES:
            # Branding: each entity's own logo (served by this app, so the demo needs no internet).
            spec = {**spec, "logo_url": f"{settings.SITE_URL}/static/payments/demo/{spec['slug']}.svg"}
            entities[spec["slug"]], _ = BusinessEntity.objects.update_or_create(slug=spec["slug"], defaults=spec)
        for slug, account_name, number, kind, amount, currency, due_in_days in INVOICES:
            entity = entities[slug]
            account, _ = Account.objects.get_or_create(business_entity=entity, name=account_name,
                                                       defaults={"email": f"{account_name.split()[0].lower()}@example.com",
                                                                 "language": LANGUAGES.get(account_name, "en")})
            Invoice.objects.get_or_create(number=number, defaults={
                "account": account, "business_entity": entity, "kind": kind, "amount": Decimal(amount), "currency": currency,
                "payment_reference": f"Invoice {number}", "due_date": date.today() + timedelta(days=due_in_days),
                "status": InvoiceStatus.OPEN})
        self._reminder_schedules(entities.values())
        recompute_invoices(Invoice.objects.filter(number__startswith="DEMO-").values_list("id", flat=True))

        users = get_user_model()
        if not users.objects.filter(username="admin").exists():
            users.objects.create_superuser("admin", "admin@example.com", "admin")
        finance, created = users.objects.get_or_create(username="finance", defaults={"is_staff": True, "email": "finance@example.com"})
        if created:
            finance.set_password("finance")
            finance.save()
        ensure_finance_group()
        finance.groups.add(Group.objects.get(name="Finance"))
        setting = self._stripe_setting()
        self.stdout.write("Demo data ready. Logins: admin / admin (superuser), finance / finance (Finance group).")
        self.stdout.write(f"Admin: {settings.SITE_URL}/admin/")
        self.stdout.write("Reminders (-3, +1, +7, +14 days; DEMO-1004 is overdue): beat sends them hourly, or now with "
                          "`python manage.py send_due_reminders`; emails go to the console.")
        if setting is not None:
            from payments.selectors import payment_link_for

            for invoice in Invoice.objects.filter(number__startswith="DEMO-", kind=InvoiceKind.INVOICE, status=InvoiceStatus.OPEN):
                self.stdout.write(f"Pay {invoice.number} ({invoice.amount} {invoice.currency}): {payment_link_for(invoice)}")

    def _reminder_schedules(self, entities):
        from reminders.models import ReminderSchedule, ReminderStep

        for entity in entities:
            schedule, _ = ReminderSchedule.objects.get_or_create(business_entity=entity, defaults={"time_zone": "Europe/Berlin"})
            for day in REMINDER_DAYS:
                ReminderStep.objects.get_or_create(schedule=schedule, days_from_due=day)

    def _stripe_setting(self):
        keys = {name: os.environ.get(name, "") for name in ("STRIPE_PUBLISHABLE_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")}
        if not all(keys.values()):
            self.stdout.write("No STRIPE_* keys in the environment: configure a Stripe setting in the admin to take payments.")
            return None
        from providers.models import ProviderSetting
        from providers.services import save_provider_setting

        setting = ProviderSetting.objects.filter(name="Demo Stripe").first() or ProviderSetting(
            name="Demo Stripe", method_card=True, method_sepa_debit=True, enable_future_payments=True,
            future_payments_active=True, future_payments_changeable=True)
        setting.publishable_key = keys["STRIPE_PUBLISHABLE_KEY"]
        save_provider_setting(setting, entity_ids=[], secret_key=keys["STRIPE_SECRET_KEY"], webhook_secret=keys["STRIPE_WEBHOOK_SECRET"])
        self.stdout.write(f"Stripe setting “{setting.name}” ready ({setting.mode} mode), webhook endpoint: "
                          f"/webhooks/stripe/{setting.webhook_id}/")
        return setting
