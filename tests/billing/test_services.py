"""Invoice status, booking payments, split/lock/delete, assignment and the seed's credit workflows."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from billing import services
from billing.constants import BalanceStatus, BalanceType, InvoiceStatus, LockReason, PaymentEntryKind
from billing.models import Balance
from billing.selectors import open_amount
from tests.factories import AccountFactory, BalanceFactory, CreditNoteFactory, InvoiceFactory, PaymentEntryFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def pay(invoice, amount, **kwargs):
    return services.book_payment(account=invoice.account, invoice=invoice, amount=Decimal(amount), currency=invoice.currency,
                                 date=NOW, transaction_number=kwargs.pop("tx", "ch_x"), **kwargs)


def test_finalize_then_payment_pays_then_deleting_reopens():
    invoice = InvoiceFactory(status=InvoiceStatus.DRAFT, finalized_at=None)
    services.finalize_invoice(invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN and invoice.finalized_at
    setting = ProviderSettingFactory()
    pay(invoice, "100.00", provider_setting=setting, status=BalanceStatus.PENDING)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and open_amount(invoice) == 0
    services.confirm_payment_balances(provider_setting=setting, transaction_number="ch_x")
    assert Balance.objects.get().status == BalanceStatus.CONFIRMED
    assert services.delete_payment_balances(provider_setting=setting, transaction_number="ch_x") == [invoice.pk]
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
    with pytest.raises(services.BillingError, match="balances linked"):
        services.cancel_invoice(invoice)


@pytest.mark.parametrize("kwargs, message", [
    ({"currency": "USD"}, "is in EUR"), ({"amount": Decimal("1.001")}, "more decimals"), ({"currency": "XXQ"}, "Unknown currency"),
])
def test_booking_bad_input_writes_nothing(kwargs, message):
    invoice = InvoiceFactory()
    params = {"account": invoice.account, "invoice": invoice, "amount": Decimal("10"), "currency": "EUR", "date": NOW,
              "transaction_number": "ch_1", **kwargs}
    with pytest.raises(services.BillingError, match=message):
        services.book_payment(**params)
    assert not Balance.objects.exists()


def test_split_lock_unlock():
    balance = BalanceFactory(amount=Decimal("-100"))
    original, part = services.split_balance(balance, part_amount=Decimal("-30"))
    assert (original.amount, part.amount, part.split_from, part.invoice) == (Decimal("-70"), Decimal("-30"), original, original.invoice)
    with pytest.raises(services.BillingError, match="smaller than"):
        services.split_balance(original, part_amount=Decimal("-70"))
    with pytest.raises(services.BillingError, match="balance's sign"):
        services.split_balance(original, part_amount=Decimal("10"))
    services.lock_balances([part], reason=LockReason.DISPUTED)
    part.refresh_from_db()
    assert part.locked and part.lock_reason == LockReason.DISPUTED
    with pytest.raises(services.BillingError, match="locked"):
        services.split_balance(part, part_amount=Decimal("-1"))
    services.unlock_balance(part)
    part.refresh_from_db()
    assert not part.locked


def test_assign_payment_to_invoice_splits_what_does_not_fit():
    account = AccountFactory()
    invoice = InvoiceFactory(account=account, amount=Decimal("80"))
    balance = BalanceFactory(account=account, invoice=None, amount=Decimal("-100"))
    assigned = services.assign_balance(balance, document=invoice)
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
    with pytest.raises(services.BillingError, match=message):
        services.assign_balance(balance, document=document, amount=amount)
    assert list(Balance.objects.values_list("id", "amount", "invoice_id")) == before


def test_locked_refund_balance_assigned_to_credit_keeps_its_lock_in_both_parts():
    account = AccountFactory()
    credit = CreditNoteFactory(account=account, amount=Decimal("-30"))
    refund = BalanceFactory(account=account, invoice=None, type=BalanceType.REFUND, amount=Decimal("50"), locked=True,
                            lock_reason=LockReason.REFUND)
    services.assign_balance(refund, document=credit)
    assert sorted((b.amount, b.locked, b.invoice_id) for b in Balance.objects.all()) == [
        (Decimal("20"), True, None), (Decimal("30"), True, credit.pk)]
    credit.refresh_from_db()
    assert credit.status == InvoiceStatus.PAID


def test_credit_before_payment():
    """Seed workflow: finalize invoice 100, credit note -30 settles 30 of it, then the customer pays 70."""
    account = AccountFactory()
    invoice = InvoiceFactory(account=account, amount=Decimal("100"))
    credit = CreditNoteFactory(account=account, amount=Decimal("-30"))
    on_invoice, on_credit = services.assign_credit_note(credit, invoice=invoice)
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
    assert services.auto_assign(account=account, currency="EUR") == 1
    second.refresh_from_db()
    assert second.status == InvoiceStatus.PAID


def test_resolve_payment_entry_into_an_unlocked_payment_balance():
    invoice = InvoiceFactory()
    entry = PaymentEntryFactory(kind=PaymentEntryKind.UNMATCHED_PAYMENT, amount=Decimal("-100"), transaction_number="ch_entry")
    balance = services.resolve_payment_entry(entry, invoice=invoice)
    assert (balance.amount, balance.transaction_number, balance.locked, balance.invoice) == (Decimal("-100"), "ch_entry", False, invoice)
    entry.refresh_from_db()
    assert entry.status == "resolved" and entry.resolved_balance == balance
    with pytest.raises(services.BillingError, match="already resolved"):
        services.resolve_payment_entry(entry, invoice=invoice)


def _failed_charge_books(delete):
    """A charge of 150.00: 100.00 linked to invoice A, the 50.00 surplus split off and assigned to 30.00 of invoice B (the
    assignment splits it again), a locked part of it disputed, an entry resolved onto one of its balances; another
    charge's 20.00 on A and an unrelated 70.00 on B stay. Returns what `delete` leaves."""
    setting = ProviderSettingFactory()
    invoice_a = InvoiceFactory(amount=Decimal("120.00"))
    invoice_b = InvoiceFactory(account=invoice_a.account, business_entity=invoice_a.business_entity, amount=Decimal("100.00"))
    other_a = pay(invoice_a, "20", tx="ch_other", provider_setting=setting)[0]
    other_b = pay(invoice_b, "70", tx="ch_unrelated", provider_setting=setting)[0]
    linked, surplus = pay(invoice_a, "150", tx="ch_failed", provider_setting=setting)
    assigned = services.assign_balance(surplus, document=invoice_b)
    kept = Balance.objects.get(transaction_number="ch_failed", invoice=None)
    _, disputed = services.split_balance(kept, part_amount=Decimal("-5.00"))
    services.lock_balances([disputed], reason=LockReason.DISPUTED)
    entry = PaymentEntryFactory(transaction_number="ch_failed", resolved_balance=linked, status="resolved")
    invoice_a.refresh_from_db(), invoice_b.refresh_from_db()
    assert (invoice_a.status, invoice_b.status) == (InvoiceStatus.PAID, InvoiceStatus.PAID) and assigned.amount == Decimal("-30.00")

    recomputed = delete(provider_setting=setting, transaction_number="ch_failed")

    invoice_a.refresh_from_db(), invoice_b.refresh_from_db(), entry.refresh_from_db(), disputed.refresh_from_db()
    left = sorted((b.transaction_number, b.amount, b.invoice_id, b.locked, b.split_from_id) for b in Balance.objects.all())
    return {"recomputed": recomputed == sorted([invoice_a.pk, invoice_b.pk]), "statuses": (invoice_a.status, invoice_b.status),
            "open": (open_amount(invoice_a), open_amount(invoice_b)), "entry_balance": entry.resolved_balance_id,
            "left": left == sorted([("ch_other", other_a.amount, invoice_a.pk, False, None),
                                    ("ch_unrelated", other_b.amount, invoice_b.pk, False, None),
                                    ("ch_failed", Decimal("-5.00"), None, True, None)])}


@pytest.mark.parametrize("delete", [services.delete_payment_balances, services._delete_payment_balances_portable],
                         ids=["postgresql", "portable"])
def test_a_failed_charge_removes_its_unlocked_balances_wherever_they_went_and_reopens_every_invoice(delete):
    """The one-round-trip PostgreSQL statement and the portable path (the demo's SQLite) leave the same books: the
    charge's unlocked balances gone on both invoices, the disputed part kept but detached, the entry's link cleared."""
    if delete is services._delete_payment_balances_portable:
        def delete(*, provider_setting, transaction_number, portable=services._delete_payment_balances_portable):
            with transaction.atomic():
                return portable(provider_setting, transaction_number)
    assert _failed_charge_books(delete) == {
        "recomputed": True, "statuses": (InvoiceStatus.OPEN, InvoiceStatus.OPEN), "open": (Decimal("100.00"), Decimal("30.00")),
        "entry_balance": None, "left": True,
    }
