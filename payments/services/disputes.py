"""Disputes (chargebacks and inquiries): one Dispute row per Stripe dispute id, and what its facts mean for the books.

A dispute's facts (funds withdrawn, funds reinstated, closed) only ever become true and its status only moves
forward, and the ledger reconciles the books to those facts under the charge's row lock, so the dispute events give
the same books in any order and with any duplicates. An inquiry (`warning_*`) withdraws nothing.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing import ledger
from billing.money import MoneyError, bookable_amount
from payments.constants import (
    CLOSED_DISPUTE_STATUSES,
    FINAL_TRANSACTION_STATUSES,
    RELEASED_DISPUTE_STATUSES,
    DisputeStatus,
    TransactionStatus,
)
from payments.models import Dispute, PaymentTransaction
from payments.services.transactions import lock_transaction, object_id, stripe_time

WITHDRAWN_EVENTS = {"charge.dispute.funds_withdrawn"}
REINSTATED_EVENTS = {"charge.dispute.funds_reinstated"}
# How far along a dispute is: a status never moves back (a stale `created` after `closed` changes nothing).
STATUS_RANK = {DisputeStatus.WARNING_NEEDS_RESPONSE: 0, DisputeStatus.NEEDS_RESPONSE: 0, DisputeStatus.WARNING_UNDER_REVIEW: 1,
               DisputeStatus.UNDER_REVIEW: 1, **{status: 2 for status in CLOSED_DISPUTE_STATUSES}}


def apply_dispute(setting, dispute: dict, *, event_type: str, event_created: datetime | None = None) -> Dispute | None:
    """Apply one dispute event. The handler has synced the charge's payment first (outside this transaction)."""
    charge_id = object_id(dispute.get("charge"))
    if not dispute.get("id") or not charge_id:
        return None
    with transaction.atomic():
        tx = lock_transaction(charge_id)
        if tx is None:
            return None
        record = _record(setting, tx, dispute, event_type=event_type, event_created=event_created)
        if tx.status in FINAL_TRANSACTION_STATUSES:
            return record  # no money ever arrived: nothing to lock or take back
        open_disputes = tx.disputes.exclude(status__in=RELEASED_DISPUTE_STATUSES).exists()
        new_status = TransactionStatus.DISPUTED if open_disputes else TransactionStatus.SUCCEEDED
        if tx.status != new_status and tx.status in (TransactionStatus.SUCCEEDED, TransactionStatus.DISPUTED, TransactionStatus.PENDING):
            PaymentTransaction.objects.filter(pk=tx.pk).update(status=new_status, updated_at=timezone.now())
        ledger.set_disputed_lock(setting_id=setting.pk, charge_id=charge_id, disputed=open_disputes)
        date = record.stripe_created or timezone.now()
        if record.funds_withdrawn:
            ledger.book_withdrawal(setting_id=setting.pk, charge_id=charge_id, dispute_id=record.dispute_id, amount=record.amount,
                                   currency=record.currency, date=date)
        if record.funds_reinstated:
            ledger.book_reinstatement(setting_id=setting.pk, charge_id=charge_id, dispute_id=record.dispute_id, date=date)
        return record


def advance_status(record: Dispute, status: str | None) -> None:
    """Move the dispute's status forward to `status`, never back and never out of a closed status (events arrive in any
    order; Stripe's answer to an admin action is one more of them)."""
    if status in DisputeStatus.values and record.status not in CLOSED_DISPUTE_STATUSES \
            and STATUS_RANK.get(status, 0) >= STATUS_RANK.get(record.status, 0):
        record.status = status


def _record(setting, tx: PaymentTransaction, dispute: dict, *, event_type: str, event_created: datetime | None) -> Dispute:
    """The dispute's row, created or brought forward (never back) to what this event says."""
    status = dispute.get("status") if dispute.get("status") in DisputeStatus.values else DisputeStatus.NEEDS_RESPONSE
    currency = (dispute.get("currency") or tx.currency or "").upper()
    try:
        amount = bookable_amount(int(dispute.get("amount") or 0), currency)
    except (MoneyError, TypeError, ValueError):
        amount = tx.amount or 0
    record = Dispute.objects.select_for_update().filter(dispute_id=dispute["id"]).first()
    if record is None:
        record = Dispute(dispute_id=dispute["id"], transaction=tx, provider_setting=setting, status=status, amount=amount,
                         currency=currency)
    else:
        advance_status(record, status)
    record.amount, record.currency = amount or record.amount, currency or record.currency
    # An event older than the newest one applied (Stripe does not deliver in order) may not move what can go both ways.
    stale = bool(event_created and record.last_event_created and event_created < record.last_event_created)
    merge_evidence_details(record, dispute, stale=stale)
    record.stripe_created = stripe_time(dispute.get("created")) or record.stripe_created
    if event_created and (record.last_event_created is None or event_created > record.last_event_created):
        record.last_event_created = event_created
    # Facts only become true; "lost" implies the funds were withdrawn, "won" that they came back. Inquiries withdraw nothing.
    if not record.is_inquiry:
        withdrawn = event_type in WITHDRAWN_EVENTS | REINSTATED_EVENTS or record.status in (DisputeStatus.LOST, DisputeStatus.WON)
        record.funds_withdrawn = record.funds_withdrawn or withdrawn
        record.funds_reinstated = record.funds_reinstated or event_type in REINSTATED_EVENTS or record.status == DisputeStatus.WON
    record.save()
    return record


def merge_evidence_details(record: Dispute, dispute: dict, *, stale: bool) -> None:
    """Bring the row's reason and evidence details to what Stripe says, in any order of arrival: evidence given,
    submissions and past due only grow (a stale answer cannot undo them); the due date and the reason (which can
    change either way) only from an answer that is not stale."""
    details = dispute.get("evidence_details") or {}
    if not stale:
        record.reason = dispute.get("reason") or record.reason
        record.evidence_due_by = stripe_time(details.get("due_by")) or record.evidence_due_by
    record.has_evidence = record.has_evidence or bool(details.get("has_evidence"))
    record.evidence_past_due = record.evidence_past_due or bool(details.get("past_due"))
    try:
        submissions = int(details.get("submission_count") or 0)
    except (TypeError, ValueError):
        submissions = 0
    record.evidence_submission_count = max(record.evidence_submission_count, submissions)


def record_stripe_answer(dispute_pk: int, answer: dict, *, accepted_by: str = "", submitted_by: str = "",
                         evidence: dict | None = None, file_ids: dict | None = None) -> Dispute:
    """Bring the dispute's row forward to Stripe's answer to an action taken from the admin (accepted, or evidence
    submitted), and record what was done. The books do not move here: a dispute closed as lost withdraws its money when
    `charge.dispute.closed` arrives through the ledger (apply_dispute), as for a dispute lost any other way."""
    with transaction.atomic():
        record = Dispute.objects.select_for_update().get(pk=dispute_pk)
        advance_status(record, answer.get("status"))
        # Stripe's answer is at least as new as every event sent before the call.
        merge_evidence_details(record, answer, stale=False)
        now = timezone.now()
        if accepted_by:
            record.accepted_at, record.accepted_by = record.accepted_at or now, record.accepted_by or accepted_by
        if evidence is not None:
            record.evidence_submitted_at, record.evidence_submitted_by = now, submitted_by
            record.evidence_submitted, record.evidence_file_ids = evidence, file_ids or {}
        record.save()
        return record
