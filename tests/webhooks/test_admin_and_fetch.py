"""Replaying failed events from the admin; fetching missed events from Stripe's Events API."""

import pytest
from django.core.management import call_command
from django.urls import reverse

from billing.models import Balance
from webhooks.models import EventStatus, WebhookEvent

pytestmark = pytest.mark.django_db


def test_fetch_missed_events_feeds_the_inbox_once(setting, invoice, pay, fake_stripe, django_capture_on_commit_callbacks):
    pay(invoice)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("fetch_missed_events", "--days", "30")
    assert WebhookEvent.objects.count() == len(fake_stripe.events)
    assert Balance.objects.get().invoice == invoice
    with django_capture_on_commit_callbacks(execute=True):
        call_command("fetch_missed_events", "--setting", str(setting.pk), "--days", "3")
    assert WebhookEvent.objects.count() == len(fake_stripe.events)  # duplicates skipped


def test_failed_event_is_replayed_from_the_admin(admin_client, setting, invoice, pay, deliver_all, fake_stripe,
                                                 django_capture_on_commit_callbacks):
    pi = pay(invoice)
    event = fake_stripe.events_of("payment_intent.succeeded")[0]
    fake_stripe.inject("GET", "/v1/charges/", status=404, times=100,
                       body={"error": {"type": "invalid_request_error", "message": "No such charge"}})
    deliver_all([event])
    stored = WebhookEvent.objects.get()
    assert stored.status == EventStatus.FAILED
    fake_stripe.faults.clear()
    page = admin_client.get(reverse("admin:webhooks_webhookevent_change", args=[stored.pk]))
    assert page.status_code == 200 and pi["id"] in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:webhooks_webhookevent_changelist"), {"action": "replay", "_selected_action": [stored.pk]})
    stored.refresh_from_db()
    assert stored.status == EventStatus.PROCESSED
    assert Balance.objects.get().transaction_number == pi["latest_charge"]
