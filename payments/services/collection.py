"""Off-session collection of due invoices with saved instruments, and payment-link emails."""

from __future__ import annotations

import logging

from django.utils import timezone

from billing.audit import record_audit
from billing.constants import AuditAction, InvoiceKind, InvoiceStatus
from billing.models import Invoice
from billing.money import format_amount
from billing.selectors import open_amount
from payments.constants import AttemptSource, AttemptStatus
from payments.emails import customer_email
from payments.models import PaymentAttempt
from payments.selectors import active_instrument, payment_link_for
from payments.services.checkout import PaymentNotPossible, checkout_for, start_attempt
from payments.services.instruments import flag_instrument
from providers.stripe import gateway

logger = logging.getLogger(__name__)


def send_payment_link(invoice: Invoice, *, reason: str = "", user=None) -> None:
    """Email the customer a payment link (plain text and HTML, branded per business entity, in their language).
    The audit trail records who sent it (`user` None: the system, e.g. after a failed off-session payment)."""
    if not invoice.account.email:
        raise PaymentNotPossible(f"{invoice.account} has no email address.")
    checkout = checkout_for(invoice)
    customer_email(account=invoice.account, entity=invoice.business_entity, template="payments/email/payment_link",
                   context={"invoice": invoice, "link": payment_link_for(invoice), "reason": reason,
                            "amount": checkout.amount}).send()
    record_audit(AuditAction.PAYMENT_LINK_EMAILED, obj=invoice, user=user, after=checkout.amount, currency=checkout.currency,
                 detail=f"Sent to {invoice.account.email}." + (f" Reason: {reason}" if reason else ""))


def collect_invoice_off_session(invoice: Invoice, *, user=None) -> str:
    """Charge the account's most recently saved active instrument. Returns what happened, in a word; an attempt
    that reached Stripe is written to the audit trail with its outcome (`user` None: the scheduled collection)."""
    before = open_amount(invoice)
    outcome, amount, currency = _collect_off_session(invoice, user=user)
    if amount is not None:
        record_audit(AuditAction.OFF_SESSION_ATTEMPTED, obj=invoice, user=user, before=before, currency=currency,
                     detail=f"Charged {format_amount(amount, currency)} to the saved payment method: {outcome.replace('_', ' ')}.")
    return outcome


def _collect_off_session(invoice: Invoice, *, user=None) -> tuple[str, object, str]:
    checkout = checkout_for(invoice)
    setting = checkout.setting
    instrument = active_instrument(account=invoice.account, provider_setting=setting)
    if instrument is None or instrument.stripe_customer is None:
        return "no_instrument", None, ""
    if instrument.needs_attention:
        return "instrument_needs_attention", None, ""
    attempt, _ = start_attempt(invoice, setting=setting, amount=checkout.amount, method_type=instrument.method_type, save=False,
                               source=AttemptSource.OFF_SESSION)
    PaymentAttempt.objects.filter(pk=attempt.pk).update(instrument=instrument)
    metadata = {"invoice_id": invoice.pk, "invoice_number": invoice.number, "account_id": invoice.account_id,
                "provider_setting_id": setting.pk, "attempt": attempt.number, "off_session": "true"}
    try:
        payment_intent = gateway.create_payment_intent(
            setting, amount=checkout.amount, currency=checkout.currency, idempotency_key=attempt.idempotency_key,
            payment_method_types=[instrument.method_type], metadata=metadata, description=invoice.payment_reference,
            customer=instrument.stripe_customer.stripe_customer_id, payment_method=instrument.stripe_payment_method_id,
            off_session=True, confirm=True,
        )
    except gateway.PaymentDeclined as exc:
        reason = "The bank requires the customer to authenticate this payment." if exc.requires_authentication else str(exc)
        PaymentAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.FAILED, last_error=reason,
                                                            payment_intent_id=(exc.payment_intent or {}).get("id", ""))
        flag_instrument(instrument, reason=reason)
        try:
            send_payment_link(invoice, reason=reason, user=user)
        except PaymentNotPossible:
            logger.warning("Off-session payment of %s failed and the account has no email.", invoice.number)
        return ("authentication_required" if exc.requires_authentication else "declined"), checkout.amount, checkout.currency
    except gateway.StripeGatewayError as exc:
        if not exc.outcome_unknown:
            PaymentAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.FAILED, last_error=str(exc))
        return "error", checkout.amount, checkout.currency  # unknown outcome: the attempt stays in flight; the webhooks tell the truth
    status = {"succeeded": AttemptStatus.SUCCEEDED, "processing": AttemptStatus.PROCESSING}.get(payment_intent["status"], attempt.status)
    PaymentAttempt.objects.filter(pk=attempt.pk).update(payment_intent_id=payment_intent["id"], status=status)
    return payment_intent["status"], checkout.amount, checkout.currency


def due_invoices_with_instruments():
    return (Invoice.objects.filter(kind=InvoiceKind.INVOICE, status=InvoiceStatus.OPEN, due_date__lte=timezone.localdate(),
                                   account__payment_instruments__active=True, account__payment_instruments__needs_attention=False)
            .distinct().select_related("account", "business_entity"))


def collect_due_invoices() -> dict[str, int]:
    results: dict[str, int] = {}
    for invoice in due_invoices_with_instruments():
        try:
            outcome = collect_invoice_off_session(invoice)
        except PaymentNotPossible as exc:
            outcome = "skipped"
            logger.info("Off-session collection skipped %s: %s", invoice.number, exc)
        results[outcome] = results.get(outcome, 0) + 1
    return results
