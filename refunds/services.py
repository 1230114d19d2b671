"""The refund service: refund a payment through Stripe, then split and lock balances (SPEC §8).

Flow of `refund_payment_balance`: validate -> in a short transaction with the charge locked, check
what is still refundable and write a pending RefundRequest (it carries the idempotency key) ->
call Stripe with no lock held -> `apply_refund_request` writes the plan's balances in one
transaction. The refund webhooks call the same `apply_refund_request` (through
`apply_stripe_refund`): whoever comes first applies the plan, the other changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing.constants import BalanceStatus, BalanceType, LockReason, PaymentEntryKind
from billing.models import Balance, PaymentEntry
from billing.money import MoneyError, format_amount, from_minor_units, normalize_currency, to_decimal, validate_precision
from billing.sql import changed_fields, columns, field_values, from_row, id_batches, insert, prepared_cursor, update_fields
from payments.selectors import lock_transaction
from payments.services.transactions import stripe_time
from providers.stripe import gateway
from refunds.models import RefundRequest, RefundSource, RefundStatus
from refunds.selectors import (
    REFUNDABLE_PREFIXES,
    available_payment_total,
    charge_payment_balances,
    lock_plan_balances,
    refund_plan,
    refund_request_of_stripe_refund,
    refundable_amount,
)

logger = logging.getLogger(__name__)

STRIPE_REFUND_STATUS = {"succeeded": RefundStatus.SUCCEEDED, "pending": RefundStatus.PENDING,
                        "requires_action": RefundStatus.PENDING, "failed": RefundStatus.FAILED, "canceled": RefundStatus.CANCELED}
IDEMPOTENCY_WINDOW = timedelta(hours=23)  # Stripe keeps keys 24 h; stay clear of the edge


class RefundError(Exception):
    """A refund was refused; the message is a sentence for finance staff."""


class OverrefundNotConfirmed(RefundError):
    """The refund exceeds the available payment balances and needs an explicit confirmation."""


@dataclass
class RefundResult:
    request: RefundRequest
    refund_balances: Sequence[Balance] = field(default_factory=list)  # LazyBalances after a fresh write
    payment_balances: list[Balance] = field(default_factory=list)


# --- Validation ----------------------------------------------------------------------------------


def parse_refund_amount(raw, currency: str) -> Decimal:
    try:
        amount = validate_precision(to_decimal(raw), currency)
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


# --- The service ---------------------------------------------------------------------------------


def refund_payment_balance(balance: Balance, *, amount, requested_by=None, confirm_overrefund: bool = False,
                           idempotency_key: str | None = None) -> RefundResult:
    """Refund `amount` of the charge behind `balance` through Stripe and book it (SPEC §8).

    A repeated call with the same `idempotency_key` (double submit, client retry) returns the first
    request's result and never calls Stripe twice.
    """
    balance = Balance.objects.select_related("provider_setting").get(pk=balance.pk)
    check_refundable_balance(balance)
    currency = normalize_currency(balance.currency)
    amount = parse_refund_amount(amount, currency)
    setting, charge_id = balance.provider_setting, balance.transaction_number

    if idempotency_key:
        existing = RefundRequest.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _result_of(existing)

    with transaction.atomic():
        # Serialises refunds of one charge: two staff at once cannot both pass the check below.
        if lock_transaction(charge_id) is None:
            list(charge_payment_balances(provider_setting=setting, charge_id=charge_id, available_only=False)
                 .select_for_update().values_list("id", flat=True))  # locks the rows without loading them
        refundable = refundable_amount(provider_setting=setting, charge_id=charge_id)
        if amount > refundable:
            raise RefundError(f"Refund amount {format_amount(amount, currency)} exceeds the "
                              f"{format_amount(refundable, currency)} still refundable on {charge_id}.")
        # The plan takes every available balance before it overrefunds: one SUM tells whether it will.
        overrefund = max(amount - available_payment_total(provider_setting=setting, charge_id=charge_id), Decimal("0"))
        if overrefund and not confirm_overrefund:
            raise OverrefundNotConfirmed(
                f"The available payment balances cover only {format_amount(amount - overrefund, currency)}; "
                f"refunding {format_amount(amount, currency)} creates an overrefund of {format_amount(overrefund, currency)}. "
                "Confirm the overrefund to go on.")
        try:
            with transaction.atomic():
                request = RefundRequest.objects.create(
                    balance=balance, provider_setting=setting, charge_id=charge_id, amount=amount, currency=currency,
                    source=RefundSource.SERVICE, requested_by=requested_by,
                    idempotency_key=idempotency_key or f"refund-{uuid.uuid4()}",
                )
        except IntegrityError:  # the same idempotency key won a race: that request is the one
            return _result_of(RefundRequest.objects.get(idempotency_key=idempotency_key))

    stripe_refund = _create_stripe_refund(request)
    return apply_refund_request(request, stripe_refund)


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
        RefundRequest.objects.filter(pk=request.pk, applied_at__isnull=True).update(
            status=RefundStatus.FAILED, failure_reason=str(exc), updated_at=timezone.now())
        raise RefundError(f"Stripe refused the refund: {exc}") from None


def _result_of(request: RefundRequest) -> RefundResult:
    refunds = list(Balance.objects.filter(stripe_refund_id=request.stripe_refund_id, type=BalanceType.REFUND)) \
        if request.stripe_refund_id else []
    payments = list(Balance.objects.filter(pk__in=[b.refunds_balance_id for b in refunds if b.refunds_balance_id]))
    return RefundResult(request=request, refund_balances=refunds, payment_balances=payments)


# --- Applying a Stripe refund to the books -------------------------------------------------------


def apply_refund_request(request: RefundRequest, stripe_refund: dict) -> RefundResult:
    """Write the refund's balances once (SPEC §8 rules 2-6, 8), whoever comes first: service or webhook.
    In the caller's transaction if there is one (no savepoint: an error aborts it as a whole)."""
    with transaction.atomic(savepoint=False):
        lock_transaction(request.charge_id)  # lock order: transaction -> balances
        request = RefundRequest.objects.select_for_update().select_related("provider_setting").get(pk=request.pk)
        return _apply_locked_request(request, stripe_refund)


def _apply_locked_request(request: RefundRequest, stripe_refund: dict) -> RefundResult:
    """The body of apply_refund_request, in its transaction, with the charge's transaction and the request locked."""
    status = STRIPE_REFUND_STATUS.get(stripe_refund.get("status") or "", RefundStatus.PENDING)
    as_read = field_values(request)
    if request.applied_at is None:
        refund_balances, payment_balances = _write_plan(request, stripe_refund)
        request.applied_at = timezone.now()
    else:
        refund_balances, payment_balances = [], []
    request.stripe_refund_id = stripe_refund.get("id") or request.stripe_refund_id
    request.stripe_created = stripe_time(stripe_refund.get("created")) or request.stripe_created
    if request.status not in (RefundStatus.FAILED, RefundStatus.CANCELED):  # failed and canceled are final
        request.status = status
    changed = changed_fields(request, as_read)
    if changed:  # a redelivered event changes nothing and writes nothing
        update_fields(request, [*changed, "updated_at"])
    if status in (RefundStatus.FAILED, RefundStatus.CANCELED):
        _record_failed_refund(request, stripe_refund, status)
    if refund_balances:
        return RefundResult(request=request, refund_balances=refund_balances, payment_balances=payment_balances)
    return _result_of(request)


def _write_plan(request: RefundRequest, stripe_refund: dict) -> tuple[Sequence[Balance], Sequence[Balance]]:
    """Splits, refund balances and locks in a constant number of queries (bulk), whatever the number of balances.

    The available balances are locked and read as three columns each; only a balance that splits (at most one,
    the plan's last step) is loaded as a model.
    """
    setting = request.provider_setting
    refund_id = stripe_refund.get("id") or ""
    date = stripe_time(stripe_refund.get("created")) or timezone.now()
    balances = lock_plan_balances(provider_setting_id=setting.pk, charge_id=request.charge_id)
    plan = refund_plan(provider_setting=setting, charge_id=request.charge_id, amount=request.amount, currency=request.currency,
                       first_balance=request.balance, balances=balances)
    refunded_ids: list[int] = []  # payment balances (whole, or the split-off part) that the refund covers
    whole_ids: list[int] = []  # those of them that must still be locked
    for step in plan.steps:
        if step.splits:
            original = _keep_unrefunded_part(step.balance.pk, step.balance.amount + step.refund_amount)  # locked above
            part = insert(Balance(
                account_id=original.account_id, invoice_id=original.invoice_id, type=BalanceType.PAYMENT, amount=-step.refund_amount,
                currency=original.currency, date=original.date, transaction_number=original.transaction_number,
                provider_setting_id=original.provider_setting_id, split_from=original, status=original.status,
                locked=True, lock_reason=LockReason.REFUND))
            refunded_ids.append(part.pk)
        else:
            refunded_ids.append(step.balance.pk)
            whole_ids.append(step.balance.pk)
    lock_for_refund(whole_ids)
    if plan.overrefund:
        account_id = _account_for_charge(request)
        if account_id is None:
            _record_unbookable_refund(request, stripe_refund)
        else:
            refunded_ids.append(Balance.objects.create(
                account_id=account_id, invoice=None, type=BalanceType.PAYMENT, amount=-plan.overrefund, currency=request.currency,
                date=date, transaction_number=request.charge_id, provider_setting=setting, is_overrefund=True,
                locked=True, lock_reason=LockReason.REFUND).pk)
    refund_ids = insert_refund_balances(refunded_ids, date=date, charge_id=request.charge_id, setting_id=setting.pk, refund_id=refund_id)
    return LazyBalances(refund_ids), LazyBalances(sorted(refunded_ids))


def _keep_unrefunded_part(balance_id: int, amount: Decimal) -> Balance:
    """The split balance keeps `amount`, the part not refunded (it stays unlocked); returns its row as updated.
    One UPDATE ... RETURNING instead of a read and a write; `amount` is computed in Python, exact on every database."""
    table = Balance._meta.db_table
    with prepared_cursor() as cursor:  # names from the model, values are parameters
        cursor.execute(f"UPDATE {table} SET amount = %s WHERE id = %s RETURNING {columns(Balance)}",  # noqa: S608
                       [Balance._meta.get_field("amount").get_db_prep_save(amount, connection), balance_id])
        return from_row(Balance, cursor.fetchone())


def lock_for_refund(balance_ids: list[int]) -> None:
    """Lock whole payment balances as refunded: one UPDATE, whatever the number (the ORM's IN list binds one
    parameter per id)."""
    if not balance_ids:
        return
    table = Balance._meta.db_table
    with connection.cursor() as cursor:
        for condition, params in id_batches(balance_ids):
            cursor.execute(f"UPDATE {table} SET locked = %s, lock_reason = %s WHERE id {condition}",  # noqa: S608 - model names
                           [True, LockReason.REFUND, *params])


class LazyBalances(Sequence):
    """The refund balances just written, loaded only if someone reads them (a refund of a payment split into
    thousands of balances need not build thousands of objects that the admin never shows)."""

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


def insert_refund_balances(payment_ids: list[int], *, date, charge_id: str, setting_id: int, refund_id: str) -> list[int]:
    """One INSERT ... SELECT: a locked refund balance mirroring each payment balance (SPEC §8 rule 4). Returns the ids."""
    if not payment_ids:
        return []
    values = {"type": BalanceType.REFUND, "date": date, "charge": charge_id, "setting": setting_id, "reason": LockReason.REFUND,
              "refund": refund_id, "status": BalanceStatus.CONFIRMED, "now": timezone.now()}
    computed = {  # column -> SQL over the payment row `p`, or the name of a parameter in `values`
        "account_id": "p.account_id", "invoice_id": "NULL", "type": "type", "amount": "-p.amount", "currency": "p.currency",
        "date": "date", "transaction_number": "charge", "provider_setting_id": "setting", "locked": "TRUE",
        "lock_reason": "reason", "split_from_id": "NULL", "refunds_balance_id": "p.id", "stripe_refund_id": "refund",
        "is_overrefund": "FALSE", "status": "status", "note": "''", "created_at": "now",
    }
    columns = [field.column for field in Balance._meta.concrete_fields if not field.primary_key]
    missing = set(columns) - set(computed)
    if missing:  # a new column must be decided here, not silently defaulted
        raise RuntimeError(f"insert_refund_balances does not know the Balance columns {sorted(missing)}")
    selected, params = [], []
    for column in columns:
        expression = computed[column]
        if expression in values:
            selected.append("%s")
            params.append(values[expression])
        else:
            selected.append(expression)
    # Table and column names come from the model, every value is a parameter (PostgreSQL and the demo's SQLite).
    table = Balance._meta.db_table
    head = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(selected)} FROM {table} p WHERE "  # noqa: S608
    ids = []
    with connection.cursor() as cursor:
        for condition, batch in id_batches(payment_ids):
            cursor.execute(head + f"p.id {condition} ORDER BY p.id RETURNING id", [*params, *batch])
            ids.extend(row[0] for row in cursor.fetchall())
    return sorted(ids)


def _account_for_charge(request: RefundRequest) -> int | None:
    if request.balance_id:
        return request.balance.account_id
    any_balance = charge_payment_balances(provider_setting=request.provider_setting, charge_id=request.charge_id,
                                          available_only=False).first()
    if any_balance:
        return any_balance.account_id
    tx = lock_transaction(request.charge_id)
    return tx.account_id if tx else None


def _record_unbookable_refund(request: RefundRequest, stripe_refund: dict) -> None:
    """A refund of a payment the books never held (unmatched charge): finance decides."""
    PaymentEntry.objects.get_or_create(
        stripe_refund_id=f"{stripe_refund.get('id') or request.pk}:unbooked",
        defaults={"provider": "stripe", "kind": PaymentEntryKind.OTHER, "provider_setting": request.provider_setting,
                  "transaction_number": request.charge_id, "amount": request.amount, "currency": request.currency,
                  "last_error": "Refund of a payment that is not booked on any account.", "raw": stripe_refund},
    )


def _record_failed_refund(request: RefundRequest, stripe_refund: dict, status: str) -> None:
    """SPEC §7: one PaymentEntry per failed refund id; the money came back, the balances stay locked."""
    reason = stripe_refund.get("failure_reason") or status
    request.status = status
    request.failure_reason = f"Refund failed: {reason}"
    request.save(update_fields=["status", "failure_reason", "updated_at"])
    tx = lock_transaction(request.charge_id)
    PaymentEntry.objects.get_or_create(
        stripe_refund_id=stripe_refund.get("id") or f"request-{request.pk}",
        defaults={"provider": "stripe", "kind": PaymentEntryKind.REFUND_FAILED, "provider_setting": request.provider_setting,
                  "transaction_number": request.charge_id, "amount": -request.amount, "currency": request.currency,
                  "date": stripe_time(stripe_refund.get("created")), "last_error": f"Refund failed: {reason}",
                  "raw": stripe_refund, "account_id": tx.account_id if tx else None,
                  "invoice_id": tx.invoice_id if tx else None},
    )


def apply_stripe_refund(setting, refund: dict) -> RefundRequest | None:
    """Apply a Stripe Refund seen in a webhook: ours by metadata, a known refund id, or a Dashboard refund.

    Idempotent in any order; never calls Stripe. The handler has synced the charge's payment first.
    """
    refund_id = refund.get("id") or ""
    charge_id = refund.get("charge") if isinstance(refund.get("charge"), str) else (refund.get("charge") or {}).get("id", "")
    if not refund_id or not charge_id:
        return None
    request = refund_request_of_stripe_refund(refund_id)
    if request is None:
        ours = str((refund.get("metadata") or {}).get("refund_request_id") or "")
        if ours.isdigit():
            request = RefundRequest.objects.filter(pk=int(ours), charge_id=charge_id).first()
    if request is None:
        return apply_dashboard_refund(setting, refund, refund_id, charge_id)
    return apply_refund_request(request, refund).request


def apply_dashboard_refund(setting, refund: dict, refund_id: str, charge_id: str) -> RefundRequest:
    """A refund made outside this service (Stripe Dashboard): its request is written and applied in one transaction.

    Two deliveries of the same refund at once are serialised by the charge's lock; the second finds the request
    (INSERT ... ON CONFLICT DO NOTHING returns nothing) and applies nothing twice.
    """
    currency = normalize_currency(refund.get("currency") or "")
    candidate = RefundRequest(
        balance=None, provider_setting=setting, charge_id=charge_id, currency=currency,
        amount=from_minor_units(int(refund.get("amount") or 0), currency), source=RefundSource.DASHBOARD,
        idempotency_key=f"dashboard-{refund_id}", stripe_refund_id=refund_id,
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
            RefundRequest.objects.filter(pk=request.pk, applied_at__isnull=True).update(
                status=RefundStatus.FAILED, failure_reason=str(exc), updated_at=timezone.now())
        logger.warning("Pending refund request %s not finished: %s", request.pk, exc)
        return RefundRequest.objects.get(pk=request.pk)
    return apply_refund_request(request, stripe_refund).request


def finish_pending_refund_requests(*, older_than: timedelta = timedelta(minutes=2)) -> int:
    pending = RefundRequest.objects.filter(source=RefundSource.SERVICE, status=RefundStatus.PENDING, applied_at__isnull=True,
                                           created_at__lt=timezone.now() - older_than).select_related("provider_setting")
    count = 0
    for request in pending:
        finish_pending_refund_request(request)
        count += 1
    return count
