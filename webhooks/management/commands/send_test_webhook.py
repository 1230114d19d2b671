"""Send a Stripe-shaped, correctly signed event to a webhook endpoint (like `stripe trigger`), for demos and debugging.

Objects are built from Stripe's own example objects (tests/fixtures/stripe/objects.json). Examples:
    manage.py send_test_webhook --setting 1 --type charge.succeeded --invoice 3
    manage.py send_test_webhook --setting 1 --invoice 3 --invoice 4      (one event, one charge per invoice)
    manage.py send_test_webhook --setting 1 --open-invoices               (pays every open invoice of its entities)
"""

import copy
import hashlib
import hmac
import json
import secrets
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from billing.constants import InvoiceKind, InvoiceStatus
from billing.models import Invoice
from billing.money import to_minor_units
from billing.selectors import open_amount
from providers.constants import WEBHOOK_EVENTS
from providers.models import ProviderSetting

EXAMPLES = Path(settings.BASE_DIR) / "tests" / "fixtures" / "stripe" / "objects.json"
CHARGE_STATUS = {"charge.pending": "pending", "charge.failed": "failed", "payment_intent.processing": "pending",
                 "payment_intent.payment_failed": "failed"}


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--setting", required=True, help="provider setting id")
        parser.add_argument("--type", default="charge.succeeded", choices=[t for t in WEBHOOK_EVENTS if t.startswith("charge.")])
        parser.add_argument("--invoice", type=int, action="append", default=[],
                            help="invoice id the payment is for (metadata.invoice_id); repeat it for several events")
        parser.add_argument("--open-invoices", action="store_true",
                            help="one event for each open invoice of the entities the setting serves")
        parser.add_argument("--charge", help="reuse a charge id (e.g. to send charge.succeeded after charge.pending)")
        parser.add_argument("--url", help="endpoint URL (default: SITE_URL + the setting's webhook path)")

    def handle(self, *args, setting, type, invoice, open_invoices, charge, url, **options):
        provider_setting = ProviderSetting.objects.filter(pk=setting).first()
        if provider_setting is None or not provider_setting.webhook_secret:
            raise CommandError("No such provider setting, or it has no webhook secret.")
        target = url or settings.SITE_URL + reverse("webhooks:stripe-webhook", args=[provider_setting.webhook_id])
        if not target.startswith(("http://", "https://")):
            raise CommandError("The endpoint URL must be http(s).")
        documents = self._invoices(provider_setting, invoice, open_invoices)
        if charge and len(documents) > 1:
            raise CommandError("--charge names one charge: give at most one invoice with it.")
        examples = json.loads(EXAMPLES.read_text())["resources"]
        for document in documents:
            event, obj = self._event(examples, provider_setting, type, document, charge)
            status, answer = self._post(target, provider_setting.webhook_secret, event)
            self.stdout.write(f"{type} {event['id']} for charge {obj['id']} → HTTP {status} {answer}")

    def _invoices(self, provider_setting, invoice_ids, open_invoices) -> list:
        """The invoices to pay, in the order given; [None] for one event without an invoice."""
        documents = []
        for invoice_id in invoice_ids:
            document = Invoice.objects.filter(pk=invoice_id).first()
            if document is None:
                raise CommandError(f"No invoice {invoice_id}.")
            documents.append(document)
        if open_invoices:
            entities = provider_setting.business_entities.all()
            documents += list(Invoice.objects.filter(business_entity__in=entities, kind=InvoiceKind.INVOICE,
                                                     status=InvoiceStatus.OPEN).order_by("pk"))
            if not documents:
                raise CommandError("The setting's entities have no open invoice.")
        return documents or [None]

    def _event(self, examples, provider_setting, type, document, charge) -> tuple[dict, dict]:
        obj = copy.deepcopy(examples["charge"])
        obj.pop("refunds", None)
        metadata, amount, currency = {}, 1000, "eur"
        if document is not None:
            metadata = {"invoice_id": str(document.pk), "provider_setting_id": str(provider_setting.pk)}
            due = max(open_amount(document), 0) or document.amount
            amount, currency = to_minor_units(due, document.currency), document.currency.lower()
        obj.update(id=charge or f"ch_test_{secrets.token_hex(10)}", amount=amount, currency=currency, metadata=metadata,
                   status=CHARGE_STATUS.get(type, "succeeded"), created=int(time.time()), livemode=provider_setting.livemode,
                   captured=type != "charge.failed", paid=CHARGE_STATUS.get(type, "succeeded") == "succeeded",
                   payment_intent=None, failure_message="Test failure." if type == "charge.failed" else None)
        event = copy.deepcopy(examples["event"])
        event.update(id=f"evt_test_{secrets.token_hex(12)}", type=type, created=int(time.time()), livemode=provider_setting.livemode,
                     api_version=settings.STRIPE_API_VERSION, data={"object": obj})
        return event, obj

    @staticmethod
    def _post(target: str, secret: str, event: dict) -> tuple[int, str]:
        body = json.dumps(event).encode()
        timestamp = str(int(time.time()))
        signature = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(target, data=body, method="POST", headers={  # noqa: S310 - scheme checked by handle
            "Content-Type": "application/json", "Stripe-Signature": f"t={timestamp},v1={signature}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - an operator-given URL
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            raise CommandError(f"Could not reach {target}: {error}") from None
