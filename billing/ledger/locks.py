"""The one place that takes the books' row locks, always in the order of SPEC §11:

    payment transaction -> invoices by id -> balances by id -> payment entries by id

The payment transaction (one row per Stripe charge, `payments.PaymentTransaction`) is locked first by the payments
app, which serialises every event of one charge; everything below it is locked here. Each helper locks one level in
id order, or several levels in the documented order in one call; a caller that needs several levels takes them in one
call or in this order. Every function must run inside a transaction (the locks last until it ends).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.db.transaction import TransactionManagementError

from billing.constants import BalanceType
from billing.ledger import sql
from billing.ledger.base import BillingError
from billing.models import Balance, Invoice, PaymentEntry

BIGINT_MAX = 2**63 - 1


def in_transaction() -> None:
    if not connection.in_atomic_block:  # as select_for_update() refuses: a lock released at once protects nothing
        raise TransactionManagementError("The books' row locks must be taken inside a transaction.")


def _ids(values: Iterable[int | None]) -> list[int]:
    return sorted({value for value in values if value is not None})


def lock_invoices(invoice_ids: Iterable[int | None]) -> dict[int, Invoice]:
    in_transaction()
    ids = _ids(invoice_ids)
    if not ids:
        return {}
    return {invoice.id: invoice for invoice in Invoice.objects.select_for_update().filter(id__in=ids).order_by("id")}


def lock_invoice_for_payment(invoice_id: int) -> tuple[Invoice, Decimal] | None:
    """One invoice, row-locked, with its account and open amount (one round trip on PostgreSQL: booking a payment is
    the hot path). None when there is no such invoice (an id beyond the column's range included: it comes from
    Stripe metadata)."""
    in_transaction()
    if not 0 < invoice_id <= BIGINT_MAX:
        return None
    return sql.lock_invoice_with_open_amount(invoice_id)


def lock_balances(balance_ids: Iterable[int | None]) -> list[Balance]:
    in_transaction()
    ids = _ids(balance_ids)
    return list(Balance.objects.select_for_update().filter(id__in=ids).order_by("id")) if ids else []


def lock_entries(entry_ids: Iterable[int | None]) -> list[PaymentEntry]:
    in_transaction()
    ids = _ids(entry_ids)
    return list(PaymentEntry.objects.select_for_update().filter(id__in=ids).order_by("id")) if ids else []


@dataclass
class LockedBooks:
    invoices: dict[int, Invoice] = field(default_factory=dict)
    balances: list[Balance] = field(default_factory=list)
    entries: list[PaymentEntry] = field(default_factory=list)


class BooksMoved(BillingError):
    """A balance moved to another invoice between reading its invoice and locking it: retry (tasks retry by
    themselves)."""


def _check_invoices_locked(books: LockedBooks) -> LockedBooks:
    moved = {row.invoice_id for row in [*books.balances, *books.entries]} - set(books.invoices) - {None}
    if moved:
        raise BooksMoved("The books of this payment changed meanwhile; please try again.")
    return books


def lock_books(*, invoices: Iterable[int | None] = (), balances: Iterable[int | None] = (),
               entries: Iterable[int | None] = ()) -> LockedBooks:
    """Several levels at once, in the documented order. The invoices of the balances and entries are locked too
    (a balance change may move its invoice), before them."""
    in_transaction()
    balance_ids, entry_ids = _ids(balances), _ids(entries)
    linked = set(Balance.objects.filter(id__in=balance_ids).values_list("invoice_id", flat=True)) if balance_ids else set()
    if entry_ids:
        linked |= set(PaymentEntry.objects.filter(id__in=entry_ids).values_list("invoice_id", flat=True))
    return _check_invoices_locked(LockedBooks(invoices=lock_invoices([*invoices, *linked]), balances=lock_balances(balance_ids),
                                              entries=lock_entries(entry_ids)))


def lock_charge_books(*, setting_id: int | None, charge_id: str) -> LockedBooks:
    """Every row of the books that holds one charge's money: the invoices its balances are linked to, its balances
    (payments, refunds, adjustments) and its payment entries, in the documented order. For the rare paths (disputes,
    resolving an entry); the hot paths below lock only what they change."""
    in_transaction()
    balances = Balance.objects.filter(provider_setting_id=setting_id, transaction_number=charge_id)
    entries = PaymentEntry.objects.filter(transaction_number=charge_id)
    invoice_ids = set(balances.exclude(invoice=None).values_list("invoice_id", flat=True))
    invoice_ids |= set(entries.exclude(invoice=None).values_list("invoice_id", flat=True))
    return _check_invoices_locked(LockedBooks(invoices=lock_invoices(invoice_ids),
                                              balances=list(balances.select_for_update().order_by("id")),
                                              entries=list(entries.select_for_update().order_by("id"))))


def lock_unlocked_payments_of_charge(*, setting_id: int, charge_id: str) -> tuple[list[Invoice], list[tuple[int, int | None]]]:
    """A failed charge's unlocked payment balances (id, invoice id) and their invoices, invoices first (one round
    trip on PostgreSQL: a failed SEPA debit is a tenth of a month-end burst)."""
    in_transaction()
    return sql.lock_unlocked_payments_of_charge(setting_id=setting_id, charge_id=charge_id)


def lock_available_payments(*, setting_id: int, charge_id: str) -> list[tuple[int, Decimal, int | None]]:
    """(id, amount, invoice id) of a charge's available payment balances (unlocked, confirmed), oldest first: what a
    refund plan may take. A refund changes no invoice (SPEC §8 rule 4), so no invoice is locked."""
    in_transaction()
    return sql.lock_available_payment_balances(setting_id=setting_id, charge_id=charge_id)


def lock_payment_balances_of_charge(*, setting_id: int, charge_id: str) -> list[Balance]:
    """Every payment balance of a charge (the refund service's check of what is still refundable)."""
    in_transaction()
    return list(Balance.objects.select_for_update().filter(type=BalanceType.PAYMENT, provider_setting_id=setting_id,
                                                          transaction_number=charge_id).order_by("id"))
