"""One PaymentTransaction per Stripe charge, and the state machine that decides what its events do to the books.

Invariants:
- a charge's money is booked at most once (by the ledger: balances, or an open PaymentEntry when it cannot be
  matched), guarded by `booked_at` under the transaction's row lock;
- `failed` and `void` are final: a later `pending` or `succeeded` for the same charge changes nothing;
- an uncaptured charge (`captured: false`) is an authorization, not money: nothing is booked until it is captured;
- balance dates are the charge's Stripe `created`, so any order of events gives the same books.

Callers fetch whatever they need from Stripe first; nothing here calls Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from billing import ledger
from billing.ledger import locks
from billing.ledger.sql import changed_fields, field_values, lock_row, update_fields, upsert_and_lock
from billing.money import MoneyError, bookable_amount
from payments.constants import FINAL_TRANSACTION_STATUSES, MethodType, TransactionStatus
from payments.models import PaymentAttempt, PaymentTransaction
from providers.selectors import setting_serves_invoice

CHARGE_STATUS = {"pending": TransactionStatus.PENDING, "succeeded": TransactionStatus.SUCCEEDED, "failed": TransactionStatus.FAILED}
# What an event says about a charge whose payload has no `status` (API versions before 2015).
STATUS_OF_EVENT = {"charge.pending": TransactionStatus.PENDING, "charge.succeeded": TransactionStatus.SUCCEEDED,
                   "charge.failed": TransactionStatus.FAILED, "charge.captured": TransactionStatus.SUCCEEDED,
                   "charge.expired": TransactionStatus.VOID}


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


def charge_status(charge: dict, event_type: str = "") -> str:
    """The charge's state, from its `status`, or — older API versions have none — from the event type and `paid`;
    an uncaptured charge is an authorization; `charge.expired` voids it."""
    if event_type == "charge.expired":
        return TransactionStatus.VOID
    status = CHARGE_STATUS.get(charge.get("status") or "")
    if status is None:
        status = STATUS_OF_EVENT.get(event_type)
    if status is None:
        paid = charge.get("paid")
        status = TransactionStatus.SUCCEEDED if paid is True else TransactionStatus.FAILED if charge.get("failure_code") \
            else TransactionStatus.PENDING
    if status == TransactionStatus.SUCCEEDED and charge.get("captured") is False:
        return TransactionStatus.AUTHORIZED
    return status


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
    def from_charge(cls, charge: dict, payment_intent: dict | None = None, *, event_type: str = "") -> ChargeFacts:
        details = charge.get("payment_method_details") or {}
        method_type = details.get("type") or ""
        if method_type not in MethodType.values:
            method_type = MethodType.OTHER if method_type else ""
        metadata = dict((payment_intent or {}).get("metadata") or {})
        metadata.update(charge.get("metadata") or {})
        failure = charge.get("failure_message") or charge.get("failure_code") or ""
        amount = charge.get("amount")
        currency = charge.get("currency")
        return cls(
            charge_id=charge["id"],
            status=charge_status(charge, event_type),
            amount_minor=amount if isinstance(amount, int) and not isinstance(amount, bool) else 0,
            # A currency the books do not know stays as Stripe wrote it only in the entry that holds the money.
            currency=currency.upper()[:3] if isinstance(currency, str) and len(currency) == 3 else "",
            created=stripe_time(charge.get("created")),
            payment_intent_id=object_id(charge.get("payment_intent")) or object_id((payment_intent or {}).get("id")),
            payment_method_id=object_id(charge.get("payment_method")),
            method_type=method_type,
            metadata=metadata,
            failure_message=failure,
        )


def upsert_and_lock_transaction(setting, facts: ChargeFacts) -> PaymentTransaction:
    """The charge's transaction, created if missing, row-locked (first in the books' lock order). In a transaction."""
    return upsert_and_lock(PaymentTransaction(charge_id=facts.charge_id, provider_setting=setting,
                                              payment_intent_id=facts.payment_intent_id, currency=facts.currency,
                                              method_type=facts.method_type, charge_created=facts.created), key="charge_id")


def lock_transaction(charge_id: str) -> PaymentTransaction | None:
    """Row-lock one charge's transaction (inside a transaction; first in the lock order)."""
    locks.in_transaction()
    return lock_row(PaymentTransaction, key="charge_id", value=charge_id)


def named_invoice(setting, facts: ChargeFacts) -> ledger.NamedInvoice | None:
    """The invoice this charge names, row-locked with its open amount (after the transaction row, as the lock order
    says), and whether this setting may touch it: by `metadata.invoice_id`, else through the PaymentIntent's other
    charges or attempt."""
    invoice_id = str(facts.metadata.get("invoice_id") or "")
    if not invoice_id.isdigit():
        invoice_id = ""
        if facts.payment_intent_id:
            invoice_id = (
                PaymentTransaction.objects.filter(payment_intent_id=facts.payment_intent_id, invoice__isnull=False,
                                                  provider_setting=setting)
                .exclude(charge_id=facts.charge_id).values_list("invoice_id", flat=True).first()
                or PaymentAttempt.objects.filter(payment_intent_id=facts.payment_intent_id, provider_setting=setting)
                .values_list("invoice_id", flat=True).first()
                or ""
            )
    locked = locks.lock_invoice_for_payment(int(invoice_id)) if invoice_id else None
    if locked is None:
        return None
    invoice, open_amount = locked
    return ledger.NamedInvoice(invoice=invoice, open_amount=open_amount, in_scope=setting_serves_invoice(setting, invoice))


def _book(setting, tx: PaymentTransaction, facts: ChargeFacts, *, raw: dict) -> None:
    booked = ledger.book_charge_money(
        setting_id=setting.pk, charge_id=facts.charge_id, amount_minor=facts.amount_minor, currency=facts.currency,
        date=facts.created or timezone.now(), pending=facts.status == TransactionStatus.PENDING, named=named_invoice(setting, facts),
        raw=raw)
    if booked.invoice is not None:
        tx.invoice, tx.account_id = booked.invoice, booked.account_id


def sync_charge(setting, charge: dict, *, event_created: datetime | None = None, payment_intent: dict | None = None,
                event_type: str = "") -> PaymentTransaction:
    """Bring the charge's payment up to what `charge` says (upsert, then the state machine).

    Its own transaction, or the caller's (a refund event books the payment and the refund in one): no savepoint,
    so an error aborts the caller's transaction as a whole."""
    facts = ChargeFacts.from_charge(charge, payment_intent, event_type=event_type)
    with transaction.atomic(savepoint=False):
        tx = upsert_and_lock_transaction(setting, facts)
        tx.just_confirmed = False
        if tx.status in FINAL_TRANSACTION_STATUSES:
            return tx
        as_read = field_values(tx)
        fields = {"payment_intent_id": tx.payment_intent_id or facts.payment_intent_id,
                  "payment_method_id": facts.payment_method_id or tx.payment_method_id,
                  "method_type": facts.method_type or tx.method_type, "charge_created": facts.created or tx.charge_created,
                  "currency": facts.currency or tx.currency}
        if facts.amount_minor > 0 and facts.currency:
            try:  # only an amount the books can take: otherwise the entry holds the money as Stripe reported it
                fields["amount"] = bookable_amount(facts.amount_minor, facts.currency)
            except MoneyError:
                pass
        for name, value in fields.items():
            setattr(tx, name, value)
        if payment_intent and payment_intent.get("setup_future_usage"):
            tx.save_for_future = True
        if event_created and (tx.stripe_created is None or event_created > tx.stripe_created):
            tx.stripe_created = event_created
        status_before = tx.status
        _apply_state(setting, tx, facts, raw=charge)
        # The one event that confirms the charge's money says so (its receipt is asked for once, not per event).
        tx.just_confirmed = tx.status == TransactionStatus.SUCCEEDED and status_before != TransactionStatus.SUCCEEDED
        changed = changed_fields(tx, as_read)
        if changed:  # a redelivered or stale event changes nothing and writes nothing
            update_fields(tx, [*changed, "updated_at"])
        return tx


def _apply_state(setting, tx: PaymentTransaction, facts: ChargeFacts, *, raw: dict) -> None:
    if facts.status in FINAL_TRANSACTION_STATUSES:
        ledger.remove_failed_charge_money(setting_id=setting.pk, charge_id=facts.charge_id,
                                          failure=facts.failure_message or facts.status)
        tx.status = facts.status
        tx.last_error = facts.failure_message or ("The authorization expired uncaptured." if facts.status == TransactionStatus.VOID
                                                  else "The payment failed.")
        return
    if facts.status == TransactionStatus.AUTHORIZED:
        if tx.status == TransactionStatus.PENDING and tx.booked_at is None:
            tx.status = TransactionStatus.AUTHORIZED  # funds held, not received: nothing to book yet
        return
    booked_confirmed = False
    if tx.booked_at is None:
        _book(setting, tx, facts, raw=raw)
        tx.booked_at = timezone.now()
        booked_confirmed = facts.status != TransactionStatus.PENDING
    if facts.status == TransactionStatus.SUCCEEDED:
        # Nothing can be pending when the payment was just booked confirmed, or when the transaction already
        # succeeded (its balances were confirmed in the transaction that said so): skip the UPDATE then.
        if not booked_confirmed and tx.status not in (TransactionStatus.SUCCEEDED, TransactionStatus.DISPUTED):
            ledger.confirm_charge_money(setting_id=setting.pk, charge_id=facts.charge_id)
        if tx.status in (TransactionStatus.PENDING, TransactionStatus.AUTHORIZED):
            tx.status = TransactionStatus.SUCCEEDED
    elif tx.status == TransactionStatus.AUTHORIZED:
        tx.status = TransactionStatus.PENDING


def record_payment_failure(setting, *, charge_id: str, message: str) -> None:
    """Keep the failure message of a PaymentIntent's failed charge on its transaction."""
    PaymentTransaction.objects.filter(charge_id=charge_id, provider_setting=setting).exclude(last_error=message).update(last_error=message)
