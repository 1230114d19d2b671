"""Disputes answered from the admin: a paid invoice disputed at the fake Stripe, its events delivered to the endpoint."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from payments.models import Dispute
from tests.factories import AccountFactory, InvoiceFactory


@pytest.fixture(autouse=True)
def locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def disputed(pay, deliver_all, fake_stripe):
    """Pay an invoice, book it, open a dispute at the fake Stripe and deliver its events (all, or only `created`).
    Returns (invoice, charge id, Dispute row, the dispute's events)."""

    def _disputed(invoice=None, *, due_in_days=7, only_created=True, **dispute):
        invoice = invoice or InvoiceFactory(amount="100.00", account=AccountFactory(name="Ada Lovelace", email="ada@example.com"))
        charge = pay(invoice)["latest_charge"]
        deliver_all()
        events = fake_stripe.dispute_charge(charge, due_in_days=due_in_days, **dispute)
        deliver_all([event for event in events if not only_created or event["type"] == "charge.dispute.created"])
        return invoice, charge, Dispute.objects.get(dispute_id=events[0]["data"]["object"]["id"]), events

    return _disputed


@pytest.fixture
def staff_client():
    """A logged-in staff user with the given permissions (codenames of payments), e.g. staff_client("view_dispute")."""

    def _client(*codenames):
        user = User.objects.create_user(f"staff-{len(codenames)}", password="pw-staff-123", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(content_type__app_label="payments", codename__in=codenames))
        client = Client()
        client.force_login(user)
        return client

    return _client
