"""The books' invariants (SPEC §11, 1-6) as code: `check_books()` returns every violation it finds.

Run after every database test (tests/conftest.py), by `manage.py check_books` on a live database (a monitoring
probe), and after each step of the property tests. Billing checks what its own rows say; the apps above it register
the checks that need their data (a charge's amount and state, refund requests, disputes) with `register`, from their
AppConfig.ready(), so billing imports none of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import F, Q, Sum

from billing.constants import (
    MONEY_RECEIVED_KINDS,
    BalanceType,
    InvoiceKind,
    InvoiceStatus,
    LockReason,
    PaymentEntryKind,
    PaymentEntryStatus,
)
from billing.ledger import hooks
from billing.ledger.invoices import derived_status
from billing.models import Balance, Invoice, PaymentEntry
from billing.money import format_amount


@dataclass(frozen=True)
class Violation:
    """One broken invariant: which (SPEC §11 number), where (entity, document or charge), what, and by how much."""

    invariant: int
    entity: str
    subject: str
    problem: str
    amount: Decimal | None = None
    currency: str = ""

    def __str__(self) -> str:
        known = self.amount is not None and self.currency not in ("", "XXX")
        by = f" (off by {format_amount(abs(self.amount), self.currency)})" if known else ""
        return f"[invariant {self.invariant}] {self.entity or '-'} · {self.subject}: {self.problem}{by}"


Check = Callable[[], Iterable[Violation]]
_registered: list[Check] = []


def register(check: Check) -> Check:
    """Add a check of another app (idempotent: a module imported twice registers once)."""
    if all(getattr(existing, "__qualname__", None) != check.__qualname__ or existing.__module__ != check.__module__
           for existing in _registered):
        _registered.append(check)
    return check


def check_books() -> list[Violation]:
    """Every violation of SPEC §11's invariants in the database, in a stable order (empty: the books are sound)."""
    violations: list[Violation] = []
    for check in (*_BILLING_CHECKS, *_registered):
        violations.extend(check())
    return sorted(violations, key=lambda v: (v.invariant, v.entity, v.subject, v.problem))


def entity_names() -> dict[int, str]:
    from billing.models import BusinessEntity

    return dict(BusinessEntity.objects.values_list("id", "name"))


# --- 1. An invoice's status is derived from its open amount, which never crosses zero ------------------------


def invoice_status_and_open_amounts() -> Iterable[Violation]:
    names = entity_names()
    invoices = Invoice.objects.annotate(linked=Sum("balances__amount")).order_by("id")
    for invoice in invoices.iterator():
        entity, subject = names.get(invoice.business_entity_id, ""), f"{invoice.get_kind_display().lower()} {invoice.number}"
        linked = invoice.linked or Decimal("0")
        if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.CANCELLED):
            if linked:
                yield Violation(1, entity, subject, f"a {invoice.status} document has balances linked to it", linked, invoice.currency)
            continue
        open_amount = invoice.amount + linked
        expected = derived_status(invoice, open_amount)
        if invoice.status != expected:
            yield Violation(1, entity, subject, f"status is {invoice.status} but its open amount "
                                                f"{format_amount(open_amount, invoice.currency)} makes it {expected}")
        crossed = open_amount < 0 if invoice.kind == InvoiceKind.INVOICE else open_amount > 0
        if crossed:
            yield Violation(1, entity, subject, "the open amount crossed zero (more was linked than was open)", open_amount,
                            invoice.currency)


# --- 2. A linked balance has its invoice's account, currency and a setting serving its entity ---------------


def linked_balances_match_their_invoice() -> Iterable[Violation]:
    names = entity_names()
    linked = Balance.objects.filter(invoice__isnull=False).select_related("invoice")
    wrong = linked.filter(~Q(account_id=F("invoice__account_id")) | ~Q(currency=F("invoice__currency")))
    for balance in wrong.order_by("id"):
        invoice = balance.invoice
        what = "account" if balance.account_id != invoice.account_id else "currency"
        yield Violation(2, names.get(invoice.business_entity_id, ""), f"invoice {invoice.number}",
                        f"{balance.type} balance {balance.pk} has another {what} than its invoice", balance.amount, balance.currency)
    pairs = linked.filter(provider_setting__isnull=False).values_list("provider_setting_id", "invoice_id").distinct()
    invoices = {invoice.pk: invoice for invoice in Invoice.objects.filter(pk__in={invoice_id for _, invoice_id in pairs})}
    for setting_id, invoice_id in sorted(pairs):
        invoice = invoices[invoice_id]
        if not hooks.serves_invoice(setting_id, invoice):
            yield Violation(2, names.get(invoice.business_entity_id, ""), f"invoice {invoice.number}",
                            f"balances of Stripe setting {setting_id} are linked to it, but that setting does not serve its "
                            "business entity in its mode")


# --- 3. Locked balances are what their lock says ---------------------------------------------------------------


def locks_are_consistent() -> Iterable[Violation]:
    names = entity_names()
    entity_of_account = dict(Balance.objects.values_list("account_id", "account__business_entity_id").distinct())

    def where(balance) -> str:
        return names.get(entity_of_account.get(balance.account_id), "")

    refunds_of: dict[int, Decimal] = defaultdict(Decimal)
    for refund in Balance.objects.filter(type=BalanceType.REFUND).order_by("id"):
        if not refund.locked and refund.refunds_balance_id is not None:
            yield Violation(3, where(refund), f"charge {refund.transaction_number}", f"refund balance {refund.pk} is not locked")
        if refund.refunds_balance_id is not None:
            refunds_of[refund.refunds_balance_id] += refund.amount
    refunded = Balance.objects.in_bulk(list(refunds_of))
    for payment_id, total in sorted(refunds_of.items()):
        payment = refunded.get(payment_id)
        if payment is None:
            continue
        if not payment.locked or payment.lock_reason != LockReason.REFUND:
            yield Violation(3, where(payment), f"charge {payment.transaction_number}",
                            f"payment balance {payment.pk} is refunded but not locked as refunded")
        if total != -payment.amount:
            yield Violation(3, where(payment), f"charge {payment.transaction_number}",
                            f"payment balance {payment.pk} and the refund balances mirroring it differ", total + payment.amount,
                            payment.currency)
    for balance in Balance.objects.filter(Q(is_overrefund=True) | ~Q(dispute_id=""), locked=False).order_by("id"):
        yield Violation(3, where(balance), f"charge {balance.transaction_number}",
                        f"{'overrefund' if balance.is_overrefund else 'dispute adjustment'} balance {balance.pk} is not locked")


# --- 5. Every Stripe refund id is booked once, on one charge ------------------------------------------------------


def refund_ids_booked_once() -> Iterable[Violation]:
    charges_of = defaultdict(set)
    for refund_id, charge_id in Balance.objects.filter(type=BalanceType.REFUND).exclude(stripe_refund_id="")\
            .values_list("stripe_refund_id", "transaction_number").distinct():
        charges_of[refund_id].add(charge_id)
    for refund_id, charges in sorted(charges_of.items()):
        if len(charges) > 1:
            yield Violation(5, "", f"refund {refund_id}", f"refund balances on several charges ({', '.join(sorted(charges))})")
    kept = PaymentEntry.objects.filter(kind=PaymentEntryKind.REFUND_OF_UNBOOKED, resolved_balance__isnull=True,
                                       stripe_refund_id__in=list(charges_of)).values_list("stripe_refund_id", flat=True)
    for refund_id in sorted(kept):
        yield Violation(5, "", f"refund {refund_id}", "booked twice: as refund balances and as an entry")


# --- 6. A dispute's withdrawal is booked at most once, and reversed at most once ------------------------------------


def dispute_adjustments_once() -> Iterable[Violation]:
    adjustments = list(Balance.objects.filter(type=BalanceType.ADJUSTMENT).exclude(dispute_id="").order_by("id"))
    withdrawals = {b.pk: b for b in adjustments if b.amount > 0}
    reversed_by: dict[int, Decimal] = defaultdict(Decimal)
    for reversal in (b for b in adjustments if b.amount < 0):
        withdrawal = withdrawals.get(reversal.adjusts_balance_id)
        if withdrawal is None or withdrawal.dispute_id != reversal.dispute_id:
            yield Violation(6, "", f"dispute {reversal.dispute_id}", f"reversal {reversal.pk} reverses no withdrawal of this dispute",
                            reversal.amount, reversal.currency)
            continue
        reversed_by[withdrawal.pk] += reversal.amount
    for withdrawal_id, total in sorted(reversed_by.items()):
        withdrawal = withdrawals[withdrawal_id]
        if total != -withdrawal.amount:
            yield Violation(6, "", f"dispute {withdrawal.dispute_id}", f"withdrawal {withdrawal.pk} is reversed by another amount "
                            "than it withdrew (reversed more than once, or in part)", total + withdrawal.amount, withdrawal.currency)
    taken: dict[int, Decimal] = defaultdict(Decimal)
    for withdrawal in withdrawals.values():
        taken[withdrawal.adjusts_balance_id] += withdrawal.amount + reversed_by.get(withdrawal.pk, Decimal("0"))
    mirrored = Balance.objects.in_bulk(list(taken))
    for balance_id, total in sorted(taken.items()):
        balance = mirrored.get(balance_id)
        if balance is not None and total > -balance.amount:
            yield Violation(6, "", f"charge {balance.transaction_number}", f"disputes took back more than payment balance {balance.pk} "
                            "holds", total + balance.amount, balance.currency)


def money_entries_are_whole() -> Iterable[Violation]:
    """Invariant 4's part that billing can see alone: an entry of money received holds money received."""
    for entry in PaymentEntry.objects.filter(kind__in=MONEY_RECEIVED_KINDS, parent=None, amount__gt=0, status=PaymentEntryStatus.OPEN):
        yield Violation(4, "", f"charge {entry.transaction_number}", f"entry {entry.pk} of money received has a positive amount",
                        entry.amount, entry.currency)


_BILLING_CHECKS: tuple[Check, ...] = (invoice_status_and_open_amounts, linked_balances_match_their_invoice, locks_are_consistent,
                                      refund_ids_booked_once, dispute_adjustments_once, money_entries_are_whole)
