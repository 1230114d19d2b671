"""Reads for answering disputes: which actions a dispute still allows, and what its evidence form starts with."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, QuerySet
from django.utils import timezone

from payments.constants import DisputeStatus
from payments.models import Dispute

# Stripe takes evidence, or closes the dispute when accepted, only while it waits for an answer.
ANSWERABLE_STATUSES = (DisputeStatus.NEEDS_RESPONSE, DisputeStatus.WARNING_NEEDS_RESPONSE)


def disputes_for_finance() -> QuerySet[Dispute]:
    """Every dispute, the soonest evidence due date first (none at the end), with what the list shows."""
    return (Dispute.objects.select_related("transaction__invoice__business_entity", "transaction__account", "provider_setting")
            .order_by(F("evidence_due_by").asc(nulls_last=True), "id"))


def is_overdue(dispute: Dispute, *, now: datetime | None = None) -> bool:
    """Waiting for an answer, and its evidence is due no longer (Stripe's past_due, or the due date has passed)."""
    if dispute.status not in ANSWERABLE_STATUSES:
        return False
    now = now or timezone.now()
    return dispute.evidence_past_due or (dispute.evidence_due_by is not None and dispute.evidence_due_by <= now)


def can_accept(dispute: Dispute) -> bool:
    return dispute.status in ANSWERABLE_STATUSES


def can_submit_evidence(dispute: Dispute) -> bool:
    return dispute.status in ANSWERABLE_STATUSES and not is_overdue(dispute)


def business_entity_of(dispute: Dispute):
    tx = dispute.transaction
    if tx.invoice_id:
        return tx.invoice.business_entity
    if tx.account_id:
        return tx.account.business_entity
    return None


def evidence_defaults(dispute: Dispute) -> dict:
    """The evidence form's first values: the customer and what the disputed charge paid for."""
    tx = dispute.transaction
    invoice, account = tx.invoice, tx.account or (tx.invoice.account if tx.invoice_id else None)
    description = ""
    if invoice is not None:
        reference = invoice.payment_reference
        description = reference if invoice.number in reference else f"Invoice {invoice.number}" + (f": {reference}" if reference else "")
        description += f", issued by {invoice.business_entity.public_name}"
    service_date = None
    if invoice is not None:
        issued = invoice.finalized_at or invoice.created_at
        service_date = timezone.localdate(issued) if issued else None
    return {
        "customer_name": account.name if account else "",
        "customer_email_address": account.email if account else "",
        "product_description": description,
        "service_date": service_date,
        "uncategorized_text": "",
    }
