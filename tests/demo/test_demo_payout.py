"""`manage.py demo_payout` (the offline demo's reconciled payout) refuses to run anywhere but the offline demo: it pays an
invoice and asks the local Stripe stand-in for a payout (the whole run is tests/e2e/test_demo.py)."""

import pytest
from django.core.management import CommandError, call_command

from payments.models import PaymentAttempt, Payout
from tests.factories import InvoiceFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("offline", "api_base"), [(False, "http://127.0.0.1:8420"), (True, "https://api.stripe.com"), (True, "")])
def test_demo_payout_runs_only_in_the_offline_demo(settings, offline, api_base):
    settings.STRIPE_OFFLINE_DEMO, settings.STRIPE_API_BASE = offline, api_base
    ProviderSettingFactory()
    InvoiceFactory(number="DEMO-1003", amount="250.00")
    with pytest.raises(CommandError, match="Only in the offline demo"):
        call_command("demo_payout")
    assert not PaymentAttempt.objects.exists() and not Payout.objects.exists()
