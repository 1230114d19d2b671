"""The offline demo's payout (run by scripts/demo.py once its web server answers): one reconciled payout to look at.

A customer pays DEMO-1003 with the offline test card (the payment page's own service), localstripe's webhooks book
it, then localstripe runs Stripe's automatic payout of the day (`/_config/payouts/run`, devtools/localstripe_server.py):
its `payout.paid` and `payout.reconciliation_completed` webhooks make the service list the payout's balance
transactions from localstripe and reconcile them against the books, as it would with Stripe. Only offline (a test-mode
setting and a Stripe API base on this machine), and only once: a database that has a payout is left alone.
"""

from __future__ import annotations

import time

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing.constants import InvoiceStatus
from billing.models import Invoice
from payments.constants import PayoutStatus
from payments.models import Payout
from payments.reconciliation import money_text
from payments.services.offline import offline_demo_enabled, pay_offline
from providers.selectors import NoProviderSetting, setting_for_invoice

INVOICE = "DEMO-1003"


def wait(condition, *, timeout: float = 60, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise CommandError(f"Gave up waiting for {what}.")


class Command(BaseCommand):
    help = "Offline demo only: pay DEMO-1003 and have localstripe pay out the day, so the admin shows one reconciled payout."

    def handle(self, *args, **options):
        invoice = Invoice.objects.filter(number=INVOICE).first()
        try:
            setting = setting_for_invoice(invoice) if invoice else None
        except NoProviderSetting:
            setting = None
        if not offline_demo_enabled(setting):
            raise CommandError("Only in the offline demo (a test-mode setting with localstripe on this machine).")
        if Payout.objects.exists():
            return
        if invoice.status == InvoiceStatus.OPEN:
            pay_offline(invoice, method_key="card", save_for_future=False, return_url=f"{settings.SITE_URL}/")
            wait(lambda: Invoice.objects.filter(pk=invoice.pk, status=InvoiceStatus.PAID).exists(), what=f"{INVOICE} to be paid")
        response = requests.post(f"{settings.STRIPE_API_BASE}/_config/payouts/run", data={"currency": "eur"}, timeout=30)
        if response.status_code != 200:  # e.g. localstripe kept its store while the database was started afresh
            raise CommandError(f"localstripe made no payout ({response.text[:200]}).")
        payout_id = response.json()["id"]
        payout = wait(lambda: Payout.objects.exclude(status=PayoutStatus.PENDING).filter(stripe_payout_id=payout_id).first(),
                      what=f"payout {payout_id} to be reconciled")
        self.stdout.write(f"Demo payout {payout.stripe_payout_id} of {money_text(payout.amount, payout.currency)} ({INVOICE}, "
                          f"Stripe's fee deducted): {payout.get_status_display().lower()}, {payout.line_count} line(s). "
                          f"See {settings.SITE_URL}/admin/payments/payout/")
