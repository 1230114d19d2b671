"""Refund service rules: validation, Stripe refusing or timing out, idempotency, concurrency, repair."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.constants import BalanceStatus, BalanceType, LockReason, PaymentEntryKind
from billing.models import Balance, PaymentEntry
from refunds.models import RefundRequest, RefundStatus
from refunds.services import RefundError, finish_pending_refund_requests, refund_payment_balance
from tests.factories import BalanceFactory, InvoiceFactory
from tests.refunds.conftest import payment, refund, rows

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("amount, message", [
    ("0", "greater than zero"), ("-5", "greater than zero"), ("10.001", "more decimals"), ("abc", "not an amount"),
    ("100.01", "exceeds"),
])
def test_bad_amounts_are_refused_without_writing_or_calling_stripe(stripe_charge, payment_balances, fake_stripe, amount, message):
    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    before = rows(charge)
    calls = fake_stripe.count("POST", "/v1/refunds")
    with pytest.raises(RefundError, match=message):
        refund_payment_balance(balance, amount=amount)
    assert rows(charge) == before
    assert not RefundRequest.objects.exists()
    assert fake_stripe.count("POST", "/v1/refunds") == calls


def test_locked_pending_refund_and_non_stripe_balances_are_refused(stripe_charge, payment_balances, setting):
    charge = stripe_charge()
    locked, pending = payment_balances(charge, "-50", "-50")
    Balance.objects.filter(pk=locked.pk).update(locked=True, lock_reason="Disputed")
    Balance.objects.filter(pk=pending.pk).update(status=BalanceStatus.PENDING)
    manual = BalanceFactory(transaction_number="bank-transfer-1")
    refund_balance = BalanceFactory(type=BalanceType.REFUND, amount=Decimal("10"), invoice=None, account=manual.account,
                                    provider_setting=setting, transaction_number=charge)
    for balance, message in [(locked, "locked"), (pending, "pending"), (manual, "not paid through Stripe"),
                             (refund_balance, "Only payment balances")]:
        balance.refresh_from_db()
        with pytest.raises(RefundError, match=message):
            refund_payment_balance(balance, amount="10")
    assert not RefundRequest.objects.exists()


def test_refund_after_an_earlier_partial_refund(stripe_charge, payment_balances):
    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    refund_payment_balance(balance, amount="25")
    balance.refresh_from_db()
    refund_payment_balance(balance, amount="30")
    assert rows(charge) == sorted([payment("-45"), payment("-25", True), payment("-30", True), refund("25"), refund("30")])
    with pytest.raises(RefundError, match="exceeds the 45.00 EUR still refundable"):
        refund_payment_balance(balance, amount="46")


def test_a_locked_balance_in_the_list_is_skipped(stripe_charge, payment_balances):
    charge = stripe_charge()
    first, disputed, last = payment_balances(charge, "-30", "-30", "-40")
    Balance.objects.filter(pk=disputed.pk).update(locked=True, lock_reason=LockReason.DISPUTED)
    refund_payment_balance(last, amount="60")
    first.refresh_from_db()
    disputed.refresh_from_db()
    assert first.amount == Decimal("-10") and not first.locked
    assert disputed.lock_reason == LockReason.DISPUTED
    assert Balance.objects.filter(type="refund").count() == 2


def test_zero_decimal_currency(stripe_charge, payment_balances, fake_stripe):
    charge = stripe_charge(amount=Decimal("5000"), currency="JPY")
    (balance,) = payment_balances(charge, "-5000", currency="JPY")
    refund_payment_balance(balance, amount="1200")
    assert rows(charge) == sorted([payment("-3800"), payment("-1200", True), refund("1200")])
    request = RefundRequest.objects.get()
    assert fake_stripe.objects[request.stripe_refund_id]["amount"] == 1200
    with pytest.raises(RefundError, match="more decimals"):
        refund_payment_balance(Balance.objects.get(amount=Decimal("-3800")), amount="1.5")


def test_stripe_refusing_changes_no_balance(stripe_charge, payment_balances, fake_stripe):
    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    fake_stripe.create_dashboard_refund(charge, 9000)  # Stripe knows more than the books: only 10.00 left there
    with pytest.raises(RefundError, match="Stripe refused the refund"):
        refund_payment_balance(balance, amount="50")
    assert rows(charge) == [payment("-100")]
    assert RefundRequest.objects.get().status == RefundStatus.FAILED


def test_stripe_500_is_retried_with_the_same_idempotency_key(stripe_charge, payment_balances, fake_stripe):
    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    fake_stripe.inject("POST", "/v1/refunds", status=500, times=1, after_processing=True)
    refund_payment_balance(balance, amount="20")
    keys = [r["idempotency_key"] for r in fake_stripe.requests if r["path"] == "/v1/refunds"]
    assert len(keys) == 2 and keys[0] == keys[1] == RefundRequest.objects.get().idempotency_key
    assert len(fake_stripe.refunds_by_charge[charge]) == 1
    assert rows(charge) == sorted([payment("-80"), payment("-20", True), refund("20")])


def test_stripe_timing_out_leaves_a_pending_request_that_the_beat_task_finishes(stripe_charge, payment_balances, fake_stripe, settings):
    settings.STRIPE_TIMEOUT_SECONDS = 0.5
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    fake_stripe.inject("POST", "/v1/refunds", delay=1.5, after_processing=True)  # Stripe refunds, the answer is lost
    with pytest.raises(RefundError, match="checked with Stripe again"):
        refund_payment_balance(balance, amount="30")
    request = RefundRequest.objects.get()
    assert request.status == RefundStatus.PENDING and request.applied_at is None
    assert rows(charge) == [payment("-100")]
    # A second click must not refund again: the pending request still counts.
    with pytest.raises(RefundError, match="exceeds"):
        refund_payment_balance(balance, amount="71")
    assert finish_pending_refund_requests(older_than=timedelta(0)) == 1
    assert len(fake_stripe.refunds_by_charge[charge]) == 1
    assert rows(charge) == sorted([payment("-70"), payment("-30", True), refund("30")])


def test_after_24_hours_the_refund_is_found_by_its_metadata(stripe_charge, payment_balances, fake_stripe, settings):
    settings.STRIPE_TIMEOUT_SECONDS = 0.5
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    fake_stripe.inject("POST", "/v1/refunds", delay=1.5, after_processing=True)
    with pytest.raises(RefundError):
        refund_payment_balance(balance, amount="30")
    RefundRequest.objects.update(created_at=timezone.now() - timedelta(hours=25))
    fake_stripe.expire_idempotency_keys()
    finish_pending_refund_requests()
    assert len(fake_stripe.refunds_by_charge[charge]) == 1  # found, not created again
    assert RefundRequest.objects.get().applied_at is not None


def test_double_submit_with_the_same_key_refunds_once(stripe_charge, payment_balances, fake_stripe):
    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    first = refund_payment_balance(balance, amount="10", idempotency_key="form-token-1")
    second = refund_payment_balance(balance, amount="10", idempotency_key="form-token-1")
    assert first.request.pk == second.request.pk
    assert fake_stripe.count("POST", "/v1/refunds") == 1
    assert Balance.objects.filter(type="refund").count() == 1


def test_failed_refund_then_refunding_the_payment_again_overrefunds(stripe_charge, payment_balances, fake_stripe, setting):
    from refunds.services import apply_stripe_refund

    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    first = refund_payment_balance(balance, amount="40")
    failed = fake_stripe.fail_refund(first.request.stripe_refund_id)
    apply_stripe_refund(setting, failed)
    apply_stripe_refund(setting, failed)  # duplicate delivery
    entry = PaymentEntry.objects.get()
    assert (entry.kind, entry.amount, entry.transaction_number, entry.last_error) == (
        PaymentEntryKind.REFUND_FAILED, Decimal("-40"), charge, "Refund failed: expired_or_canceled_card")
    assert RefundRequest.objects.get().status == RefundStatus.FAILED
    remaining = Balance.objects.get(amount=Decimal("-60"))
    refund_payment_balance(remaining, amount="100", confirm_overrefund=True)
    assert Balance.objects.filter(is_overrefund=True, amount=Decimal("-40")).count() == 1
    assert fake_stripe.objects[charge]["amount_refunded"] == 10000


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_staff_refunding_the_same_charge_at_once_never_over_refund(stripe_charge, payment_balances, fake_stripe):
    charge = stripe_charge()
    older, newer = payment_balances(charge, "-50", "-50")
    outcomes, barrier = [], threading.Barrier(2)

    def click(balance):
        barrier.wait()
        try:
            refund_payment_balance(balance, amount="70")
            outcomes.append("ok")
        except RefundError as exc:
            outcomes.append(str(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=click, args=(b,)) for b in (older, newer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 1
    assert fake_stripe.count("POST", "/v1/refunds") == 1
    assert sum(b.amount for b in Balance.objects.filter(type="refund")) == Decimal("70")
    assert fake_stripe.objects[charge]["amount_refunded"] == 7000


def test_credit_after_payment_then_refund_of_the_credited_amount(stripe_charge, payment_balances):
    """Seed workflow: invoice 100 paid; credit note -30; the credited 30 is refunded; the refund settles the credit."""
    from billing.ledger import assign_balance

    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    invoice = balance.invoice
    credit = InvoiceFactory(kind="credit", amount=Decimal("-30"), account=invoice.account, number="CRN-1")
    result = refund_payment_balance(balance, amount="30")
    (refund_balance,) = result.refund_balances
    assign_balance(refund_balance, document=credit)
    credit.refresh_from_db()
    invoice.refresh_from_db()
    assert credit.status == "paid"
    assert invoice.status == "paid"
    assert sum(b.amount for b in Balance.objects.filter(invoice=invoice)) == Decimal("-100")


def test_credit_after_a_refund(stripe_charge, payment_balances):
    """Seed workflow: invoice 100 paid, 40 refunded, then a credit note of -40 settles against the refund balance."""
    from billing.ledger import assign_balance

    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    result = refund_payment_balance(balance, amount="40")
    credit = InvoiceFactory(kind="credit", amount=Decimal("-40"), account=balance.account, number="CRN-2")
    assign_balance(result.refund_balances[0], document=credit)
    credit.refresh_from_db()
    assert credit.status == "paid"
    assert Balance.objects.get(invoice=credit).locked  # the refund balance keeps its lock
