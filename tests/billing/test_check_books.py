"""check_books finds each kind of broken books (SPEC §11, 1-6), and `manage.py check_books` is a monitoring probe.

These tests break the books on purpose, behind the ledger's back (as a bad migration or a hand-edited database would),
so they are marked `books_may_break`: the suite's own after-test check would fail them otherwise.
"""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from billing.constants import BalanceType, InvoiceStatus, LockReason, PaymentEntryKind
from billing.ledger import check_books
from billing.models import Balance, Invoice, PaymentEntry
from payments.models import PaymentTransaction
from refunds.models import RefundRequest
from tests.factories import BalanceFactory, BusinessEntityFactory, InvoiceFactory, ProviderSettingFactory

pytestmark = [pytest.mark.django_db, pytest.mark.books_may_break]


def invariants() -> list[int]:
    return sorted({violation.invariant for violation in check_books()})


@pytest.fixture
def paid():
    """An invoice paid by a Stripe charge, as the webhooks leave it: sound books."""
    setting = ProviderSettingFactory()
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    balance = BalanceFactory(invoice=invoice, account=invoice.account, provider_setting=setting, transaction_number="ch_sound")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and check_books() == []
    return invoice, balance, setting


def test_1_a_status_that_does_not_follow_the_open_amount(paid):
    invoice, *_ = paid
    Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.OPEN)
    assert invariants() == [1]


def test_1_an_open_amount_below_zero(paid):
    invoice, balance, _ = paid
    BalanceFactory(invoice=invoice, account=invoice.account, amount=Decimal("-10.00"), recompute_status=False)
    (violation,) = [v for v in check_books() if "crossed zero" in v.problem]
    assert (violation.invariant, violation.amount) == (1, Decimal("-10.00"))


def test_2_a_balance_on_another_customers_invoice_or_an_entity_its_setting_does_not_serve(paid):
    invoice, balance, setting = paid
    other = InvoiceFactory(amount=Decimal("100.00"))
    Balance.objects.filter(pk=balance.pk).update(invoice=other)
    assert 2 in invariants()
    Balance.objects.filter(pk=balance.pk).update(invoice=invoice)
    setting.business_entities.set([BusinessEntityFactory()])  # the setting now serves only another entity
    assert invariants() == [2]


def test_3_a_refunded_payment_unlocked_or_not_mirrored(paid):
    invoice, balance, setting = paid
    Balance.objects.filter(pk=balance.pk).update(locked=True, lock_reason=LockReason.REFUND)
    BalanceFactory(type=BalanceType.REFUND, invoice=None, account=invoice.account, amount=Decimal("60.00"), locked=True,
                   lock_reason=LockReason.REFUND, refunds_balance=balance, provider_setting=setting, transaction_number="ch_sound")
    assert 3 in invariants()  # 60.00 refunded of a 100.00 balance
    Balance.objects.filter(pk=balance.pk).update(locked=False, lock_reason="")
    assert 3 in invariants()


def test_4_a_charge_whose_books_do_not_hold_its_money(paid):
    PaymentTransaction.objects.filter(charge_id="ch_sound").update(amount=Decimal("120.00"))
    (violation,) = check_books()
    assert (violation.invariant, violation.subject, violation.amount) == (4, "charge ch_sound", Decimal("20.00"))
    PaymentTransaction.objects.filter(charge_id="ch_sound").update(amount=Decimal("100.00"), status="failed")
    assert invariants() == [4]  # a failed charge must hold nothing


def test_4_and_5_a_refund_stripe_made_that_the_books_never_saw(paid):
    invoice, balance, setting = paid
    RefundRequest.objects.create(balance=balance, provider_setting=setting, charge_id="ch_sound", amount=Decimal("30.00"), currency="EUR",
                                 idempotency_key="never-booked", stripe_refund_id="re_lost", status="succeeded",
                                 applied_at="2026-01-01T00:00:00Z")
    assert invariants() == [4, 5]


def test_6_a_withdrawal_reversed_twice(paid):
    invoice, balance, setting = paid
    withdrawal = BalanceFactory(type=BalanceType.ADJUSTMENT, invoice=invoice, account=invoice.account, amount=Decimal("100.00"),
                                dispute_id="dp_twice", adjusts_balance=balance, locked=True, lock_reason=LockReason.DISPUTED,
                                provider_setting=setting, transaction_number="ch_sound", recompute_status=False)
    for _ in range(2):
        BalanceFactory(type=BalanceType.ADJUSTMENT, invoice=None, account=invoice.account, amount=Decimal("-100.00"),
                       dispute_id="dp_twice", adjusts_balance=withdrawal, locked=True, lock_reason=LockReason.DISPUTED,
                       provider_setting=setting, transaction_number="ch_sound", split_from=withdrawal)
    assert 6 in invariants()


def test_4_an_entry_of_money_received_with_a_positive_amount():
    PaymentEntry.objects.create(kind=PaymentEntryKind.UNMATCHED_PAYMENT, transaction_number="ch_odd", amount=Decimal("5.00"),
                                currency="EUR")
    assert invariants() == [4]


def test_the_probe_exits_0_on_sound_books_and_1_with_a_readable_list(paid):
    out = StringIO()
    call_command("check_books", stdout=out)
    assert "sound" in out.getvalue()
    invoice, *_ = paid
    Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.OPEN)
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("check_books", stdout=out, stderr=err)
    assert exit_.value.code == 1
    assert f"[invariant 1] {invoice.business_entity.name} · invoice {invoice.number}: status is open" in out.getvalue()
    assert "1 violation(s)" in err.getvalue()
