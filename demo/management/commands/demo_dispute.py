"""The offline demo's dispute (run by scripts/demo.py after its payout): one open dispute for finance to answer.

The cardholder's bank disputes the charge that paid a demo invoice (DEMO-1003 by default, paid by demo_payout; an open
invoice named with --invoice is paid first with the offline test card). localstripe opens the dispute through its demo
hook (`POST /_config/charges/{charge}/dispute`, devtools/localstripe_server.py) and sends `charge.dispute.created` and
`charge.dispute.funds_withdrawn` to the webhook endpoint, which books the withdrawal as it would with Stripe. Finance then
answers it in the admin (Payments › Disputes: Submit evidence, or Accept dispute). Only offline (a test-mode setting and a
Stripe API base on this machine), and once per charge: a charge already disputed is left alone.
"""

from __future__ import annotations

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from django.utils import timezone

from billing.constants import InvoiceStatus
from billing.models import Invoice
from demo.management.commands.demo_payout import wait
from payments.constants import TransactionStatus
from payments.models import Dispute, PaymentTransaction
from payments.reconciliation import money_text
from payments.services.offline import offline_demo_enabled, pay_offline
from providers.selectors import NoProviderSetting, setting_for_invoice

INVOICE = "DEMO-1003"


def paid_charge(invoice: Invoice) -> PaymentTransaction | None:
    return PaymentTransaction.objects.filter(invoice=invoice, status__in=(TransactionStatus.SUCCEEDED, TransactionStatus.DISPUTED)) \
        .order_by("-id").first()


class Command(BaseCommand):
    help = "Offline demo only: the bank disputes the charge that paid a demo invoice, so finance has a dispute to answer."

    def add_arguments(self, parser):
        parser.add_argument("--invoice", default=INVOICE, help=f"the invoice whose charge is disputed (default {INVOICE})")
        parser.add_argument("--reason", default="fraudulent", help="Stripe's dispute reason (default fraudulent)")

    def handle(self, *args, invoice: str, reason: str, **options):
        number = invoice
        invoice = Invoice.objects.filter(number=number).first()
        if invoice is None:
            raise CommandError(f"There is no invoice {number}.")
        try:
            setting = setting_for_invoice(invoice)
        except NoProviderSetting:
            setting = None
        if not offline_demo_enabled(setting):
            raise CommandError("Only in the offline demo (a test-mode setting with localstripe on this machine).")
        charge = paid_charge(invoice)
        if charge is None:
            if invoice.status != InvoiceStatus.OPEN:
                raise CommandError(f"{number} was not paid by card or debit here: nothing to dispute.")
            pay_offline(invoice, method_key="card", save_for_future=False, return_url=f"{settings.SITE_URL}/")
            charge = wait(lambda: PaymentTransaction.objects.filter(invoice=invoice, status=TransactionStatus.SUCCEEDED).first(),
                          what=f"{number} to be paid")
        existing = Dispute.objects.filter(transaction=charge).first()
        if existing is not None:
            self.stdout.write(f"{number}'s charge {charge.charge_id} is already disputed ({existing.dispute_id}, "
                              f"{existing.get_status_display().lower()}).")
            return
        response = requests.post(f"{settings.STRIPE_API_BASE}/_config/charges/{charge.charge_id}/dispute", data={"reason": reason},
                                 headers={"Idempotency-Key": f"demo-dispute-{charge.charge_id}"}, timeout=30)
        if response.status_code != 200:  # e.g. localstripe kept its store while the database was started afresh
            raise CommandError(f"localstripe opened no dispute ({response.text[:300]}).")
        dispute_id = response.json()["id"]
        dispute = wait(lambda: Dispute.objects.filter(dispute_id=dispute_id, funds_withdrawn=True).first(),
                       what=f"dispute {dispute_id} to be booked")
        due = f"{timezone.localtime(dispute.evidence_due_by):%Y-%m-%d}" if dispute.evidence_due_by else "-"
        url = settings.SITE_URL + reverse("admin:payments_dispute_change", args=[dispute.pk])
        self.stdout.write(f"Demo dispute {dispute.dispute_id} of {money_text(dispute.amount, dispute.currency)} ({number}, "
                          f"{dispute.reason}): {dispute.get_status_display().lower()}, evidence due {due}. Answer it "
                          f"as finance / finance: {url} (Submit evidence, or Accept dispute).")
