"""One PaymentTransaction per Stripe charge, and the state machine that books its payment.

Invariants:
- a charge's payment is booked at most once (balances, or an open PaymentEntry when it cannot be
  matched), guarded by `booked_at` under the transaction's row lock;
- `failed` is final: a later `pending` or `succeeded` for the same charge changes nothing;
- balance dates are the charge's Stripe `created`, so any order of events gives the same books.

Callers fetch whatever they need from Stripe first; nothing here calls Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache

from django.db import connection, transaction
from django.utils import timezone

from billing.constants import BalanceStatus, PaymentEntryKind
from billing.models import Invoice, PaymentEntry
from billing.money import MoneyError, from_minor_units
from billing.services import (
    book_payment_in_transaction,
    confirm_payment_balances,
    delete_payment_balances_in_transaction,
    lock_invoice_for_payment,
    resolve_payment_entries_of_failed_charge,
)
from billing.sql import changed_fields, columns, field_values, from_row, prepared_cursor, update_fields
from payments.constants import MethodType, TransactionStatus
from payments.models import PaymentAttempt, PaymentTransaction

CHARGE_STATUS = {"pending": TransactionStatus.PENDING, "succeeded": TransactionStatus.SUCCEEDED, "failed": TransactionStatus.FAILED}


def stripe_time(timestamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(int(timestamp), tz=UTC) if timestamp else None


def object_id(value) -> str:
    """Stripe fields may hold an id or the expanded object."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def belongs_to_other_setting(stripe_object: dict, setting) -> bool:
    """An object created by another provider setting is left to that setting's endpoint."""
    named = str((stripe_object.get("metadata") or {}).get("provider_setting_id") or "")
    return bool(named) and named != str(setting.pk)


@dataclass
class ChargeFacts:
    charge_id: str
    status: str
    amount_minor: int
    currency: str
    created: datetime | None
    payment_intent_id: str
    payment_method_id: str
    method_type: str
    metadata: dict
    failure_message: str

    @classmethod
    def from_charge(cls, charge: dict, payment_intent: dict | None = None) -> ChargeFacts:
        details = charge.get("payment_method_details") or {}
        method_type = details.get("type") or ""
        if method_type not in MethodType.values:
            method_type = MethodType.OTHER if method_type else ""
        metadata = dict((payment_intent or {}).get("metadata") or {})
        metadata.update(charge.get("metadata") or {})
        failure = charge.get("failure_message") or charge.get("failure_code") or ""
        return cls(
            charge_id=charge["id"],
            status=CHARGE_STATUS.get(charge.get("status") or "", TransactionStatus.PENDING),
            amount_minor=int(charge.get("amount") or 0),
            currency=(charge.get("currency") or "").upper(),
            created=stripe_time(charge.get("created")),
            payment_intent_id=object_id(charge.get("payment_intent")) or object_id((payment_intent or {}).get("id")),
            payment_method_id=object_id(charge.get("payment_method")),
            method_type=method_type,
            metadata=metadata,
            failure_message=failure,
        )


def upsert_and_lock_transaction(setting, facts: ChargeFacts) -> PaymentTransaction:
    """The charge's transaction, created if missing, row-locked: one statement instead of INSERT then SELECT FOR UPDATE.

    INSERT ... ON CONFLICT (charge_id) DO UPDATE locks the existing row like FOR UPDATE does (a concurrent
    first insert makes it wait for that commit) and RETURNING gives the row as it is. Call inside a transaction.
    PostgreSQL and the demo's SQLite both support it.
    """
    candidate = PaymentTransaction(charge_id=facts.charge_id, provider_setting=setting, payment_intent_id=facts.payment_intent_id,
                                   currency=facts.currency, method_type=facts.method_type, charge_created=facts.created)
    values = [field.get_db_prep_save(field.pre_save(candidate, add=True), connection) for field in _INSERTED_FIELDS]
    with prepared_cursor() as cursor:
        cursor.execute(_upsert_sql(connection.vendor), values)
        return from_row(PaymentTransaction, cursor.fetchone())


_INSERTED_FIELDS = [field for field in PaymentTransaction._meta.concrete_fields if not field.primary_key]


@cache
def _upsert_sql(vendor: str) -> str:
    names = ", ".join(field.column for field in _INSERTED_FIELDS)
    return (f"INSERT INTO {PaymentTransaction._meta.db_table} ({names}) VALUES ({', '.join(['%s'] * len(_INSERTED_FIELDS))}) "  # noqa: S608
            f"ON CONFLICT (charge_id) DO UPDATE SET charge_id = EXCLUDED.charge_id RETURNING {columns(PaymentTransaction)}")


def match_invoice(facts: ChargeFacts) -> tuple[Invoice, Decimal] | None:
    """The invoice this charge pays, row-locked (after the transaction row, as the lock order says) and with its open
    amount, so booking need not lock or sum again: by `metadata.invoice_id`, else through the PaymentIntent's other
    charges or attempt."""
    invoice_id = str(facts.metadata.get("invoice_id") or "")
    if not invoice_id.isdigit():
        invoice_id = ""
        if facts.payment_intent_id:
            invoice_id = (
                PaymentTransaction.objects.filter(payment_intent_id=facts.payment_intent_id, invoice__isnull=False)
                .exclude(charge_id=facts.charge_id).values_list("invoice_id", flat=True).first()
                or PaymentAttempt.objects.filter(payment_intent_id=facts.payment_intent_id).values_list("invoice_id", flat=True).first()
                or ""
            )
    if not invoice_id:
        return None
    return lock_invoice_for_payment(int(invoice_id))


def _book(setting, tx: PaymentTransaction, facts: ChargeFacts, *, raw: dict, pending: bool) -> None:
    try:
        amount = from_minor_units(facts.amount_minor, facts.currency)
    except MoneyError:
        amount = None
    matched = match_invoice(facts)  # locked, with its open amount
    invoice, open_now = matched if matched else (None, None)
    if amount is None or amount <= 0:
        kind, error, invoice = PaymentEntryKind.OTHER, f"Stripe charge with an unusable amount or currency ({facts.currency}).", None
    elif invoice is None:
        kind, error = PaymentEntryKind.UNMATCHED_PAYMENT, "No invoice matches this payment (no or unknown metadata.invoice_id)."
    elif invoice.currency != facts.currency:
        kind = PaymentEntryKind.CURRENCY_MISMATCH
        error = f"Paid in {facts.currency}, but invoice {invoice.number} is in {invoice.currency}."
    else:
        book_payment_in_transaction(
            account=invoice.account, invoice=invoice, amount=amount, currency=facts.currency,
            date=facts.created or timezone.now(), transaction_number=facts.charge_id, provider_setting=setting,
            status=BalanceStatus.PENDING if pending else BalanceStatus.CONFIRMED, invoice_is_locked=True,
            open_amount_under_lock=open_now,
        )
        tx.invoice, tx.account = invoice, invoice.account
        return
    PaymentEntry.objects.get_or_create(
        provider="stripe", kind=kind, transaction_number=facts.charge_id, stripe_refund_id=None,
        defaults={"provider_setting": setting, "amount": -(amount or 0), "currency": facts.currency or "XXX",
                  "date": facts.created, "last_error": error, "raw": raw,
                  "invoice": invoice, "account": invoice.account if invoice else None},
    )
    if invoice is not None:
        tx.invoice, tx.account = invoice, invoice.account


def sync_charge(setting, charge: dict, *, event_created: datetime | None = None, payment_intent: dict | None = None) -> PaymentTransaction:
    """Bring the charge's payment up to what `charge` says (upsert, then the state machine).

    Its own transaction, or the caller's (a refund event books the payment and the refund in one): no savepoint,
    so an error aborts the caller's transaction as a whole."""
    facts = ChargeFacts.from_charge(charge, payment_intent)
    with transaction.atomic(savepoint=False):
        tx = upsert_and_lock_transaction(setting, facts)
        if tx.status == TransactionStatus.FAILED:
            return tx  # final
        as_read = field_values(tx)
        fields = {"payment_intent_id": tx.payment_intent_id or facts.payment_intent_id,
                  "payment_method_id": facts.payment_method_id or tx.payment_method_id,
                  "method_type": facts.method_type or tx.method_type, "charge_created": facts.created or tx.charge_created,
                  "currency": facts.currency or tx.currency}
        if facts.amount_minor and facts.currency:
            try:
                fields["amount"] = from_minor_units(facts.amount_minor, facts.currency)
            except MoneyError:
                pass
        for name, value in fields.items():
            setattr(tx, name, value)
        if payment_intent and payment_intent.get("setup_future_usage"):
            tx.save_for_future = True
        if event_created and (tx.stripe_created is None or event_created > tx.stripe_created):
            tx.stripe_created = event_created

        if facts.status == TransactionStatus.FAILED:
            delete_payment_balances_in_transaction(provider_setting=setting, transaction_number=facts.charge_id)
            resolve_payment_entries_of_failed_charge(transaction_number=facts.charge_id, failure=facts.failure_message)
            tx.status, tx.last_error = TransactionStatus.FAILED, facts.failure_message or "The payment failed."
        else:
            booked_confirmed = False
            if tx.booked_at is None:
                _book(setting, tx, facts, raw=charge, pending=facts.status == TransactionStatus.PENDING)
                tx.booked_at = timezone.now()
                booked_confirmed = facts.status != TransactionStatus.PENDING
            if facts.status == TransactionStatus.SUCCEEDED:
                # Nothing can be pending when the payment was just booked confirmed, or when the transaction already
                # succeeded (its balances were confirmed in the transaction that said so): skip the UPDATE then.
                if not booked_confirmed and tx.status != TransactionStatus.SUCCEEDED:
                    confirm_payment_balances(provider_setting=setting, transaction_number=facts.charge_id)
                if tx.status == TransactionStatus.PENDING:
                    tx.status = TransactionStatus.SUCCEEDED
        changed = changed_fields(tx, as_read)
        if changed:  # a redelivered or stale event changes nothing and writes nothing
            update_fields(tx, [*changed, "updated_at"])
        return tx


def record_payment_failure(setting, *, charge_id: str, message: str) -> None:
    """Keep the failure message of a PaymentIntent's failed charge on its transaction."""
    PaymentTransaction.objects.filter(charge_id=charge_id, provider_setting=setting).exclude(last_error=message).update(last_error=message)
