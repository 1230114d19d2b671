"""What Stripe's dispute events keep true here: the evidence status of `charge.dispute.updated` in any order of arrival
(a stale event never moves it back), and one email to the entity's finance address per new dispute (SPEC §14)."""

import copy
import secrets
from datetime import UTC, datetime

import pytest
from django.core import mail

from disputes import selectors
from disputes.models import DisputeEmail
from payments.constants import DisputeStatus
from tests.factories import AccountFactory, BusinessEntityFactory, InvoiceFactory

pytestmark = pytest.mark.django_db


def updated_event(created_event, *, seconds_later, **dispute_fields):
    """A `charge.dispute.updated` of the same dispute, `seconds_later` than its `created` event."""
    event = copy.deepcopy(created_event)
    event.update(id="evt_" + secrets.token_hex(12), type="charge.dispute.updated", created=created_event["created"] + seconds_later)
    obj = event["data"]["object"]
    details = dispute_fields.pop("evidence_details", {})
    obj.update(dispute_fields)
    obj["evidence_details"] = {**obj["evidence_details"], **details}
    return event


@pytest.mark.parametrize("newest_first", [True, False])
def test_a_stale_update_never_moves_the_evidence_status_back(disputed, deliver_all, newest_first):
    _invoice, _charge, dispute, events = disputed()
    created = events[0]
    due = created["data"]["object"]["evidence_details"]["due_by"]
    newer = updated_event(created, seconds_later=20, status="under_review", reason="fraudulent",
                          evidence_details={"due_by": due + 3600, "has_evidence": True, "submission_count": 1})
    stale = updated_event(created, seconds_later=10, status="needs_response", reason="general",
                          evidence_details={"due_by": due + 60, "has_evidence": False, "submission_count": 0})
    deliver_all([newer, stale] if newest_first else [stale, newer])
    dispute.refresh_from_db()
    assert dispute.status == DisputeStatus.UNDER_REVIEW and dispute.reason == "fraudulent"
    assert (dispute.has_evidence, dispute.evidence_submission_count) == (True, 1)
    assert dispute.evidence_due_by == datetime.fromtimestamp(due + 3600, tz=UTC)
    assert dispute.last_event_created == datetime.fromtimestamp(newer["created"], tz=UTC)
    # The stale created event again (a Stripe retry of the first delivery, another id) changes nothing either.
    deliver_all([{**copy.deepcopy(created), "id": "evt_" + secrets.token_hex(12)}])
    dispute.refresh_from_db()
    assert dispute.status == DisputeStatus.UNDER_REVIEW and dispute.evidence_submission_count == 1


def test_an_update_saying_past_due_marks_the_dispute_overdue(disputed, deliver_all):
    _invoice, _charge, dispute, events = disputed(due_in_days=3)
    assert not selectors.is_overdue(dispute)
    deliver_all([updated_event(events[0], seconds_later=5, evidence_details={"past_due": True})])
    dispute.refresh_from_db()
    assert dispute.evidence_past_due and selectors.is_overdue(dispute) and not selectors.can_submit_evidence(dispute)


def finance_emails(address):
    return [message for message in mail.outbox if message.to == [address]]


def test_a_new_dispute_emails_the_finance_address_once(disputed, deliver_all, fake_stripe):
    entity = BusinessEntityFactory(finance_email="finance@example.com")
    invoice = InvoiceFactory(amount="100.00", account=AccountFactory(business_entity=entity, name="Ada Lovelace"))
    _invoice, _charge, dispute, events = disputed(invoice, only_created=False)
    email, = finance_emails("finance@example.com")
    assert dispute.dispute_id in email.subject and "€100.00" in email.subject and invoice.number in email.subject
    assert "Ada Lovelace" in email.body and f"/admin/payments/dispute/{dispute.pk}/change/" in email.body
    assert "Evidence due by" in email.body and dispute.transaction.charge_id in email.body
    # Redelivered (the same event id, and a replay under a new id), and the dispute's later events: no second email.
    created = events[0]
    deliver_all([created, {**copy.deepcopy(created), "id": "evt_" + secrets.token_hex(12)}, *events])
    deliver_all([updated_event(created, seconds_later=5, status="under_review")])
    assert len(finance_emails("finance@example.com")) == 1
    row = DisputeEmail.objects.get()
    assert row.sent_at is not None and row.attempts == 1


def test_without_a_finance_address_the_support_address_is_told(disputed):
    entity = BusinessEntityFactory(support_email="help@example.com")
    disputed(InvoiceFactory(account=AccountFactory(business_entity=entity)))
    assert len(finance_emails("help@example.com")) == 1


def test_the_email_is_sent_by_a_task_on_the_documents_queue():
    from celery import current_app

    from config.celery import app  # noqa: F401 - the project's Celery app, with its routes

    route = current_app.amqp.router.route({}, "disputes.tasks.send_dispute_email", (), {})
    assert route["queue"].name == "documents"
