"""PaymentIntents for invoices (hosted page and off-session) and the attempts that track them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing.constants import InvoiceKind, InvoiceStatus
from billing.ledger import locks
from billing.models import Invoice
from billing.money import MoneyError, check_minimum_charge
from billing.selectors import open_amount
from payments.constants import IN_FLIGHT_ATTEMPT_STATUSES, AttemptSource, AttemptStatus, MethodType
from payments.models import PaymentAttempt
from providers.selectors import NoProviderSetting, PaymentReferenceError, check_payment_reference, setting_for_invoice
from providers.stripe import gateway

PI_STATUS_TO_ATTEMPT = {
    "processing": AttemptStatus.PROCESSING,
    "succeeded": AttemptStatus.SUCCEEDED,
    "canceled": AttemptStatus.CANCELED,
}
FINAL_ATTEMPT_STATUSES = (AttemptStatus.SUCCEEDED, AttemptStatus.FAILED, AttemptStatus.CANCELED)


def attempt_status_for(payment_intent: dict) -> str | None:
    status = payment_intent.get("status")
    if status == "requires_payment_method" and payment_intent.get("last_payment_error"):
        return AttemptStatus.FAILED  # the attempt failed; a retry is a new attempt
    return PI_STATUS_TO_ATTEMPT.get(status)


def sync_attempt_from_payment_intent(*, setting, payment_intent: dict) -> int:
    """Bring the attempt of this PaymentIntent up to date; a final attempt frees the invoice's in-flight slot."""
    new_status = attempt_status_for(payment_intent)
    if new_status is None or not payment_intent.get("id"):
        return 0
    error = (payment_intent.get("last_payment_error") or {}).get("message") or ""
    queryset = PaymentAttempt.objects.filter(provider_setting=setting, payment_intent_id=payment_intent["id"]).exclude(
        Q(status__in=FINAL_ATTEMPT_STATUSES) | Q(status=new_status))
    # A succeeded attempt never goes back; processing never overrides a final state (excluded above).
    return queryset.update(status=new_status, last_error=error, updated_at=timezone.now())


# --- The hosted payment page ---------------------------------------------------------------------




logger = logging.getLogger(__name__)

# What the customer sees for future payments (SPEC §5 truth table).
FUTURE_HIDDEN = "hidden"  # no option, nothing saved
FUTURE_OPTIONAL = "optional"  # shown unchecked, may opt in
FUTURE_DEFAULT_ON = "default_on"  # shown checked, may opt out
FUTURE_FORCED = "forced"  # shown checked and disabled, always saved


class PaymentNotPossible(Exception):
    """The invoice cannot be paid online now; the message is a polite sentence for the customer."""


@dataclass
class Checkout:
    invoice: Invoice
    setting: object
    amount: Decimal
    currency: str
    method_types: list[str]
    future_payments: str


def future_payments_mode(setting, *, already_opted_in: bool = False) -> str:
    if not setting.enable_future_payments:
        return FUTURE_HIDDEN
    if already_opted_in:  # once opted in, "changeable" no longer applies
        return FUTURE_FORCED
    if setting.future_payments_active and not setting.future_payments_changeable:
        return FUTURE_FORCED
    if setting.future_payments_active:
        return FUTURE_DEFAULT_ON
    return FUTURE_OPTIONAL


def decide_save_for_future(mode: str, method_type: str, requested: bool) -> bool:
    if method_type not in (MethodType.CARD, MethodType.SEPA_DEBIT):  # Stripe cannot save Alipay
        return False
    if mode == FUTURE_HIDDEN:
        return False
    if mode == FUTURE_FORCED:
        return True
    return bool(requested)


def checkout_for(invoice: Invoice) -> Checkout:
    """Everything the page needs, or PaymentNotPossible with the reason. Calls no Stripe API."""
    if invoice.kind != InvoiceKind.INVOICE:
        raise PaymentNotPossible(f"{invoice.number} is a credit note: there is nothing to pay.")
    if invoice.status == InvoiceStatus.DRAFT:
        raise PaymentNotPossible(f"Invoice {invoice.number} is not issued yet.")
    if invoice.status == InvoiceStatus.CANCELLED:
        raise PaymentNotPossible(f"Invoice {invoice.number} was cancelled: there is nothing to pay.")
    amount = open_amount(invoice)
    if invoice.status == InvoiceStatus.PAID or amount <= 0:
        raise PaymentNotPossible(f"Invoice {invoice.number} is already paid. Thank you!")
    try:
        setting = setting_for_invoice(invoice)
        check_payment_reference(invoice)
    except (NoProviderSetting, PaymentReferenceError):
        raise PaymentNotPossible(f"Invoice {invoice.number} cannot be paid online at the moment. "
                                 f"Please contact {invoice.business_entity.support_email or 'us'}.") from None
    methods = [m for m in setting.payment_method_types if m != MethodType.SEPA_DEBIT or invoice.currency == "EUR"]
    if not methods:
        raise PaymentNotPossible(f"Invoice {invoice.number} cannot be paid online in {invoice.currency}.")
    opted_in = setting.enable_future_payments and invoice.account.payment_instruments.filter(provider_setting=setting,
                                                                                              active=True).exists()
    return Checkout(invoice=invoice, setting=setting, amount=amount, currency=invoice.currency, method_types=methods,
                    future_payments=future_payments_mode(setting, already_opted_in=opted_in))


def create_payment_for_invoice(invoice: Invoice, *, method_type: str, save_for_future: bool, return_url: str | None = None) -> dict:
    """Deferred-intent mode: create the PaymentIntent when the customer submits. Returns client_secret and id.

    At most one attempt is in flight per invoice; a double submit gets the same PaymentIntent back.
    """
    from payments.services.instruments import get_or_create_stripe_customer

    checkout = checkout_for(invoice)
    if method_type not in checkout.method_types:
        raise PaymentNotPossible("This payment method is not available for this invoice.")
    try:
        check_minimum_charge(checkout.amount, checkout.currency)
    except MoneyError as exc:
        raise PaymentNotPossible(f"This invoice cannot be paid online: {exc}") from None
    save = decide_save_for_future(checkout.future_payments, method_type, save_for_future)
    setting = checkout.setting
    customer = get_or_create_stripe_customer(setting=setting, account=invoice.account) if save else None

    attempt, reuse = _claim_attempt(invoice, setting=setting, amount=checkout.amount, method_type=method_type, save=save)
    if reuse:
        payment_intent = gateway.retrieve_payment_intent(setting, attempt.payment_intent_id)
        return {"client_secret": payment_intent["client_secret"], "payment_intent_id": payment_intent["id"]}
    metadata = {"invoice_id": invoice.pk, "invoice_number": invoice.number, "account_id": invoice.account_id,
                "provider_setting_id": setting.pk, "attempt": attempt.number}
    try:
        payment_intent = gateway.create_payment_intent(
            setting, amount=checkout.amount, currency=checkout.currency, idempotency_key=attempt.idempotency_key,
            payment_method_types=[method_type], metadata=metadata, description=invoice.payment_reference,
            customer=customer.stripe_customer_id if customer else None, setup_future_usage="off_session" if save else None,
        )
    except gateway.StripeGatewayError as exc:
        if not exc.outcome_unknown:
            PaymentAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.FAILED, last_error=str(exc))
        raise PaymentNotPossible(f"The payment could not be started: {exc}") from None
    PaymentAttempt.objects.filter(pk=attempt.pk).update(payment_intent_id=payment_intent["id"])
    return {"client_secret": payment_intent["client_secret"], "payment_intent_id": payment_intent["id"]}


def _claim_attempt(invoice, *, setting, amount, method_type, save, source=AttemptSource.PAGE) -> tuple[PaymentAttempt, bool]:
    """The in-flight attempt (reused when it asks for the same), or a new one. Invoice row locked; no Stripe call."""
    with transaction.atomic():
        locks.lock_invoices([invoice.pk])
        current = PaymentAttempt.objects.filter(invoice=invoice, status__in=IN_FLIGHT_ATTEMPT_STATUSES).first()
        if current is not None:
            if current.status == AttemptStatus.PROCESSING:
                raise PaymentNotPossible("A payment for this invoice is already being processed.")
            same = (current.method_type, current.save_for_future, current.amount, current.source) == (method_type, save, amount, source)
            if same and current.payment_intent_id:
                return current, True
            if same and source == AttemptSource.OFF_SESSION:
                raise PaymentNotPossible("A payment for this invoice is already being processed.")
            # The customer changed their mind (method, saving): the old intent is abandoned.
            current.status, current.last_error = AttemptStatus.CANCELED, "Replaced by a new attempt."
            current.save(update_fields=["status", "last_error", "updated_at"])
        number = (PaymentAttempt.objects.filter(invoice=invoice).order_by("-number").values_list("number", flat=True).first() or 0) + 1
        try:
            attempt = PaymentAttempt.objects.create(
                invoice=invoice, provider_setting=setting, number=number, source=source, amount=amount, currency=invoice.currency,
                idempotency_key=f"pi-{invoice.pk}-{number}", method_type=method_type, save_for_future=save)
        except IntegrityError:
            raise PaymentNotPossible("A payment for this invoice is already being started. Please wait a moment.") from None
    return attempt, False


@dataclass
class PaymentOutcome:
    state: str  # succeeded | processing | failed | pending
    message: str
    payment_intent: dict
    other_method: bool = False  # a failed SEPA debit: the customer is pointed to another method, not the same again


# What a customer reads when their bank refused a SEPA debit (Stripe's failure codes for sepa_debit charges).
SEPA_FAILURE_REASONS = {
    "insufficient_funds": gettext_lazy("the account did not have sufficient funds."),
    "account_closed": gettext_lazy("the bank account is closed."),
    "no_account": gettext_lazy("the bank could not find this account."),
    "invalid_account_number": gettext_lazy("the bank could not find this account."),
    "branch_does_not_exist": gettext_lazy("the bank could not find this account."),
    "bank_account_restricted": gettext_lazy("the bank does not allow direct debits from this account."),
    "debit_not_authorized": gettext_lazy("the account holder did not authorise the debit."),
    "incorrect_account_holder_name": gettext_lazy("the account holder's name does not match the account."),
    "bank_ownership_changed": gettext_lazy("the account has moved to another bank."),
}


def _failure_facts(payment_intent: dict) -> tuple[str, str, str]:
    """(method type, failure code, Stripe's message) of the PaymentIntent's failed attempt."""
    error = payment_intent.get("last_payment_error") or {}
    method = error.get("payment_method") if isinstance(error.get("payment_method"), dict) else {}
    method_type = (method or {}).get("type") or ""
    code = error.get("decline_code") or error.get("code") or ""
    charge = payment_intent.get("latest_charge")
    if isinstance(charge, dict):  # the charge names the bank's reason; the PaymentIntent's error may be generic
        code = charge.get("failure_code") or code
        method_type = method_type or (charge.get("payment_method_details") or {}).get("type") or ""
    return method_type, code, error.get("message") or ""


def payment_outcome(invoice: Invoice, payment_intent_id: str, *, language: str = "en") -> PaymentOutcome:
    """What the return page shows: re-read from Stripe, never from the browser's word. Amounts in the page's language."""
    from payments.formatting import format_money

    attempt = PaymentAttempt.objects.filter(invoice=invoice, payment_intent_id=payment_intent_id).select_related("provider_setting").first()
    if attempt is None:
        raise PaymentNotPossible(_("We could not find this payment. If you were charged, you will receive a confirmation."))
    try:
        payment_intent = gateway.retrieve_payment_intent(attempt.provider_setting, payment_intent_id, expand_latest_charge=True)
    except gateway.StripeGatewayError as exc:
        raise PaymentNotPossible(_("We could not check the payment right now: %(error)s") % {"error": exc}) from None
    sync_attempt_from_payment_intent(setting=attempt.provider_setting, payment_intent=payment_intent)
    status = payment_intent.get("status")
    facts = {"amount": format_money(attempt.amount, invoice.currency, language), "number": invoice.number}
    if status == "succeeded":
        return PaymentOutcome("succeeded", _("Your payment of %(amount)s for invoice %(number)s succeeded.") % facts, payment_intent)
    if status == "processing":
        return PaymentOutcome("processing", _("Your payment of %(amount)s for invoice %(number)s is being processed. "
                                              "For SEPA Direct Debit this takes a few business days.") % facts, payment_intent)
    method_type, code, stripe_message = _failure_facts(payment_intent)
    if (method_type or attempt.method_type) == MethodType.SEPA_DEBIT and (code or stripe_message):
        reason = SEPA_FAILURE_REASONS.get(code) or stripe_message or _("the bank refused it.")
        return PaymentOutcome("failed", _("The SEPA Direct Debit of %(amount)s for invoice %(number)s failed: %(reason)s "
                                          "No money was taken. Please pay with another method.") % {**facts, "reason": reason},
                              payment_intent, other_method=True)
    if stripe_message:
        return PaymentOutcome("failed", _("The payment did not go through: %(reason)s") % {"reason": stripe_message}, payment_intent)
    return PaymentOutcome("pending", _("The payment is not complete yet. You can try again below."), payment_intent)
