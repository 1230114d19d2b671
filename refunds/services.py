"""The refund service: refund a payment through Stripe, then have the ledger book it (SPEC §8).

Flow of `refund_payment_balance`: validate (an amount Stripe can take, at most what is refundable) -> in a short
transaction with the charge locked, write a pending RefundRequest (it carries the idempotency key) -> call Stripe
with no lock held -> `apply_refund_request` asks the ledger to book the plan in one transaction. The refund webhooks
call the same `apply_refund_request` (through `apply_stripe_refund`): whoever comes first books the refund, the
other changes nothing. A request's status only moves forward (pending -> succeeded -> failed/canceled).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import ledger
from billing.audit import record_audit
from billing.constants import AuditAction, BalanceType
from billing.ledger import locks
from billing.ledger.sql import changed_fields, field_values, insert, update_fields
from billing.models import Balance
from billing.money import MoneyError, format_amount, from_minor_units, normalize_currency, to_decimal, to_minor_units, validate_precision
from payments.services.transactions import lock_transaction, object_id, stripe_time
from providers.stripe import gateway
from refunds.models import RefundRequest, RefundSource, RefundStatus
from refunds.selectors import (
    REFUNDABLE_PREFIXES,
    available_payment_total,
    plan_for_ledger,
    refund_request_of_stripe_refund,
    refundable_amount,
)

logger = logging.getLogger(__name__)

STRIPE_REFUND_STATUS = {"succeeded": RefundStatus.SUCCEEDED, "pending": RefundStatus.PENDING,
                        "requires_action": RefundStatus.PENDING, "failed": RefundStatus.FAILED, "canceled": RefundStatus.CANCELED}
# A refund's status only moves forward: a stale `refund.created` (pending) after `refund.updated` (succeeded)
# changes nothing; a succeeded refund can still fail (Stripe reports it), a failed or canceled one is final.
STATUS_RANK = {RefundStatus.PENDING: 0, RefundStatus.SUCCEEDED: 1, RefundStatus.FAILED: 2, RefundStatus.CANCELED: 2}
IDEMPOTENCY_WINDOW = timedelta(hours=23)  # Stripe keeps keys 24 h; stay clear of the edge


class RefundError(Exception):
    """A refund was refused; the message is a sentence for finance staff."""


class OverrefundNotConfirmed(RefundError):
    """The refund exceeds the available payment balances and needs an explicit confirmation."""


@dataclass
class RefundResult:
    request: RefundRequest
    refund_balances: Sequence[Balance] = field(default_factory=list)
    payment_balances: Sequence[Balance] = field(default_factory=list)
    # True when the idempotency key had been used already (a resubmitted form, a client retry): nothing new happened.
    already_requested: bool = False


# --- Validation ----------------------------------------------------------------------------------


def parse_refund_amount(raw, currency: str) -> Decimal:
    """The amount as the books and Stripe can both take it, or RefundError with the reason (e.g. 3.335 KWD: Stripe
    takes three-decimal currencies only in steps of 0.010)."""
    try:
        amount = validate_precision(to_decimal(raw), currency)
        if amount > 0:
            to_minor_units(amount, currency)
    except MoneyError as exc:
        raise RefundError(f"Invalid refund amount: {exc}") from None
    if amount <= 0:
        raise RefundError("The refund amount must be greater than zero.")
    return amount


def check_refundable_balance(balance: Balance) -> None:
    if balance.type != BalanceType.PAYMENT:
        raise RefundError("Only payment balances can be refunded.")
    if balance.locked:
        raise RefundError(f"This payment balance is locked ({balance.lock_reason}) and cannot be refunded.")
    if balance.is_pending:
        raise RefundError("This payment is still pending (e.g. a SEPA debit in flight) and cannot be refunded yet.")
    if balance.provider_setting_id is None or not balance.transaction_number.startswith(REFUNDABLE_PREFIXES):
        raise RefundError("This balance was not paid through Stripe, so it cannot be refunded here.")


def check_refund_amount(balance: Balance, amount: Decimal, *, confirm_overrefund: bool) -> tuple[Decimal, Decimal]:
    """What the preview and the refund both check: at most what Stripe can still refund on the charge, and an
    overrefund only when confirmed. Returns (still refundable, overrefund)."""
    setting, charge_id, currency = balance.provider_setting, balance.transaction_number, balance.currency
    refundable = refundable_amount(provider_setting=setting, charge_id=charge_id)
    if amount > refundable:
        raise RefundError(f"Refund amount {format_amount(amount, currency)} exceeds the {format_amount(refundable, currency)} "
                          f"still refundable on {charge_id}: Stripe cannot refund that much.")
    # The plan takes every available balance before it overrefunds: one SUM tells whether it will.
    overrefund = max(amount - available_payment_total(provider_setting=setting, charge_id=charge_id), Decimal("0"))
    if overrefund and not confirm_overrefund:
        raise OverrefundNotConfirmed(
            f"The available payment balances cover only {format_amount(amount - overrefund, currency)}; "
            f"refunding {format_amount(amount, currency)} creates an overrefund of {format_amount(overrefund, currency)}. "
            "Confirm the overrefund to go on.")
    return refundable, overrefund


# --- The service ---------------------------------------------------------------------------------


def refund_payment_balance(balance: Balance, *, amount, requested_by=None, confirm_overrefund: bool = False,
                           idempotency_key: str | None = None) -> RefundResult:
    """Refund `amount` of the charge behind `balance` through Stripe and book it (SPEC §8).

    A repeated call with the same `idempotency_key` (double submit, client retry) returns the first request's result
    and never calls Stripe twice. Nothing is written when the amount is refused.
    """
    balance = Balance.objects.select_related("provider_setting").get(pk=balance.pk)
    check_refundable_balance(balance)
    currency = normalize_currency(balance.currency)
    amount = parse_refund_amount(amount, currency)
    setting, charge_id = balance.provider_setting, balance.transaction_number

    if idempotency_key:
        existing = RefundRequest.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _result_of(existing, already_requested=True)

    with transaction.atomic():
        # Serialises refunds of one charge: two staff at once cannot both pass the check below.
        if lock_transaction(charge_id) is None:
            locks.lock_payment_balances_of_charge(setting_id=setting.pk, charge_id=charge_id)
        refundable, overrefund = check_refund_amount(balance, amount, confirm_overrefund=confirm_overrefund)
        try:
            with transaction.atomic():
                request = RefundRequest.objects.create(
                    balance=balance, provider_setting=setting, charge_id=charge_id, amount=amount, currency=currency,
                    source=RefundSource.SERVICE, requested_by=requested_by,
                    idempotency_key=idempotency_key or f"refund-{uuid.uuid4()}",
                )
        except IntegrityError:  # the same idempotency key won a race: that request is the one
            return _result_of(RefundRequest.objects.get(idempotency_key=idempotency_key), already_requested=True)
        _audit_refund_request(request, balance, refundable=refundable, overrefund=overrefund)

    stripe_refund = _create_stripe_refund(request)
    return apply_refund_request(request, stripe_refund)


def _audit_refund_request(request: RefundRequest, balance: Balance, *, refundable: Decimal, overrefund: Decimal) -> None:
    """Who asked for the refund (the charge's refundable amount before and after), and, apart, who confirmed an
    overrefund: written with the request, so a refused amount leaves neither."""
    label = f"Refund request {request.pk} on {request.charge_id}"
    common = {"obj": request, "user": request.requested_by, "balance": balance, "invoice": balance.invoice,
              "currency": request.currency, "label": label}
    record_audit(AuditAction.REFUND_REQUESTED, before=refundable, after=refundable - request.amount,
                 detail=f"Refund of {format_amount(request.amount, request.currency)} on {request.charge_id}.", **common)
    if overrefund:
        record_audit(AuditAction.OVERREFUND_CONFIRMED, before=request.amount - overrefund, after=request.amount,
                     detail=f"Overrefund of {format_amount(overrefund, request.currency)} confirmed: the available payment "
                            f"balances cover {format_amount(request.amount - overrefund, request.currency)}.", **common)


def _mark_failed_unapplied(request: RefundRequest, reason: str) -> None:
    RefundRequest.objects.filter(pk=request.pk, applied_at__isnull=True).update(
        status=RefundStatus.FAILED, failure_reason=reason, updated_at=timezone.now())


def _create_stripe_refund(request: RefundRequest) -> dict:
    """Call Stripe (no lock held). Refusals fail the request; an unknown outcome leaves it pending."""
    try:
        return gateway.create_refund(request.provider_setting, charge_id=request.charge_id, amount=request.amount,
                                     currency=request.currency, metadata={"refund_request_id": request.pk},
                                     idempotency_key=request.idempotency_key)
    except gateway.StripeGatewayError as exc:
        if exc.outcome_unknown:
            raise RefundError(f"{exc} The refund request is kept and will be checked with Stripe again automatically; "
                              "do not refund again.") from None
        _mark_failed_unapplied(request, str(exc))
        raise RefundError(f"Stripe refused the refund: {exc}") from None


def _result_of(request: RefundRequest, *, already_requested: bool = False) -> RefundResult:
    refunds = list(Balance.objects.filter(stripe_refund_id=request.stripe_refund_id, type=BalanceType.REFUND).order_by("id")) \
        if request.stripe_refund_id else []
    payments = list(Balance.objects.filter(pk__in=[b.refunds_balance_id for b in refunds if b.refunds_balance_id]).order_by("id"))
    return RefundResult(request=request, refund_balances=refunds, payment_balances=payments, already_requested=already_requested)


# --- Applying a Stripe refund to the books -------------------------------------------------------


def apply_refund_request(request: RefundRequest, stripe_refund: dict) -> RefundResult:
    """Book the refund once (SPEC §8 rules 2-6, 8), whoever comes first: service or webhook.
    In the caller's transaction if there is one (no savepoint: an error aborts it as a whole)."""
    with transaction.atomic(savepoint=False):
        lock_transaction(request.charge_id)  # lock order: transaction -> (request) -> balances
        request = RefundRequest.objects.select_for_update().select_related("provider_setting").get(pk=request.pk)
        return _apply_locked_request(request, stripe_refund)


def _apply_locked_request(request: RefundRequest, stripe_refund: dict) -> RefundResult:
    """The body of apply_refund_request, in its transaction, with the charge's transaction and the request locked."""
    status = STRIPE_REFUND_STATUS.get(stripe_refund.get("status") or "", RefundStatus.PENDING)
    as_read = field_values(request)
    request.stripe_refund_id = stripe_refund.get("id") or request.stripe_refund_id
    request.stripe_created = stripe_time(stripe_refund.get("created")) or request.stripe_created
    booking = None
    if request.applied_at is None:
        booking = ledger.book_refund(
            setting_id=request.provider_setting_id, charge_id=request.charge_id, amount=request.amount, currency=request.currency,
            date=request.stripe_created or timezone.now(), stripe_refund_id=request.stripe_refund_id or f"request-{request.pk}",
            planner=partial(plan_for_ledger, amount=request.amount, currency=request.currency, first_balance_id=request.balance_id),
            fallback_account=partial(_account_of_charge, request))
        request.applied_at = timezone.now()
    if STATUS_RANK[status] > STATUS_RANK[request.status]:
        request.status = status
        if status in (RefundStatus.FAILED, RefundStatus.CANCELED):
            request.failure_reason = f"Refund failed: {stripe_refund.get('failure_reason') or status}"
    changed = changed_fields(request, as_read)
    if changed:  # a redelivered or stale event changes nothing and writes nothing
        update_fields(request, [*changed, "updated_at"])
    if request.status in (RefundStatus.FAILED, RefundStatus.CANCELED):
        tx = lock_transaction(request.charge_id)
        ledger.record_failed_refund(
            setting_id=request.provider_setting_id, charge_id=request.charge_id,
            stripe_refund_id=request.stripe_refund_id or f"request-{request.pk}", amount=request.amount, currency=request.currency,
            date=request.stripe_created, reason=request.failure_reason.removeprefix("Refund failed: "), raw=stripe_refund,
            account_id=tx.account_id if tx else None, invoice_id=tx.invoice_id if tx else None)
    if booking is not None and booking.refund_ids:
        return RefundResult(request=request, refund_balances=LazyBalances(booking.refund_ids),
                            payment_balances=LazyBalances(booking.payment_ids))
    return _result_of(request)


def _account_of_charge(request: RefundRequest) -> int | None:
    """The account an overrefund half goes to when the charge has no payment balance at all."""
    if request.balance_id:
        return request.balance.account_id
    tx = lock_transaction(request.charge_id)
    return tx.account_id if tx else None


class LazyBalances(Sequence):
    """The balances just written, loaded only if someone reads them (a refund of a payment split into thousands of
    balances need not build thousands of objects that the admin never shows)."""

    def __init__(self, ids: list[int]):
        self.ids, self._rows = ids, None

    def _load(self) -> list[Balance]:
        if self._rows is None:
            self._rows = list(Balance.objects.filter(pk__in=self.ids).order_by("id"))
        return self._rows

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):
        return self._load()[index]

    def __iter__(self):
        return iter(self._load())


def legacy_refund_id(charge_id: str, refund: dict) -> str:
    """An id for a refund that older API versions embedded without one: its charge, amount and time identify it."""
    digest = hashlib.sha256(f"{charge_id}:{refund.get('amount')}:{refund.get('created')}".encode()).hexdigest()[:24]
    return f"re_legacy_{digest}"


def apply_stripe_refund(setting, refund: dict, *, charge_id: str = "") -> RefundRequest | None:
    """Apply a Stripe Refund seen in a webhook: ours by metadata, a known refund id, or a Dashboard refund.

    Idempotent in any order; never calls Stripe. The handler has synced the charge's payment first.
    """
    charge_id = object_id(refund.get("charge")) or charge_id
    if not charge_id:
        return None
    refund_id = refund.get("id") or legacy_refund_id(charge_id, refund)
    refund = {**refund, "id": refund_id}
    request = refund_request_of_stripe_refund(refund_id)
    if request is None:
        ours = str((refund.get("metadata") or {}).get("refund_request_id") or "")
        if ours.isdigit():
            request = RefundRequest.objects.filter(pk=int(ours), charge_id=charge_id).first()
    if request is None:
        return apply_dashboard_refund(setting, refund, refund_id, charge_id)
    return apply_refund_request(request, refund).request


def apply_dashboard_refund(setting, refund: dict, refund_id: str, charge_id: str) -> RefundRequest | None:
    """A refund made outside this service (Stripe Dashboard): its request is written and booked in one transaction.

    Two deliveries of the same refund at once are serialised by the charge's lock; the second finds the request
    (INSERT ... ON CONFLICT DO NOTHING returns nothing) and books nothing twice.
    """
    try:
        currency = normalize_currency(refund.get("currency") or "")
        amount = from_minor_units(int(refund.get("amount") or 0), currency)
    except (MoneyError, TypeError, ValueError):
        logger.error("Refund %s of charge %s has no usable amount or currency; not booked.", refund_id, charge_id)
        return None
    if amount <= 0:
        return None
    candidate = RefundRequest(
        balance=None, provider_setting=setting, charge_id=charge_id, currency=currency, amount=amount,
        source=RefundSource.DASHBOARD, idempotency_key=f"dashboard-{refund_id}", stripe_refund_id=refund_id,
    )
    with transaction.atomic(savepoint=False):  # in the caller's transaction if there is one (the refund event's)
        lock_transaction(charge_id)  # lock order: transaction -> request -> balances
        request = insert(candidate, unless_conflict=True)
        if request is None:  # written before (a redelivery, or another event of the same refund)
            request = RefundRequest.objects.select_for_update().get(stripe_refund_id=refund_id)
        request.provider_setting = setting
        return _apply_locked_request(request, refund).request


# --- Repair ----------------------------------------------------------------------------------------


def finish_pending_refund_request(request: RefundRequest) -> RefundRequest:
    """Finish a service request whose Stripe answer was lost (crash, timeout) or never sent."""
    if request.applied_at is not None or request.source != RefundSource.SERVICE or request.status != RefundStatus.PENDING:
        return request
    setting = request.provider_setting
    try:
        to_minor_units(request.amount, request.currency)
    except MoneyError as exc:  # written before amounts were checked against Stripe's rules: it can never be sent
        _mark_failed_unapplied(request, f"Stripe cannot take this amount: {exc}")
        return RefundRequest.objects.get(pk=request.pk)
    try:
        stripe_refund = None
        if timezone.now() - request.created_at > IDEMPOTENCY_WINDOW:
            # Stripe has forgotten the idempotency key: look for the refund before creating one.
            stripe_refund = gateway.find_refund_by_metadata(setting, charge_id=request.charge_id, key="refund_request_id",
                                                           value=str(request.pk))
        if stripe_refund is None:
            stripe_refund = gateway.create_refund(setting, charge_id=request.charge_id, amount=request.amount,
                                                  currency=request.currency, metadata={"refund_request_id": request.pk},
                                                  idempotency_key=request.idempotency_key)
    except gateway.StripeGatewayError as exc:
        if not exc.outcome_unknown:
            _mark_failed_unapplied(request, str(exc))
        logger.warning("Pending refund request %s not finished: %s", request.pk, exc)
        return RefundRequest.objects.get(pk=request.pk)
    return apply_refund_request(request, stripe_refund).request


def finish_pending_refund_requests(*, older_than: timedelta = timedelta(minutes=2)) -> int:
    """The beat task's body: every pending service request, each on its own; one that cannot be finished is logged and
    never stops the others."""
    pending = RefundRequest.objects.filter(source=RefundSource.SERVICE, status=RefundStatus.PENDING, applied_at__isnull=True,
                                           created_at__lt=timezone.now() - older_than).select_related("provider_setting")
    count = 0
    for request in pending:
        try:
            finish_pending_refund_request(request)
        except Exception:
            logger.exception("Pending refund request %s could not be finished; the others go on.", request.pk)
            continue
        count += 1
    return count
