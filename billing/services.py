"""Writes to the books. Every function runs in a transaction and takes row locks.

Lock order, everywhere, to avoid deadlocks: payment transaction -> invoice(s) by id -> balances by id.
Invoice status is derived from its balances and written only by `recompute_invoice_status`, in the
same transaction as the balance change that moved it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from functools import cache

from django.db import connection, transaction
from django.utils import timezone

from billing.constants import BalanceStatus, BalanceType, InvoiceKind, InvoiceStatus, PaymentEntryStatus
from billing.models import Account, Balance, Invoice, PaymentEntry
from billing.money import MoneyError, format_amount, normalize_currency, validate_precision
from billing.selectors import OPEN_AMOUNT_SQL, open_amount, open_amount_from_sum
from billing.sql import columns, from_row, id_batches, insert, prepared_cursor, update_fields

BIGINT_MAX = 2**63 - 1


class BillingError(Exception):
    """A change to the books was refused; the message is a sentence for the user."""


# --- Invoices ------------------------------------------------------------------------------------


def lock_invoices(invoice_ids: Iterable[int]) -> dict[int, Invoice]:
    ids = sorted({invoice_id for invoice_id in invoice_ids if invoice_id is not None})
    return {invoice.id: invoice for invoice in Invoice.objects.select_for_update().filter(id__in=ids).order_by("id")}


def lock_invoice_for_payment(invoice_id: int) -> tuple[Invoice, Decimal] | None:
    """One invoice row-locked, with its account and its open amount: what booking a payment needs, in one round trip.
    None when there is no such invoice (an id beyond the column's range included: it comes from Stripe metadata).

    On PostgreSQL the lock and the SUM travel as two statements of one query: the SUM starts after the lock is
    granted, with a snapshot of its own, so it counts every balance committed before (a SUM inside the locking
    SELECT would use the snapshot taken before waiting for the lock).
    """
    if not 0 < invoice_id <= BIGINT_MAX:
        return None
    with connection.cursor() as cursor:  # client-side binding: several statements in one query
        if connection.vendor == "postgresql":
            cursor.execute(f"{_invoice_with_account_sql(connection.vendor)}; {OPEN_AMOUNT_SQL}", [invoice_id, invoice_id])
            row = cursor.fetchone()
            cursor.nextset()
            linked = cursor.fetchone()[0]
        else:
            cursor.execute(_invoice_with_account_sql(connection.vendor), [invoice_id])
            row = cursor.fetchone()
            linked = None
    if row is None:
        return None
    split = len(Invoice._meta.concrete_fields)
    invoice = from_row(Invoice, row[:split])
    invoice.account = from_row(Account, row[split:])
    if connection.vendor != "postgresql":
        return invoice, open_amount(invoice)
    return invoice, open_amount_from_sum(invoice, linked)


@cache
def _invoice_with_account_sql(vendor: str) -> str:
    invoice_table, account_table = (connection.ops.quote_name(model._meta.db_table) for model in (Invoice, Account))
    lock = " FOR UPDATE OF i" if connection.features.has_select_for_update_of else ""
    return (f"SELECT {columns(Invoice, 'i')}, {columns(Account, 'a')} FROM {invoice_table} i "  # noqa: S608 - model names
            f"JOIN {account_table} a ON a.id = i.account_id WHERE i.id = %s{lock}")


def recompute_invoice_status(invoice: Invoice, *, known_open_amount: Decimal | None = None) -> Invoice:
    """Derive `open` / `paid` from the balances. Drafts and cancelled documents keep their status.

    Must run inside the transaction that changed the balances, with the invoice row locked. A caller
    that has just computed the open amount under that lock may pass it (saves a query).
    """
    if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.CANCELLED):
        return invoice
    remaining = open_amount(invoice) if known_open_amount is None else known_open_amount
    new_status = InvoiceStatus.PAID if remaining == 0 else InvoiceStatus.OPEN
    if new_status != invoice.status:
        invoice.status = new_status
        update_fields(invoice, ["status"])
    return invoice


@transaction.atomic
def recompute_invoices(invoice_ids: Iterable[int]) -> None:
    for invoice in lock_invoices(invoice_ids).values():
        recompute_invoice_status(invoice)


@transaction.atomic
def finalize_invoice(invoice: Invoice) -> Invoice:
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != InvoiceStatus.DRAFT:
        raise BillingError(f"{invoice.number} is {invoice.get_status_display().lower()}, only drafts can be finalized.")
    invoice.status = InvoiceStatus.OPEN
    invoice.finalized_at = timezone.now()
    invoice.save(update_fields=["status", "finalized_at"])
    return recompute_invoice_status(invoice)


@transaction.atomic
def cancel_invoice(invoice: Invoice) -> Invoice:
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status == InvoiceStatus.CANCELLED:
        return invoice
    if invoice.balances.exists():
        raise BillingError(f"{invoice.number} has balances linked to it; unassign them before cancelling.")
    invoice.status = InvoiceStatus.CANCELLED
    invoice.cancelled_at = timezone.now()
    invoice.save(update_fields=["status", "cancelled_at"])
    return invoice


# --- Balances ------------------------------------------------------------------------------------


def _checked_amount(amount: Decimal, currency: str) -> Decimal:
    try:
        return validate_precision(Decimal(amount), currency)
    except MoneyError as exc:
        raise BillingError(str(exc)) from None


@transaction.atomic
def create_balance(
    *,
    account: Account,
    type: str,
    amount: Decimal,
    currency: str,
    date: datetime | None = None,
    invoice: Invoice | None = None,
    transaction_number: str = "",
    provider_setting=None,
    status: str = BalanceStatus.CONFIRMED,
    note: str = "",
) -> Balance:
    """Create one balance and recompute its invoice. Signs: payment < 0, refund > 0."""
    try:
        currency = normalize_currency(currency)
    except MoneyError as exc:
        raise BillingError(str(exc)) from None
    amount = _checked_amount(amount, currency)
    if amount == 0:
        raise BillingError("A balance needs an amount other than zero.")
    if type == BalanceType.PAYMENT and amount > 0:
        raise BillingError("A payment balance is negative (money received).")
    if type == BalanceType.REFUND and amount < 0:
        raise BillingError("A refund balance is positive (money paid back).")
    if invoice is not None:
        invoice = lock_invoices([invoice.pk])[invoice.pk]
        _check_same_account_and_currency(invoice, account, currency)
    balance = Balance.objects.create(
        account=account, invoice=invoice, type=type, amount=amount, currency=currency, date=date or timezone.now(),
        transaction_number=transaction_number, provider_setting=provider_setting, status=status, note=note,
    )
    if invoice is not None:
        recompute_invoice_status(invoice)
    return balance


def _check_same_account_and_currency(invoice: Invoice, account: Account, currency: str) -> None:
    if invoice.account_id != account.pk:
        raise BillingError(f"{invoice.number} belongs to another account.")
    if invoice.currency != currency:
        raise BillingError(f"{invoice.number} is in {invoice.currency}, not {currency}.")


@transaction.atomic
def book_payment(**kwargs) -> list[Balance]:
    """Book money received (`amount` > 0) as payment balance(s); see book_payment_in_transaction."""
    return book_payment_in_transaction(**kwargs)


def book_payment_in_transaction(
    *,
    account: Account,
    invoice: Invoice | None,
    amount: Decimal,
    currency: str,
    date: datetime,
    transaction_number: str,
    provider_setting=None,
    status: str = BalanceStatus.CONFIRMED,
    invoice_is_locked: bool = False,
    open_amount_under_lock: Decimal | None = None,
) -> list[Balance]:
    """Book money received (`amount` > 0) as payment balance(s).

    Linked to the invoice up to its open amount; any surplus is split off into an unlinked payment
    balance, so money received is always booked and an open amount never crosses zero. An invoice
    that takes no payment (draft, cancelled, credit note, already paid) gets nothing linked.

    Runs in the caller's transaction without a savepoint of its own (the webhook hot path saves two
    round trips): an error must abort that transaction. Everyone else calls book_payment.
    """
    try:
        currency = normalize_currency(currency)
    except MoneyError as exc:
        raise BillingError(str(exc)) from None
    amount = _checked_amount(amount, currency)
    if amount <= 0:
        raise BillingError("A payment must be a positive amount of money received.")
    linkable = Decimal("0")
    open_before = None
    if invoice is not None:
        if not invoice_is_locked:  # the caller may hold the row lock already (and fresh values with it)
            invoice = lock_invoices([invoice.pk])[invoice.pk]
        _check_same_account_and_currency(invoice, account, currency)
        if invoice.kind == InvoiceKind.INVOICE and invoice.status in (InvoiceStatus.OPEN, InvoiceStatus.PAID):
            open_before = open_amount(invoice) if open_amount_under_lock is None or not invoice_is_locked else open_amount_under_lock
            linkable = max(open_before, Decimal("0"))
    common = {"account": account, "type": BalanceType.PAYMENT, "currency": currency, "date": date,
              "transaction_number": transaction_number, "provider_setting": provider_setting, "status": status}
    linked_amount = min(amount, linkable)
    balances = []
    if linked_amount > 0:
        balances.append(insert(Balance(invoice=invoice, amount=-linked_amount, **common)))
    surplus = amount - linked_amount
    if surplus > 0:
        balances.append(insert(Balance(invoice=None, amount=-surplus, split_from=balances[0] if balances else None, **common)))
    if invoice is not None:
        # Only the linked part touches the invoice: its open amount is known without summing again.
        recompute_invoice_status(invoice, known_open_amount=None if open_before is None else open_before - linked_amount)
    return balances


def lock_balance_rows(balance_ids: Iterable[int]) -> list[Balance]:
    return list(Balance.objects.select_for_update().filter(id__in=sorted(set(balance_ids))).order_by("id"))


@transaction.atomic
def split_balance(balance: Balance, *, part_amount: Decimal, allow_locked: bool = False) -> tuple[Balance, Balance]:
    """Split `part_amount` (same sign as the balance) off into a new row; the original keeps the rest.

    Both rows keep the invoice link, type, status, dates and lock. Locked balances are split only
    by the refund service and by assignment of locked refund balances (`allow_locked`).
    """
    balance = lock_balance_rows([balance.pk])[0]
    if balance.locked and not allow_locked:
        raise BillingError(f"This balance is locked ({balance.lock_reason}) and cannot be split.")
    part_amount = _checked_amount(part_amount, balance.currency)
    if part_amount == 0 or (part_amount > 0) != (balance.amount > 0) or abs(part_amount) >= abs(balance.amount):
        raise BillingError(
            f"A split part must have the balance's sign and be smaller than {format_amount(abs(balance.amount), balance.currency)}."
        )
    balance.amount -= part_amount
    balance.save(update_fields=["amount"])
    part = Balance.objects.create(
        account_id=balance.account_id, invoice_id=balance.invoice_id, type=balance.type, amount=part_amount,
        currency=balance.currency, date=balance.date, transaction_number=balance.transaction_number,
        provider_setting_id=balance.provider_setting_id, locked=balance.locked, lock_reason=balance.lock_reason,
        split_from=balance, refunds_balance_id=balance.refunds_balance_id, stripe_refund_id=balance.stripe_refund_id,
        is_overrefund=balance.is_overrefund, status=balance.status,
    )
    return balance, part


@transaction.atomic
def lock_balances(balances: Iterable[Balance], *, reason: str) -> int:
    if not reason:
        raise BillingError("Locking a balance needs a reason.")
    ids = [balance.pk for balance in balances]
    lock_balance_rows(ids)
    return Balance.objects.filter(id__in=ids, locked=False).update(locked=True, lock_reason=reason)


@transaction.atomic
def unlock_balance(balance: Balance) -> Balance:
    balance = lock_balance_rows([balance.pk])[0]
    balance.locked = False
    balance.lock_reason = ""
    balance.save(update_fields=["locked", "lock_reason"])
    return balance


def confirm_payment_balances(*, provider_setting, transaction_number: str) -> int:
    """Pending payment balances of a charge become confirmed (the money arrived). One UPDATE: atomic by itself.
    Plain SQL: every SEPA debit that succeeds runs it."""
    with prepared_cursor() as cursor:
        cursor.execute(f"UPDATE {Balance._meta.db_table} SET status = %s WHERE type = %s AND provider_setting_id = %s "  # noqa: S608
                       "AND transaction_number = %s AND status = %s",
                       [BalanceStatus.CONFIRMED, BalanceType.PAYMENT, provider_setting.pk, transaction_number, BalanceStatus.PENDING])
        return cursor.rowcount


def resolve_payment_entries_of_failed_charge(*, transaction_number: str, failure: str) -> int:
    """Open payment entries of a charge that failed (unmatched, wrong currency) need no decision any more: the money
    never arrived. Plain SQL: every failed SEPA debit runs it."""
    with prepared_cursor() as cursor:
        cursor.execute(f"UPDATE {PaymentEntry._meta.db_table} SET status = %s, resolved_at = %s, last_error = %s "  # noqa: S608
                       "WHERE transaction_number = %s AND stripe_refund_id IS NULL AND status = %s",
                       [PaymentEntryStatus.RESOLVED, timezone.now(), f"Payment failed: {failure}", transaction_number,
                        PaymentEntryStatus.OPEN])
        return cursor.rowcount


@transaction.atomic
def delete_payment_balances(*, provider_setting, transaction_number: str) -> list[int]:
    return delete_payment_balances_in_transaction(provider_setting=provider_setting, transaction_number=transaction_number)


def delete_payment_balances_in_transaction(*, provider_setting, transaction_number: str) -> list[int]:
    """Remove every unlocked payment balance of a failed charge (splits included); reopen invoices.

    Returns the ids of the invoices that were recomputed. Locked balances (refunded, disputed) stay.
    """
    if connection.vendor == "postgresql":
        return _delete_payment_balances_postgresql(provider_setting.pk, transaction_number)
    return _delete_payment_balances_portable(provider_setting, transaction_number)


def _delete_payment_balances_portable(provider_setting, transaction_number: str) -> list[int]:
    """Any database (the demo's SQLite): the same in five statements, plus one UPDATE per invoice whose status changes."""
    candidates = Balance.objects.filter(
        type=BalanceType.PAYMENT, provider_setting=provider_setting, transaction_number=transaction_number, locked=False
    )
    # Invoices before balances (the project's lock order), found and locked in one statement. The webhook path holds
    # the charge's transaction row, so no balance of this charge can appear or move meanwhile.
    invoices = {invoice.id: invoice for invoice in Invoice.objects.select_for_update()
                .filter(id__in=candidates.exclude(invoice=None).values("invoice_id")).order_by("id")}
    invoice_ids = sorted(invoices)
    ids = list(candidates.select_for_update().order_by("id").values_list("id", flat=True))  # id order, as lock_balance_rows
    if not ids:
        return []
    # Plain statements instead of the ORM's collector (which reads every row and each relation first): splits point
    # at each other (split_from is PROTECT), so detach them; resolved payment entries forget the balance (SET_NULL).
    # A PROTECTed reference that must not go (a refund balance or refund request) makes the commit fail on the
    # database's foreign key, as the collector's ProtectedError would. Unlocked payments are never refunded.
    table, entries = Balance._meta.db_table, PaymentEntry._meta.db_table
    with connection.cursor() as cursor:
        for condition, params in id_batches(ids):  # model names; values are parameters
            cursor.execute(f"UPDATE {table} SET split_from_id = NULL WHERE split_from_id {condition}", params)  # noqa: S608
            cursor.execute(f"UPDATE {entries} SET resolved_balance_id = NULL WHERE resolved_balance_id {condition}", params)  # noqa: S608
            cursor.execute(f"DELETE FROM {table} WHERE id {condition}", params)  # noqa: S608
    for invoice in invoices.values():  # still locked, by this transaction
        recompute_invoice_status(invoice)
    return invoice_ids


def _delete_payment_balances_postgresql(provider_setting_id: int, transaction_number: str) -> list[int]:
    """delete_payment_balances_in_transaction in one round trip (a failed SEPA debit is a tenth of a month-end burst),
    plus one UPDATE per invoice whose status changes.

    Two statements of one query: the first locks the invoices (the lock order: invoices before balances); the
    second, which starts after those locks are granted and so sees every balance committed before, locks and
    deletes the balances, detaches what pointed at them, and returns each invoice's open amount without them
    (its SUM sees the rows as they were before the DELETE, as every part of one statement does).
    """
    params = [provider_setting_id, transaction_number]
    with connection.cursor() as cursor:  # client-side binding: two statements in one query
        cursor.execute(_delete_payment_balances_sql(), params + params)
        invoices = {row[0]: from_row(Invoice, row) for row in cursor.fetchall()}
        cursor.nextset()
        linked_sums = dict(cursor.fetchall())  # without the deleted balances
    for invoice_id, invoice in invoices.items():  # still locked, by this transaction
        recompute_invoice_status(invoice, known_open_amount=open_amount_from_sum(invoice, linked_sums.get(invoice_id)))
    return sorted(invoices)


@cache
def _delete_payment_balances_sql() -> str:
    balance, invoice, entry = Balance._meta.db_table, Invoice._meta.db_table, PaymentEntry._meta.db_table
    candidates = (f"SELECT id, invoice_id FROM {balance} WHERE type = '{BalanceType.PAYMENT}' AND provider_setting_id = %s "  # noqa: S608
                  "AND transaction_number = %s AND NOT locked")
    # Splits point at each other (split_from is PROTECT): detach the rows that stay; resolved payment entries forget the
    # balance (SET_NULL). A PROTECTed reference that must not go (a refund balance or request) makes the commit fail on
    # the database's foreign key, as the ORM collector's ProtectedError would. Unlocked payments are never refunded.
    return (
        f"SELECT {columns(Invoice)} FROM {invoice} WHERE id IN (SELECT invoice_id FROM ({candidates}) c) ORDER BY id FOR UPDATE; "  # noqa: S608
        f"WITH doomed AS ({candidates} ORDER BY id FOR UPDATE), "
        f"detached AS (UPDATE {balance} SET split_from_id = NULL WHERE split_from_id IN (SELECT id FROM doomed) "
        "AND id NOT IN (SELECT id FROM doomed)), "
        f"forgotten AS (UPDATE {entry} SET resolved_balance_id = NULL WHERE resolved_balance_id IN (SELECT id FROM doomed)), "
        f"deleted AS (DELETE FROM {balance} WHERE id IN (SELECT id FROM doomed)) "
        f"SELECT d.invoice_id, (SELECT SUM(b.amount) FROM {balance} b WHERE b.invoice_id = d.invoice_id "
        "AND b.id NOT IN (SELECT id FROM doomed)) FROM doomed d WHERE d.invoice_id IS NOT NULL GROUP BY d.invoice_id"
    )


# --- Balance assignment (SPEC §9) ------------------------------------------------------------------


def _assignable_open_amount(document: Invoice) -> Decimal:
    """What may still be assigned to the document, as a positive number (0 when settled)."""
    if document.status not in (InvoiceStatus.OPEN, InvoiceStatus.PAID):
        return Decimal("0")
    remaining = open_amount(document)
    return max(remaining if document.kind == InvoiceKind.INVOICE else -remaining, Decimal("0"))


@transaction.atomic
def assign_balance(balance: Balance, *, document: Invoice, amount: Decimal | None = None) -> Balance:
    """Link an unassigned balance to an open document of the same account and currency, never over-assigning.

    Unlocked payment balances go to invoices; refund balances (locked or not) to credit notes. A
    balance larger than what is open (or than `amount`) is split; the rest stays unassigned and
    keeps the lock. Returns the assigned balance.
    """
    document = lock_invoices([document.pk])[document.pk]
    balance = lock_balance_rows([balance.pk])[0]
    if balance.invoice_id is not None:
        raise BillingError("This balance is already assigned to a document.")
    _check_same_account_and_currency(document, balance.account, balance.currency)
    if balance.type == BalanceType.PAYMENT:
        if balance.locked:
            raise BillingError(f"This payment balance is locked ({balance.lock_reason}) and cannot be assigned.")
        if document.kind != InvoiceKind.INVOICE:
            raise BillingError("Payment balances can only be assigned to invoices.")
    elif balance.type == BalanceType.REFUND:
        if document.kind != InvoiceKind.CREDIT:
            raise BillingError("Refund balances can only be assigned to credit notes.")
    else:
        raise BillingError(f"{balance.get_type_display()} balances are not assigned by hand.")
    available = _assignable_open_amount(document)
    wanted = abs(balance.amount) if amount is None else _checked_amount(Decimal(amount), balance.currency)
    if wanted <= 0:
        raise BillingError("The amount to assign must be greater than zero.")
    if wanted > abs(balance.amount):
        raise BillingError(f"The balance holds only {format_amount(abs(balance.amount), balance.currency)}.")
    if available == 0:
        raise BillingError(f"{document.number} has nothing open to assign to.")
    if amount is not None and wanted > available:
        raise BillingError(f"{document.number} has only {format_amount(available, balance.currency)} open.")
    linked = min(wanted, available)
    if linked < abs(balance.amount):
        sign = 1 if balance.amount > 0 else -1
        balance, _rest = split_balance(balance, part_amount=sign * (abs(balance.amount) - linked), allow_locked=True)
    balance.invoice = document
    balance.save(update_fields=["invoice"])
    recompute_invoice_status(document)
    return balance


@transaction.atomic
def assign_credit_note(credit_note: Invoice, *, invoice: Invoice, amount: Decimal | None = None) -> tuple[Balance, Balance]:
    """Credit before payment: a pair of `credit` balances, -X on the invoice and +X on the credit note."""
    documents = lock_invoices([credit_note.pk, invoice.pk])
    credit_note, invoice = documents[credit_note.pk], documents[invoice.pk]
    if credit_note.kind != InvoiceKind.CREDIT or invoice.kind != InvoiceKind.INVOICE:
        raise BillingError("Assign a credit note to an invoice.")
    if credit_note.account_id != invoice.account_id:
        raise BillingError("The credit note and the invoice belong to different accounts.")
    if credit_note.currency != invoice.currency:
        raise BillingError(f"The credit note is in {credit_note.currency}, the invoice in {invoice.currency}.")
    available = min(_assignable_open_amount(credit_note), _assignable_open_amount(invoice))
    if available == 0:
        raise BillingError("Nothing open to settle between these two documents.")
    value = available if amount is None else _checked_amount(Decimal(amount), invoice.currency)
    if value <= 0 or value > available:
        raise BillingError(f"The amount must be between 0 and {format_amount(available, invoice.currency)}.")
    now = timezone.now()
    common = {"account": invoice.account, "type": BalanceType.CREDIT, "currency": invoice.currency, "date": now,
              "transaction_number": credit_note.number}
    on_invoice = Balance.objects.create(invoice=invoice, amount=-value, note=f"Credit note {credit_note.number}", **common)
    on_credit = Balance.objects.create(invoice=credit_note, amount=value, note=f"Settles invoice {invoice.number}", **common)
    recompute_invoice_status(invoice)
    recompute_invoice_status(credit_note)
    return on_invoice, on_credit


def auto_assign(*, account: Account, currency: str) -> int:
    """Assign what fits, oldest first: credit notes to invoices, payments to invoices, refunds to credit notes."""
    count = 0
    documents = Invoice.objects.filter(account=account, currency=currency, status=InvoiceStatus.OPEN).order_by("due_date", "id")
    credits = [d for d in documents if d.kind == InvoiceKind.CREDIT]
    for credit in credits:
        for invoice in documents.filter(kind=InvoiceKind.INVOICE):
            credit.refresh_from_db()
            if credit.status != InvoiceStatus.OPEN:
                break
            invoice.refresh_from_db()
            if invoice.status == InvoiceStatus.OPEN:
                assign_credit_note(credit, invoice=invoice)
                count += 1
    pairs = [(BalanceType.PAYMENT, InvoiceKind.INVOICE, {"locked": False}), (BalanceType.REFUND, InvoiceKind.CREDIT, {})]
    for balance_type, kind, extra in pairs:
        unassigned = Balance.objects.filter(account=account, currency=currency, type=balance_type, invoice__isnull=True, **extra)
        for balance in unassigned.order_by("date", "id"):
            for document in Invoice.objects.filter(account=account, currency=currency, kind=kind, status=InvoiceStatus.OPEN)\
                    .order_by("due_date", "id"):
                balance.refresh_from_db()
                if balance.invoice_id is not None:
                    break
                assign_balance(balance, document=document)
                count += 1
                # what did not fit was split off into a new unassigned row; it is picked up by the next loop turn
                rest = Balance.objects.filter(split_from=balance, invoice__isnull=True).order_by("-id").first()
                if rest is None:
                    break
                balance = rest
    return count


@transaction.atomic
def resolve_payment_entry(entry, *, invoice: Invoice | None = None, account: Account | None = None, user=None) -> Balance:
    """Turn an open PaymentEntry of money received into an unlocked payment balance with its transaction number.

    The balance goes on `invoice` (or the entry's invoice) when that invoice matches, else unassigned on
    `account` (or the entry's account). Refund-failure entries are resolved by hand: money went back out.
    """
    from billing.constants import PaymentEntryKind, PaymentEntryStatus
    from billing.models import PaymentEntry

    entry = PaymentEntry.objects.select_for_update().get(pk=entry.pk)
    if entry.status != PaymentEntryStatus.OPEN:
        raise BillingError("This payment entry is already resolved.")
    if entry.kind == PaymentEntryKind.REFUND_FAILED or entry.amount >= 0:
        raise BillingError("Only entries of money received can become a payment balance; resolve this one by hand.")
    invoice = invoice or entry.invoice
    account = account or (invoice.account if invoice else entry.account)
    if account is None:
        raise BillingError("Choose the account (or invoice) the payment belongs to.")
    if invoice is not None and invoice.currency != entry.currency:
        invoice = None  # a currency mismatch is booked unassigned on the account
    balances = book_payment(account=account, invoice=invoice, amount=-entry.amount, currency=entry.currency,
                            date=entry.date or timezone.now(), transaction_number=entry.transaction_number,
                            provider_setting=entry.provider_setting)
    entry.status, entry.resolved_at, entry.resolved_balance = PaymentEntryStatus.RESOLVED, timezone.now(), balances[0]
    entry.save(update_fields=["status", "resolved_at", "resolved_balance"])
    return balances[0]
