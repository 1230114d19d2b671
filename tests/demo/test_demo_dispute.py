"""`manage.py demo_dispute` (the offline demo's open dispute) refuses to run anywhere but the offline demo: it asks the
local Stripe stand-in to dispute a charge (the whole run is tests/e2e/test_demo.py and
tests/e2e/test_disputes_against_localstripe.py)."""

import pytest
from django.core.management import CommandError, call_command

from payments.models import Dispute, PaymentAttempt
from tests.factories import InvoiceFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("offline", "api_base"), [(False, "http://127.0.0.1:8420"), (True, "https://api.stripe.com"), (True, "")])
def test_demo_dispute_runs_only_in_the_offline_demo(settings, offline, api_base):
    settings.STRIPE_OFFLINE_DEMO, settings.STRIPE_API_BASE = offline, api_base
    ProviderSettingFactory()
    InvoiceFactory(number="DEMO-1003", amount="250.00")
    with pytest.raises(CommandError, match="Only in the offline demo"):
        call_command("demo_dispute")
    assert not PaymentAttempt.objects.exists() and not Dispute.objects.exists()


def test_demo_dispute_says_when_the_invoice_does_not_exist(settings):
    settings.STRIPE_OFFLINE_DEMO, settings.STRIPE_API_BASE = True, "http://127.0.0.1:8420"
    ProviderSettingFactory()
    with pytest.raises(CommandError, match="There is no invoice NO-SUCH."):
        call_command("demo_dispute", "--invoice", "NO-SUCH")
    assert not Dispute.objects.exists()
