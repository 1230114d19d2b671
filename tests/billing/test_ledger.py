"""The ledger: invoice status, booking payments, split/lock, a failed charge, assignment and the seed's credit workflows."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from billing import ledger
from billing.constants import BalanceStatus, BalanceType, InvoiceStatus, LockReason, PaymentEntryKind
from billing.ledger import locks
from billing.models import Balance
from billing.selectors import open_amount
from tests.factories import (
    AccountFactory,
    BalanceFactory,
    CreditNoteFactory,
    InvoiceFactory,
    PaymentEntryFactory,
    ProviderSettingFactory,
    charge_holds,
)

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def pay(invoice, amount, **kwargs):
    """Money received for the invoice; with a provider setting, as a Stripe charge whose transaction holds it."""
    balances = ledger.book_payment(account=invoice.account, invoice=invoice, amount=Decimal(amount), currency=invoice.currency,
                                   date=NOW, transaction_number=kwargs.pop("tx", "ch_x"), **kwargs)
    if balances[0].provider_setting_id:
        charge_holds(charge_id=balances[0].transaction_number, setting_id=balances[0].provider_setting_id, amount=Decimal(amount),
                     currency=invoice.currency, pending=balances[0].status == BalanceStatus.PENDING, invoice_id=invoice.pk)
    return balances


def fail_charge(setting, charge_id: str) -> list[int]:
    """What a charge.failed does to the books (and its transaction, so that the books stay sound)."""
    from payments.models import PaymentTransaction

    with transaction.atomic():
        PaymentTransaction.objects.filter(charge_id=charge_id).update(status="failed")
        return ledger.remove_failed_charge_money(setting_id=setting.pk, charge_id=charge_id, failure="insufficient funds")


def test_finalize_then_payment_pays_then_deleting_reopens():
    invoice = InvoiceFactory(status=InvoiceStatus.DRAFT, finalized_at=None)
    ledger.finalize_invoice(invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN and invoice.finalized_at
    setting = ProviderSettingFactory()
    pay(invoice, "100.00", provider_setting=setting, status=BalanceStatus.PENDING)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and open_amount(invoice) == 0
    with transaction.atomic():
        ledger.confirm_charge_money(setting_id=setting.pk, charge_id="ch_x")
    assert Balance.objects.get().status == BalanceStatus.CONFIRMED
    assert fail_charge(setting, "ch_x") == [invoice.pk]
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN and not Balance.objects.exists()


def test_partial_payment_keeps_the_invoice_open_and_surplus_is_unlinked():
    invoice = InvoiceFactory()
    pay(invoice, "60")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN and open_amount(invoice) == Decimal("40")
    balances = pay(invoice, "55", tx="ch_y")
    assert [(b.amount, b.invoice_id) for b in balances] == [(Decimal("-40"), invoice.pk), (Decimal("-15"), None)]
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and open_amount(invoice) == 0


def test_drafts_cancelled_and_paid_invoices_take_nothing_linked():
    for invoice in [InvoiceFactory(status=InvoiceStatus.DRAFT), InvoiceFactory(status=InvoiceStatus.CANCELLED)]:
        (balance,) = pay(invoice, "10", tx=f"ch_{invoice.pk}")
        assert balance.invoice is None
        invoice.refresh_from_db()
        assert invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.CANCELLED)


def test_cannot_cancel_an_invoice_with_balances():
    invoice = InvoiceFactory()
    pay(invoice, "10")
    with pytest.raises(ledger.BillingError, match="balances linked"):
        ledger.cancel_invoice(invoice)


@pytest.mark.parametrize("kwargs, message", [
    ({"currency": "USD"}, "is in EUR"), ({"amount": Decimal("1.001")}, "more decimals"), ({"currency": "XXQ"}, "Unknown currency"),
])
def test_booking_bad_input_writes_nothing(kwargs, message):
    invoice = InvoiceFactory()
    params = {"account": invoice.account, "invoice": invoice, "amount": Decimal("10"), "currency": "EUR", "date": NOW,
              "transaction_number": "ch_1", **kwargs}
    with pytest.raises(ledger.BillingError, match=message):
        ledger.book_payment(**params)
    assert not Balance.objects.exists()


def test_split_lock_unlock():
    from billing.ledger.balances import lock_balances, unlock_balances

    balance = BalanceFactory(amount=Decimal("-100"))
    with transaction.atomic():
        original, part = ledger.split_balance(locks.lock_balances([balance.pk])[0], part_amount=Decimal("-30"))
    assert (original.amount, part.amount, part.split_from, part.invoice) == (Decimal("-70"), Decimal("-30"), original, original.invoice)
    with pytest.raises(ledger.BillingError, match="smaller than"):
        ledger.split_balance(original, part_amount=Decimal("-70"))
    with pytest.raises(ledger.BillingError, match="balance's sign"):
        ledger.split_balance(original, part_amount=Decimal("10"))
    lock_balances([part.pk], reason=LockReason.DISPUTED)
    part.refresh_from_db()
    assert part.locked and part.lock_reason == LockReason.DISPUTED
    with pytest.raises(ledger.BillingError, match="locked"):
        ledger.split_balance(part, part_amount=Decimal("-1"))
    unlock_balances([part.pk], reason=LockReason.REFUND)  # another lock's reason: stays locked
    part.refresh_from_db()
    assert part.locked
    unlock_balances([part.pk], reason=LockReason.DISPUTED)
    part.refresh_from_db()
    assert not part.locked


def test_assign_payment_to_invoice_splits_what_does_not_fit():
    account = AccountFactory()
    invoice = InvoiceFactory(account=account, amount=Decimal("80"))
    balance = BalanceFactory(account=account, invoice=None, amount=Decimal("-100"))
    assigned = ledger.assign_balance(balance, document=invoice)
    assert assigned.amount == Decimal("-80") and assigned.invoice == invoice
    rest = Balance.objects.get(invoice__isnull=True)
    assert rest.amount == Decimal("-20")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


@pytest.mark.parametrize("case, message", [
    ("other_account", "another account"), ("other_currency", "is in USD"), ("over_assign", "only 50.00 EUR open"),
    ("locked", "locked"), ("refund_to_invoice", "credit notes"), ("payment_to_credit", "only be assigned to invoices"),
    ("assigned", "already assigned"),
])
def test_assignment_refusals_write_nothing(case, message):
    account = AccountFactory()
    invoice = InvoiceFactory(account=account, amount=Decimal("50"))
    balance = BalanceFactory(account=account, invoice=None, amount=Decimal("-60"))
    document, amount = invoice, Decimal("60") if case == "over_assign" else None
    if case == "other_account":
        document = InvoiceFactory()
    elif case == "other_currency":
        document = InvoiceFactory(account=account, currency="USD")
    elif case == "locked":
        Balance.objects.filter(pk=balance.pk).update(locked=True, lock_reason="Disputed")
    elif case == "refund_to_invoice":
        Balance.objects.filter(pk=balance.pk).update(type=BalanceType.REFUND, amount=Decimal("60"))
    elif case == "payment_to_credit":
        document = CreditNoteFactory(account=account)
    elif case == "assigned":
        Balance.objects.filter(pk=balance.pk).update(invoice=InvoiceFactory(account=account))
    balance.refresh_from_db()
    before = list(Balance.objects.values_list("id", "amount", "invoice_id"))
    with pytest.raises(ledger.BillingError, match=message):
        ledger.assign_balance(balance, document=document, amount=amount)
    assert list(Balance.objects.values_list("id", "amount", "invoice_id")) == before


def test_locked_refund_balance_assigned_to_credit_keeps_its_lock_in_both_parts():
    account = AccountFactory()
    credit = CreditNoteFactory(account=account, amount=Decimal("-30"))
    refund = BalanceFactory(account=account, invoice=None, type=BalanceType.REFUND, amount=Decimal("50"), locked=True,
                            lock_reason=LockReason.REFUND)
    ledger.assign_balance(refund, document=credit)
    assert sorted((b.amount, b.locked, b.invoice_id) for b in Balance.objects.all()) == [
        (Decimal("20"), True, None), (Decimal("30"), True, credit.pk)]
    credit.refresh_from_db()
    assert credit.status == InvoiceStatus.PAID


def test_credit_before_payment():
    """Seed workflow: finalize invoice 100, credit note -30 settles 30 of it, then the customer pays 70."""
    account = AccountFactory()
    invoice = InvoiceFactory(account=account, amount=Decimal("100"))
    credit = CreditNoteFactory(account=account, amount=Decimal("-30"))
    on_invoice, on_credit = ledger.assign_credit_note(credit, invoice=invoice)
    assert (on_invoice.amount, on_credit.amount) == (Decimal("-30"), Decimal("30"))
    assert open_amount(invoice) == Decimal("70")
    pay(invoice, "70")
    for document in (invoice, credit):
        document.refresh_from_db()
        assert document.status == InvoiceStatus.PAID and open_amount(document) == 0
    assert sum(b.amount for b in Balance.objects.all()) == Decimal("-70")


def test_credit_after_payment_assigned_by_auto_assign():
    """Seed workflow: invoice 100 paid in full, then a credit -20: the credit stays open until refunded (refunds tests)."""
    account = AccountFactory()
    invoice = InvoiceFactory(account=account, amount=Decimal("100"))
    pay(invoice, "120")  # overpaid: 20 unassigned
    second = InvoiceFactory(account=account, amount=Decimal("20"))
    assert ledger.auto_assign(account=account, currency="EUR") == 1
    second.refresh_from_db()
    assert second.status == InvoiceStatus.PAID


def test_resolve_payment_entry_into_an_unlocked_payment_balance():
    invoice = InvoiceFactory()
    entry = PaymentEntryFactory(kind=PaymentEntryKind.UNMATCHED_PAYMENT, amount=Decimal("-100"), transaction_number="ch_entry")
    balance = ledger.resolve_payment_entry(entry, invoice=invoice)
    assert (balance.amount, balance.transaction_number, balance.locked, balance.invoice) == (Decimal("-100"), "ch_entry", False, invoice)
    entry.refresh_from_db()
    assert entry.status == "resolved" and entry.resolved_balance == balance
    with pytest.raises(ledger.BillingError, match="already resolved"):
        ledger.resolve_payment_entry(entry, invoice=invoice)


def test_a_failed_charge_removes_its_unlocked_balances_wherever_they_went_and_reopens_every_invoice():
    """A charge of 150.00: 100.00 linked to invoice A, the 50.00 surplus assigned to 30.00 of invoice B (the assignment
    splits it), a disputed part of the rest kept; an entry resolved onto one of its balances; another charge's 20.00 on A
    and an unrelated 70.00 on B stay. The failure removes the charge's unlocked balances on both invoices, keeps the
    disputed part (detached from what it was split from) and clears the entry's link."""
    from billing.ledger.balances import lock_balances

    setting = ProviderSettingFactory()
    invoice_a = InvoiceFactory(amount=Decimal("120.00"))
    invoice_b = InvoiceFactory(account=invoice_a.account, business_entity=invoice_a.business_entity, amount=Decimal("100.00"))
    other_a = pay(invoice_a, "20", tx="ch_other", provider_setting=setting)[0]
    other_b = pay(invoice_b, "70", tx="ch_unrelated", provider_setting=setting)[0]
    linked, surplus = pay(invoice_a, "150", tx="ch_failed", provider_setting=setting)
    assigned = ledger.assign_balance(surplus, document=invoice_b)
    kept = Balance.objects.get(transaction_number="ch_failed", invoice=None)
    with transaction.atomic():
        _, disputed = ledger.split_balance(locks.lock_balances([kept.pk])[0], part_amount=Decimal("-5.00"))
        lock_balances([disputed.pk], reason=LockReason.DISPUTED)
    entry = PaymentEntryFactory(transaction_number="ch_failed", resolved_balance=linked, status="resolved")
    invoice_a.refresh_from_db(), invoice_b.refresh_from_db()
    assert (invoice_a.status, invoice_b.status) == (InvoiceStatus.PAID, InvoiceStatus.PAID) and assigned.amount == Decimal("-30.00")

    assert fail_charge(setting, "ch_failed") == sorted([invoice_a.pk, invoice_b.pk])

    invoice_a.refresh_from_db(), invoice_b.refresh_from_db(), entry.refresh_from_db(), disputed.refresh_from_db()
    assert (invoice_a.status, invoice_b.status) == (InvoiceStatus.OPEN, InvoiceStatus.OPEN)
    assert (open_amount(invoice_a), open_amount(invoice_b)) == (Decimal("100.00"), Decimal("30.00"))
    assert entry.resolved_balance_id is None
    assert sorted((b.transaction_number, b.amount, b.invoice_id, b.locked, b.split_from_id) for b in Balance.objects.all()) == sorted([
        ("ch_other", other_a.amount, invoice_a.pk, False, None), ("ch_unrelated", other_b.amount, invoice_b.pk, False, None),
        ("ch_failed", Decimal("-5.00"), None, True, None)])
    # The disputed part stays with the failed charge: the books keep what they cannot undo, and say so.
    (violation,) = ledger.check_books()
    assert (violation.invariant, violation.subject, violation.amount) == (4, "charge ch_failed", Decimal("-5.00"))
    assert "hold 5.00 EUR, but the failed charge of 150.00 EUR needs 0.00 EUR" in str(violation)
    from payments.models import PaymentTransaction

    PaymentTransaction.objects.filter(charge_id="ch_failed").update(status="succeeded", amount=Decimal("5.00"))
