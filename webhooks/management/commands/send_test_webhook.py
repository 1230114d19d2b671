"""Send a Stripe-shaped, correctly signed event to a webhook endpoint (like `stripe trigger`), for demos and debugging.

Objects are built from Stripe's own example objects (tests/fixtures/stripe/objects.json). Example:
    manage.py send_test_webhook --setting 1 --type charge.succeeded --invoice 3
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
        parser.add_argument("--invoice", type=int, help="invoice id the payment is for (metadata.invoice_id)")
        parser.add_argument("--charge", help="reuse a charge id (e.g. to send charge.succeeded after charge.pending)")
        parser.add_argument("--url", help="endpoint URL (default: SITE_URL + the setting's webhook path)")

    def handle(self, *args, setting, type, invoice, charge, url, **options):
        provider_setting = ProviderSetting.objects.filter(pk=setting).first()
        if provider_setting is None or not provider_setting.webhook_secret:
            raise CommandError("No such provider setting, or it has no webhook secret.")
        examples = json.loads(EXAMPLES.read_text())["resources"]
        obj = copy.deepcopy(examples["charge"])
        obj.pop("refunds", None)
        metadata, amount, currency = {}, 1000, "eur"
        if invoice:
            document = Invoice.objects.filter(pk=invoice).first()
            if document is None:
                raise CommandError(f"No invoice {invoice}.")
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
        body = json.dumps(event).encode()
        timestamp = str(int(time.time()))
        signature = hmac.new(provider_setting.webhook_secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        target = url or settings.SITE_URL + reverse("webhooks:stripe-webhook", args=[provider_setting.webhook_id])
        if not target.startswith(("http://", "https://")):
            raise CommandError("The endpoint URL must be http(s).")
        request = urllib.request.Request(target, data=body, method="POST", headers={  # noqa: S310 - scheme checked above
            "Content-Type": "application/json", "Stripe-Signature": f"t={timestamp},v1={signature}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - an operator-given URL
                answer = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            answer = error.code, error.read().decode()
        except OSError as error:
            raise CommandError(f"Could not reach {target}: {error}") from None
        self.stdout.write(f"{type} {event['id']} for charge {obj['id']} → HTTP {answer[0]} {answer[1]}")
