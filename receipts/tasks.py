"""Celery tasks of receipts: thin, they load ids and call services."""

import logging

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
    it (nine events in ten are charge events: a publish each would be a tenth of their cost); a refund asks from every
    event that sees it succeeded, since the refund service may have booked it before any event (the task is
    idempotent)."""
    if charge is not None and getattr(charge, "just_confirmed", False) and charge.status in RECEIPTED_CHARGE_STATUSES \
            and charge.invoice_id:
        transaction.on_commit(lambda: enqueue(issue_payment_receipt, charge.pk))
    if refund_request is not None and refund_request.status == RefundStatus.SUCCEEDED:
        transaction.on_commit(lambda: enqueue(issue_refund_receipt, refund_request.pk))


def enqueue(task, *args) -> None:
    """Publish, or leave it to the beat sweep when the broker is down: a receipt must never fail the event or
    the transaction that asked for it."""
    try:
        task.delay(*args)
    except Exception as exc:  # kombu's errors differ by transport; the sweep is the net whatever they are
        logger.warning("%s%r not enqueued (the beat sweep will do it): %s", task.name, args, exc)
