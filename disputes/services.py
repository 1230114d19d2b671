"""Answering a dispute from the admin (accept it, or submit evidence) and telling finance about a new one.

Invariants:
- every Stripe call goes through the gateway with an idempotency key derived from the dispute (and, for uploads and the
  evidence, from the content), and runs with no transaction open: the dispute's row is locked only afterwards, for the
  short write of Stripe's answer (payments.services.disputes.record_stripe_answer);
- nothing is saved locally unless Stripe accepted the whole answer: a refused upload or update leaves the row as it was
  (a file uploaded before the refusal stays at Stripe, unused; the same content reuses the same key next time);
- the books never move here: a dispute accepted (closed as lost) withdraws its money when `charge.dispute.closed`
  arrives through the ledger;
- a dispute's email to finance is sent at most once (one outbox row per dispute), after the commit, from a task.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import date

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from disputes import selectors
from disputes.models import DisputeEmail
from payments.emails import send_once, stable_message_id
from payments.formatting import format_money
from payments.models import Dispute
from payments.services.disputes import record_stripe_answer
from providers.stripe import gateway
from receipts.pdf import render_invoice_pdf
from receipts.services import issue_payment_receipt, receipt_filename, receipt_pdf

logger = logging.getLogger(__name__)

EVIDENCE_PURPOSE = "dispute_evidence"


class DisputeActionError(Exception):
    """An action on a dispute could not be done; `str(error)` is a sentence for the admin."""


def accept_dispute(dispute: Dispute, *, accepted_by: str) -> Dispute:
    """Accept the dispute: Stripe closes it as lost. The money is withdrawn by the ledger when Stripe's
    `charge.dispute.closed` event arrives, as for any dispute lost."""
    if not selectors.can_accept(dispute):
        raise DisputeActionError(f"Dispute {dispute.dispute_id} is {dispute.get_status_display().lower()}: it can no longer be accepted.")
    try:
        answer = gateway.close_dispute(dispute.provider_setting, dispute.dispute_id,
                                       idempotency_key=f"dispute-close-{dispute.dispute_id}")
    except gateway.StripeGatewayError as exc:
        raise DisputeActionError(f"Stripe did not accept dispute {dispute.dispute_id}: {exc}") from None
    logger.info("Dispute %s accepted by %s (Stripe: %s).", dispute.dispute_id, accepted_by, answer.get("status"))
    return record_stripe_answer(dispute.pk, answer, accepted_by=accepted_by)


def evidence_documents(dispute: Dispute) -> list[tuple[str, str, bytes]]:
    """The files sent as evidence: (evidence field, file name, PDF) for the charge's receipt and the invoice it paid."""
    documents = []
    tx = dispute.transaction
    receipt = issue_payment_receipt(transaction_id=tx.pk)  # the charge's receipt (issued now if it has none yet)
    if receipt is not None:
        documents.append(("receipt", receipt_filename(receipt), receipt_pdf(receipt)))
    if tx.invoice_id:
        documents.append(("service_documentation", f"{tx.invoice.number}.pdf", render_invoice_pdf(tx.invoice)))
    return documents


def submit_evidence(dispute: Dispute, *, customer_name: str, customer_email_address: str, product_description: str,
                    service_date: date | None, uncategorized_text: str, submitted_by: str) -> Dispute:
    """Upload the receipt and invoice PDFs through Stripe's Files API, then give Stripe the evidence and submit it (the
    dispute goes under review). Refused once the evidence is due or the dispute no longer waits for an answer."""
    if not selectors.can_submit_evidence(dispute):
        if selectors.is_overdue(dispute):
            due = f" {dispute.evidence_due_by:%Y-%m-%d %H:%M} UTC" if dispute.evidence_due_by else ""
            raise DisputeActionError(f"The evidence for dispute {dispute.dispute_id} was due{due}: Stripe no longer takes it.")
        raise DisputeActionError(f"Dispute {dispute.dispute_id} is {dispute.get_status_display().lower()}: it takes no evidence now.")
    setting = dispute.provider_setting
    try:
        documents = evidence_documents(dispute)
    except Exception as exc:  # WeasyPrint raises many kinds; the admin gets a sentence, nothing was sent yet
        logger.exception("Evidence documents of dispute %s could not be rendered.", dispute.dispute_id)
        raise DisputeActionError(f"The invoice or receipt PDF could not be made: {exc}") from None
    file_ids: dict[str, str] = {}
    try:
        for field, filename, content in documents:
            digest = hashlib.sha256(content).hexdigest()[:32]
            uploaded = gateway.upload_file(setting, filename=filename, content=content, purpose=EVIDENCE_PURPOSE,
                                           idempotency_key=f"dispute-{dispute.dispute_id}-{field}-{digest}")
            file_ids[field] = uploaded["id"]
        evidence = {
            "customer_name": customer_name or None,
            "customer_email_address": customer_email_address or None,
            "product_description": product_description or None,
            "service_date": service_date.isoformat() if service_date else None,
            "uncategorized_text": uncategorized_text or None,
            **file_ids,
        }
        evidence = {field: value for field, value in evidence.items() if value is not None}
        digest = hashlib.sha256(json.dumps(evidence, sort_keys=True).encode()).hexdigest()[:32]
        answer = gateway.update_dispute(setting, dispute.dispute_id, evidence=evidence, submit=True,
                                        idempotency_key=f"dispute-evidence-{dispute.dispute_id}-{digest}")
    except gateway.StripeGatewayError as exc:
        raise DisputeActionError(f"Stripe did not take the evidence for dispute {dispute.dispute_id}: {exc}") from None
    logger.info("Evidence for dispute %s submitted by %s (files %s).", dispute.dispute_id, submitted_by, file_ids)
    return record_stripe_answer(dispute.pk, answer, submitted_by=submitted_by, evidence=evidence, file_ids=file_ids)


# --- Telling finance -------------------------------------------------------------------------------


def notify_finance(dispute: Dispute) -> DisputeEmail:
    """Make sure finance hears of the dispute once: its outbox row, created once (the event's transaction commits it),
    and after the commit a task on the documents queue sends it. Call from any of the dispute's events."""
    row = DisputeEmail.objects.filter(dispute=dispute).first()
    if row is not None:
        return row
    entity = selectors.business_entity_of(dispute)
    recipient = (entity.finance_email or entity.support_email) if entity else ""
    row, created = DisputeEmail.objects.get_or_create(dispute=dispute, defaults={"recipient": recipient})
    if created and row.recipient:
        transaction.on_commit(lambda: _enqueue_email(row.pk))
    return row


def _enqueue_email(email_id: int) -> None:
    from disputes.tasks import send_dispute_email
    from receipts.tasks import enqueue

    enqueue(send_dispute_email, email_id)


def send_dispute_email(*, email_id: int) -> bool:
    """Email finance about the dispute unless it was sent already. True when this call sent it."""

    def build(email: DisputeEmail) -> EmailMultiAlternatives:
        dispute = selectors.disputes_for_finance().get(pk=email.dispute_id)
        context = {
            "dispute": dispute, "entity": selectors.business_entity_of(dispute), "invoice": dispute.transaction.invoice,
            "account": dispute.transaction.account, "amount": format_money(dispute.amount, dispute.currency, "en"),
            "admin_url": settings.SITE_URL + reverse("admin:payments_dispute_change", args=[dispute.pk]),
        }
        subject = " ".join(render_to_string("disputes/email/new_dispute_subject.txt", context).split())
        message = EmailMultiAlternatives(subject, render_to_string("disputes/email/new_dispute.txt", context),
                                         settings.DEFAULT_FROM_EMAIL, [email.recipient],
                                         headers={"Message-ID": stable_message_id("dispute", dispute.dispute_id)})
        return message

    return send_once(DisputeEmail, email_id, build)


def send_unsent_dispute_emails(*, max_attempts: int = 10) -> int:
    """What a lost task or a failed send left unsent (bounded attempts). Returns how many were sent."""
    unsent = DisputeEmail.objects.filter(sent_at__isnull=True, attempts__lt=max_attempts).exclude(recipient="").order_by("id")
    return sum(send_dispute_email(email_id=pk) for pk in unsent.values_list("id", flat=True)[:200])
