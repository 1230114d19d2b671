"""PaymentIntents for invoices (hosted page and off-session) and the attempts that track them."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing.constants import InvoiceKind, InvoiceStatus
from billing.ledger import locks
from billing.models import Invoice
from billing.money import MoneyError, check_minimum_charge
from billing.selectors import open_amount
from payments.constants import IN_FLIGHT_ATTEMPT_STATUSES, AttemptSource, AttemptStatus, MethodType
from payments.models import PaymentAttempt, PaymentTransaction
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


class PaymentMovedOn(PaymentNotPossible):
    """The payment in flight is processing or has succeeded at Stripe: nothing may replace it."""


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
    known = getattr(invoice, "known_open_amount", None)  # read with the invoice by the page (one statement)
    amount = open_amount(invoice) if known is None else known
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

    At most one attempt is in flight per invoice; a double submit gets the same PaymentIntent back, a changed
    submit (another method, saving or not) replaces it and cancels it at Stripe, and once a payment is processing or
    has succeeded (its webhook may not have arrived yet) every further submit is refused (start_attempt).
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

    attempt, reused = start_attempt(invoice, setting=setting, amount=checkout.amount, method_type=method_type, save=save)
    if reused is not None:
        return {"client_secret": reused["client_secret"], "payment_intent_id": reused["id"]}
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
    record_payment_intent(attempt, payment_intent)
    return {"client_secret": payment_intent["client_secret"], "payment_intent_id": payment_intent["id"]}


def record_payment_intent(attempt: PaymentAttempt, payment_intent: dict) -> None:
    """Store the new PaymentIntent's id on its attempt. Another tab may have replaced the attempt while Stripe created
    the intent: then it is cancelled at once (or by the beat task) and the customer is told to reload."""
    with transaction.atomic():
        replaced = not PaymentAttempt.objects.filter(pk=attempt.pk, status__in=IN_FLIGHT_ATTEMPT_STATUSES).update(
            payment_intent_id=payment_intent["id"], updated_at=timezone.now())
        if replaced:
            PaymentAttempt.objects.filter(pk=attempt.pk).update(payment_intent_id=payment_intent["id"], stripe_cancel_pending=True)
    if not replaced:
        return
    attempt.payment_intent_id = payment_intent["id"]
    if not cancel_replaced_payment_intent(attempt):
        PaymentAttempt.objects.filter(pk=attempt.pk).update(stripe_cancel_pending=False)
    raise PaymentNotPossible(_("A newer payment was started for this invoice in another window. Please reload this page."))


# --- One attempt in flight per invoice ---------------------------------------------------------------
# lock -> decide (_decide_attempt); no lock -> Stripe (re-read and cancel the attempt in flight); lock -> write
# (_claim_attempt, which decides again and gives up when anything changed meanwhile, so the caller starts over).

def start_attempt(invoice: Invoice, *, setting, amount, method_type, save,
                  source=AttemptSource.PAGE) -> tuple[PaymentAttempt, dict | None]:
    """The attempt to pay `invoice` with, and its PaymentIntent when the one in flight is reused (else None: create one).

    Invariants: at most one attempt in flight per invoice (database constraint); an attempt in flight is re-read at
    Stripe before it is reused or replaced, and a replaced one is cancelled there, never while a row lock is held;
    when it has moved on (processing, succeeded, requires_capture), or an earlier attempt succeeded and its charge is
    not booked yet, PaymentNotPossible says so and nothing is written or created.
    """
    for _round in range(3):
        with transaction.atomic():
            locks.lock_invoices([invoice.pk])
            current, reuse = _decide_attempt(invoice, amount=amount, method_type=method_type, save=save, source=source)
        cancel_pending = False
        if current is not None and current.payment_intent_id:
            payment_intent = _reread_in_flight_payment_intent(current)
            if payment_intent["status"] == "canceled":
                continue  # cancelled elsewhere (Dashboard, another tab): its attempt is final now; decide again
            if reuse:
                return current, payment_intent
            cancel_pending = cancel_replaced_payment_intent(current)
        attempt = _claim_attempt(invoice, replacing=current, cancel_pending=cancel_pending, setting=setting, amount=amount,
                                 method_type=method_type, save=save, source=source)
        if attempt is not None:
            return attempt, None
    raise PaymentNotPossible("A payment for this invoice is already being started. Please wait a moment.")


def _decide_attempt(invoice, *, amount, method_type, save, source) -> tuple[PaymentAttempt | None, bool]:
    """The attempt in flight and whether it is reused as it is. Invoice row locked by the caller; no Stripe call."""
    if paid_attempt_awaiting_booking(invoice) is not None:
        raise PaymentMovedOn(already_paid_sentence(invoice))
    current = PaymentAttempt.objects.select_related("provider_setting").filter(
        invoice=invoice, status__in=IN_FLIGHT_ATTEMPT_STATUSES).first()
    if current is None:
        return None, False
    if current.status == AttemptStatus.PROCESSING:
        raise PaymentMovedOn(ALREADY_PROCESSING)
    same = (current.method_type, current.save_for_future, current.amount, current.source) == (method_type, save, amount, source)
    if same and source == AttemptSource.OFF_SESSION:
        raise PaymentNotPossible(ALREADY_PROCESSING)
    return current, same and bool(current.payment_intent_id)


def _reread_in_flight_payment_intent(attempt: PaymentAttempt) -> dict:
    """The attempt's PaymentIntent as Stripe has it now; PaymentNotPossible when it has moved on or cannot be read."""
    try:
        payment_intent = gateway.retrieve_payment_intent(attempt.provider_setting, attempt.payment_intent_id)
    except gateway.StripeGatewayError:
        # Without it we cannot tell whether the customer already paid in another window: never risk a second charge.
        raise PaymentNotPossible(_("We could not check the payment already started for this invoice. Nothing new was "
                                   "charged; please try again in a moment.")) from None
    _refuse_when_moved_on(attempt, payment_intent)
    return payment_intent


def _refuse_when_moved_on(attempt: PaymentAttempt, payment_intent: dict) -> None:
    status = payment_intent.get("status")
    if status in ("processing", "succeeded", "canceled"):
        sync_attempt_from_payment_intent(setting=attempt.provider_setting, payment_intent=payment_intent)
    if status == "processing":
        raise PaymentMovedOn(ALREADY_PROCESSING)
    if status in ("succeeded", "requires_capture"):
        raise PaymentMovedOn(already_paid_sentence(attempt.invoice))


def cancel_replaced_payment_intent(attempt: PaymentAttempt, *, idempotency_key: str = "") -> bool:
    """Cancel the PaymentIntent of an attempt being replaced, so that no open page can still confirm it. No row lock
    may be held. Returns True when Stripe failed and the cancel is still to do (the beat task retries); raises
    PaymentMovedOn when the intent moved on meanwhile (the customer paid in another window), PaymentNotPossible when
    Stripe refused the cancel and then could not say why."""
    setting = attempt.provider_setting
    try:
        gateway.cancel_payment_intent(setting, attempt.payment_intent_id,
                                      idempotency_key=idempotency_key or f"cancel-{attempt.idempotency_key}")
        return False
    except gateway.StripeRequestRefused:
        pass  # Stripe refuses to cancel an intent that is processing, succeeded or already canceled: which is it?
    except gateway.StripeGatewayError as exc:
        logger.error("Stripe failed to cancel PaymentIntent %s of the replaced attempt %s (%s); "
                     "payments.tasks.cancel_replaced_payment_intents retries.", attempt.payment_intent_id, attempt, exc)
        return True
    payment_intent = _reread_in_flight_payment_intent(attempt)
    _refuse_when_moved_on(attempt, payment_intent)
    if payment_intent["status"] != "canceled":  # refused for another reason: still live, so still to cancel
        logger.error("Stripe refused to cancel PaymentIntent %s (%s) of the replaced attempt %s; the beat task retries.",
                     attempt.payment_intent_id, payment_intent["status"], attempt)
        return True
    return False


def _claim_attempt(invoice, *, replacing, cancel_pending, setting, amount, method_type, save, source) -> PaymentAttempt | None:
    """Lock -> write: a new attempt in place of `replacing` (re-read and cancelled at Stripe by the caller), or None when
    the attempt in flight is no longer the one the caller decided about."""
    with transaction.atomic():
        locks.lock_invoices([invoice.pk])
        current, _ = _decide_attempt(invoice, amount=amount, method_type=method_type, save=save, source=source)
        if getattr(current, "pk", None) != getattr(replacing, "pk", None):
            return None
        if current is not None:
            current.status, current.last_error = AttemptStatus.CANCELED, "Replaced by a new attempt."
            current.stripe_cancel_pending = cancel_pending
            current.save(update_fields=["status", "last_error", "stripe_cancel_pending", "updated_at"])
        number = (PaymentAttempt.objects.filter(invoice=invoice).order_by("-number").values_list("number", flat=True).first() or 0) + 1
        try:
            with transaction.atomic():
                return PaymentAttempt.objects.create(
                    invoice=invoice, provider_setting=setting, number=number, source=source, amount=amount, currency=invoice.currency,
                    idempotency_key=f"pi-{invoice.pk}-{number}", method_type=method_type, save_for_future=save)
        except IntegrityError:
            raise PaymentNotPossible("A payment for this invoice is already being started. Please wait a moment.") from None


def paid_attempt_awaiting_booking(invoice: Invoice) -> PaymentAttempt | None:
    """An attempt Stripe says succeeded whose charge the books have not seen yet (its webhook is on its way): the invoice
    is paid though it still looks open. Once the charge is booked, a later reopening (a lost dispute) may be paid again."""
    booked = PaymentTransaction.objects.filter(provider_setting=OuterRef("provider_setting"),
                                               payment_intent_id=OuterRef("payment_intent_id"))
    return (PaymentAttempt.objects.filter(invoice=invoice, status=AttemptStatus.SUCCEEDED).exclude(payment_intent_id="")
            .exclude(Exists(booked)).first())


ALREADY_PROCESSING = gettext_lazy("A payment for this invoice is already being processed.")


def already_paid_sentence(invoice: Invoice) -> str:
    return _("Invoice %(number)s has already been paid: the payment is being confirmed. Please do not pay again; "
             "you will receive a confirmation.") % {"number": invoice.number}


def cancel_pending_replaced_payment_intents() -> dict[str, int]:
    """Beat task: retry cancelling the PaymentIntents of replaced attempts that Stripe failed to cancel at the time."""
    outcomes: dict[str, int] = {}
    for attempt in PaymentAttempt.objects.filter(stripe_cancel_pending=True).select_related("provider_setting", "invoice"):
        try:
            # A key of its own per try: Stripe replays a key's first answer, even a 500, and a cancel is idempotent anyway.
            still_pending = cancel_replaced_payment_intent(attempt, idempotency_key=f"cancel-{attempt.idempotency_key}-{uuid.uuid4().hex}")
        except PaymentMovedOn:
            still_pending = False  # it went through before the cancel: nothing left to cancel, the webhooks book it
        except PaymentNotPossible:
            still_pending = True
        if still_pending:
            outcomes["pending"] = outcomes.get("pending", 0) + 1
            continue
        PaymentAttempt.objects.filter(pk=attempt.pk).update(stripe_cancel_pending=False, updated_at=timezone.now())
        outcomes["canceled"] = outcomes.get("canceled", 0) + 1
    return outcomes


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
