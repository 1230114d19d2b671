"""Celery tasks of receipts: thin, they load ids and call services."""

import logging
import threading
from contextlib import contextmanager

from celery import shared_task
from django.db import transaction

from receipts import services
from receipts.selectors import RECEIPTED_CHARGE_STATUSES
from refunds.models import RefundStatus

logger = logging.getLogger(__name__)


@shared_task(name="receipts.tasks.issue_payment_receipt", acks_late=True)
def issue_payment_receipt(transaction_id: int):
    receipt = services.issue_payment_receipt(transaction_id=transaction_id)
    return receipt.number if receipt else None


@shared_task(name="receipts.tasks.issue_refund_receipt", acks_late=True)
def issue_refund_receipt(refund_request_id: int):
    receipt = services.issue_refund_receipt(refund_request_id=refund_request_id)
    return receipt.number if receipt else None


@shared_task(name="receipts.tasks.issue_receipts", acks_late=True)
def issue_receipts(transaction_ids: list[int], refund_request_ids: list[int]):
    """The receipts a batch of webhook events asked for, in one task."""
    issued = [services.issue_payment_receipt(transaction_id=pk) for pk in transaction_ids]
    issued += [services.issue_refund_receipt(refund_request_id=pk) for pk in refund_request_ids]
    return [receipt.number for receipt in issued if receipt]


@shared_task(name="receipts.tasks.send_receipt_email", acks_late=True)
def send_receipt_email(email_id: int):
    return services.send_receipt_email(email_id=email_id)


@shared_task(name="receipts.tasks.sweep_receipts")
def sweep_receipts():
    """Beat: issue the receipts that were missed and send the emails left unsent."""
    return {"issued": services.issue_missing_receipts(), "sent": services.send_unsent_receipt_emails()}


def issue_after_commit(*, charge=None, refund_request=None) -> None:
    """For the webhook handlers: once the books committed, a confirmed charge or a succeeded refund gets its receipt (in a
    task, on the documents queue; the beat sweep catches a lost one). A charge asks once, from the event that confirmed
    it; a refund asks from every event that sees it succeeded, since the refund service may have booked it before any
    event (the task is idempotent). Inside a batch of events (`in_one_task`) the asks wait for the batch's end and go
    out as one task: a Celery publish costs about a fifth of an event's CPU."""
    if charge is not None and getattr(charge, "just_confirmed", False) and charge.status in RECEIPTED_CHARGE_STATUSES \
            and charge.invoice_id:
        transaction.on_commit(lambda: _ask(0, charge.pk))
    if refund_request is not None and refund_request.status == RefundStatus.SUCCEEDED:
        transaction.on_commit(lambda: _ask(1, refund_request.pk))


_batch = threading.local()


@contextmanager
def in_one_task():
    """Receipts asked for inside the block are published together, as one task, when it ends."""
    _batch.pending = ([], [])
    try:
        yield
    finally:
        (charges, refunds), _batch.pending = _batch.pending, None
        if charges or refunds:
            enqueue(issue_receipts, charges, refunds)


def _ask(kind: int, pk: int) -> None:
    pending = getattr(_batch, "pending", None)
    if pending is not None:
        pending[kind].append(pk)
    else:
        enqueue(issue_refund_receipt if kind else issue_payment_receipt, pk)


def enqueue(task, *args) -> None:
    """Publish, or leave it to the beat sweep when the broker is down: a receipt must never fail the event or
    the transaction that asked for it."""
    try:
        task.delay(*args)
    except Exception as exc:  # kombu's errors differ by transport; the sweep is the net whatever they are
        logger.warning("%s%r not enqueued (the beat sweep will do it): %s", task.name, args, exc)
