"""Balance assignment (SPEC §9): linking balances to documents of the same account and currency, never over-assigning,
and re-linking, which is unassigning and assigning again with the same rules (never a raw edit of the invoice link).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.audit import record_audit
from billing.constants import AuditAction, BalanceType, InvoiceKind, InvoiceStatus
from billing.ledger import hooks, locks, sql
from billing.ledger.balances import check_same_account_and_currency, insert_balance, split_balance
from billing.ledger.base import BillingError, checked_amount
from billing.ledger.invoices import recompute_invoice_status
from billing.models import Account, Balance, Invoice
from billing.money import format_amount


def assignable_open_amount(document: Invoice) -> Decimal:
    """What may still be assigned to the document, as a positive number (0 when settled)."""
    if document.status not in (InvoiceStatus.OPEN, InvoiceStatus.PAID):
        return Decimal("0")
    remaining = sql.open_amount(document)
    return max(remaining if document.kind == InvoiceKind.INVOICE else -remaining, Decimal("0"))


def _check_assignable(balance: Balance, document: Invoice) -> None:
    if balance.invoice_id is not None:
        raise BillingError("This balance is already assigned to a document.")
    check_same_account_and_currency(document, balance.account_id, balance.currency)
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
    if not hooks.serves_invoice(balance.provider_setting_id, document):
        raise BillingError(f"This balance's Stripe setting does not serve {document.number}'s business entity.")


@transaction.atomic
def assign_balance(balance: Balance, *, document: Invoice, amount: Decimal | None = None, user=None) -> Balance:
    """Link an unassigned balance to an open document of the same account and currency, never over-assigning.

    Unlocked payment balances go to invoices; refund balances (locked or not) to credit notes. A balance larger than
    what is open (or than `amount`) is split; the rest stays unassigned and keeps the lock. Returns the assigned
    balance. `user` (None: the system) is written to the audit trail.
    """
    books = locks.lock_books(invoices=[document.pk], balances=[balance.pk])
    document, balance = books.invoices[document.pk], books.balances[0]
    before = sql.open_amount(document)
    assigned = _assign_locked(balance, document, amount)
    _audit_assignment(AuditAction.BALANCE_ASSIGNED, assigned, document, before, user,
                      f"{format_amount(abs(assigned.amount), assigned.currency)} assigned to {document.number}.")
    return assigned


def _audit_assignment(action: AuditAction, balance: Balance, document: Invoice, before: Decimal, user, detail: str) -> None:
    """The entry of an assignment: the document's open amount before and after."""
    record_audit(action, obj=balance, user=user, invoice=document, balance=balance, before=before, after=sql.open_amount(document),
                 currency=document.currency, detail=detail, label=f"{balance.type.capitalize()} balance {balance.pk}")


def _assign_locked(balance: Balance, document: Invoice, amount: Decimal | None) -> Balance:
    _check_assignable(balance, document)
    available = assignable_open_amount(document)
    wanted = abs(balance.amount) if amount is None else checked_amount(Decimal(amount), balance.currency)
    if wanted <= 0:
        raise BillingError("The amount to assign must be greater than zero.")
    if wanted > abs(balance.amount):
        raise BillingError(f"The balance holds only {format_amount(abs(balance.amount), balance.currency)}.")
    if available == 0:
        raise BillingError(f"{document.number} has nothing open to assign to.")
    if amount is not None and wanted > available:
        raise BillingError(f"{document.number} has only {format_amount(available, balance.currency)} open.")
    linked = min(wanted, available)
    sign = 1 if balance.amount > 0 else -1
    if linked < abs(balance.amount):
        balance, _rest = split_balance(balance, part_amount=sign * (abs(balance.amount) - linked), allow_locked=True)
    balance.invoice = document
    sql.update_fields(balance, ["invoice"])
    recompute_invoice_status(document)
    return balance


@transaction.atomic
def unassign_balance(balance: Balance, *, user=None) -> Balance:
    """Take an unlocked payment balance (or a refund balance on a credit note) off its document; the document's open
    amount grows back and its status follows. Locked payment balances belong to the refund or dispute that locked
    them and stay where they are."""
    if balance.invoice_id is None:
        raise BillingError("This balance is not assigned to any document.")
    books = locks.lock_books(invoices=[balance.invoice_id], balances=[balance.pk])
    balance = books.balances[0]
    document = books.invoices[balance.invoice_id]
    before = sql.open_amount(document)
    balance = _unassign_locked(balance, document)
    _audit_assignment(AuditAction.BALANCE_UNASSIGNED, balance, document, before, user,
                      f"{format_amount(abs(balance.amount), balance.currency)} taken off {document.number}.")
    return balance


def _unassign_locked(balance: Balance, document: Invoice) -> Balance:
    if balance.type == BalanceType.PAYMENT and balance.locked:
        raise BillingError(f"This payment balance is locked ({balance.lock_reason}) and stays on {document.number}.")
    if balance.type not in (BalanceType.PAYMENT, BalanceType.REFUND):
        raise BillingError(f"{balance.get_type_display()} balances are not moved by hand.")
    balance.invoice = None
    sql.update_fields(balance, ["invoice"])
    recompute_invoice_status(document)
    return balance


@transaction.atomic
def relink_balance(balance: Balance, *, document: Invoice, amount: Decimal | None = None, user=None) -> Balance:
    """Move a balance from its document to another one: unassign, then assign with every rule of assignment, in one
    transaction (a refusal changes nothing). One audit entry: re-linked (from a document) or assigned (from none)."""
    invoice_ids = [document.pk, *([balance.invoice_id] if balance.invoice_id else [])]
    books = locks.lock_books(invoices=invoice_ids, balances=[balance.pk])
    balance, target = books.balances[0], books.invoices[document.pk]
    previous = books.invoices.get(balance.invoice_id) if balance.invoice_id else None
    before = sql.open_amount(target)
    if previous is not None:
        balance = _unassign_locked(balance, previous)
    moved = _assign_locked(balance, target, amount)
    moved_amount = format_amount(abs(moved.amount), moved.currency)
    if previous is None:
        _audit_assignment(AuditAction.BALANCE_ASSIGNED, moved, target, before, user, f"{moved_amount} assigned to {target.number}.")
    else:
        _audit_assignment(AuditAction.BALANCE_RELINKED, moved, target, before, user,
                          f"{moved_amount} moved from {previous.number} to {target.number}.")
    return moved


@transaction.atomic
def assign_credit_note(credit_note: Invoice, *, invoice: Invoice, amount: Decimal | None = None,
                       user=None) -> tuple[Balance, Balance]:
    """Credit before payment: a pair of `credit` balances, -X on the invoice and +X on the credit note."""
    documents = locks.lock_invoices([credit_note.pk, invoice.pk])
    credit_note, invoice = documents[credit_note.pk], documents[invoice.pk]
    if credit_note.kind != InvoiceKind.CREDIT or invoice.kind != InvoiceKind.INVOICE:
        raise BillingError("Assign a credit note to an invoice.")
    if credit_note.account_id != invoice.account_id:
        raise BillingError("The credit note and the invoice belong to different accounts.")
    if credit_note.currency != invoice.currency:
        raise BillingError(f"The credit note is in {credit_note.currency}, the invoice in {invoice.currency}.")
    available = min(assignable_open_amount(credit_note), assignable_open_amount(invoice))
    if available == 0:
        raise BillingError("Nothing open to settle between these two documents.")
    value = available if amount is None else checked_amount(Decimal(amount), invoice.currency)
    if value <= 0 or value > available:
        raise BillingError(f"The amount must be between 0 and {format_amount(available, invoice.currency)}.")
    common = {"account_id": invoice.account_id, "type": BalanceType.CREDIT, "currency": invoice.currency, "date": timezone.now(),
              "transaction_number": credit_note.number}
    before = sql.open_amount(invoice)
    on_invoice = insert_balance(invoice=invoice, amount=-value, note=f"Credit note {credit_note.number}", **common)
    on_credit = insert_balance(invoice=credit_note, amount=value, note=f"Settles invoice {invoice.number}", **common)
    recompute_invoice_status(invoice)
    recompute_invoice_status(credit_note)
    _audit_assignment(AuditAction.CREDIT_NOTE_ASSIGNED, on_invoice, invoice, before, user,
                      f"Credit note {credit_note.number} settles {format_amount(value, invoice.currency)} of {invoice.number}.")
    return on_invoice, on_credit


def auto_assign(*, account: Account, currency: str, user=None) -> int:
    """Assign what fits, oldest first: credit notes to invoices, payments to invoices, refunds to credit notes.
    Each assignment is an audit entry of `user` (None: the system)."""
    count = 0
    documents = Invoice.objects.filter(account=account, currency=currency, status=InvoiceStatus.OPEN).order_by("due_date", "id")
    for credit in [d for d in documents if d.kind == InvoiceKind.CREDIT]:
        for invoice in documents.filter(kind=InvoiceKind.INVOICE):
            credit.refresh_from_db()
            if credit.status != InvoiceStatus.OPEN:
                break
            invoice.refresh_from_db()
            if invoice.status == InvoiceStatus.OPEN:
                assign_credit_note(credit, invoice=invoice, user=user)
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
                try:
                    assign_balance(balance, document=document, user=user)
                except BillingError:
                    continue  # e.g. another entity's Stripe setting: leave it for finance
                count += 1
                # what did not fit was split off into a new unassigned row; it is picked up by the next loop turn
                rest = Balance.objects.filter(split_from=balance, invoice__isnull=True).order_by("-id").first()
                if rest is None:
                    break
                balance = rest
    return count
