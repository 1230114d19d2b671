"""SPEC §8's worked examples, each through the real service and the fake Stripe."""

from decimal import Decimal

import pytest

from billing.constants import InvoiceStatus, LockReason
from billing.models import Balance
from refunds.models import RefundRequest, RefundStatus
from refunds.services import OverrefundNotConfirmed, refund_payment_balance
from tests.refunds.conftest import payment, refund, rows

pytestmark = pytest.mark.django_db


def test_complete_single(stripe_charge, payment_balances, fake_stripe, admin_user):
    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    result = refund_payment_balance(balance, amount="100", requested_by=admin_user)
    assert rows(charge) == sorted([payment("-100", locked=True), refund("100")])
    assert all(b.lock_reason == LockReason.REFUND for b in Balance.objects.all())
    assert [b.amount for b in result.refund_balances] == [Decimal("100.00")]
    request = RefundRequest.objects.get()
    assert request.status == RefundStatus.SUCCEEDED and request.stripe_refund_id
    assert {b.stripe_refund_id for b in Balance.objects.filter(type="refund")} == {request.stripe_refund_id}
    assert fake_stripe.count("POST", "/v1/refunds") == 1
    stripe_refund = fake_stripe.objects[request.stripe_refund_id]
    assert stripe_refund["amount"] == 10000 and stripe_refund["metadata"] == {"refund_request_id": str(request.pk)}


def test_partial_single(stripe_charge, payment_balances):
    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    refund_payment_balance(balance, amount="25", requested_by=None)
    assert rows(charge) == sorted([payment("-75"), payment("-25", locked=True), refund("25")])
    part = Balance.objects.get(amount=Decimal("-25"))
    assert part.split_from == balance and part.invoice_id == balance.invoice_id


def test_complete_split(stripe_charge, payment_balances):
    charge = stripe_charge()
    older, newer = payment_balances(charge, "-75", "-25")
    refund_payment_balance(newer, amount="25")
    assert rows(charge) == sorted([payment("-75"), payment("-25", locked=True), refund("25")])


def test_partial_split(stripe_charge, payment_balances):
    charge = stripe_charge()
    older, newer = payment_balances(charge, "-75", "-25")
    refund_payment_balance(newer, amount="40")
    assert rows(charge) == sorted([payment("-60"), payment("-15", locked=True), payment("-25", locked=True),
                                   refund("25"), refund("15")])
    older.refresh_from_db()
    assert older.amount == Decimal("-60") and not older.locked


def test_full_amount_split(stripe_charge, payment_balances):
    charge = stripe_charge()
    older, newer = payment_balances(charge, "-75", "-25")
    refund_payment_balance(older, amount="100")
    assert rows(charge) == sorted([payment("-75", locked=True), payment("-25", locked=True), refund("75"), refund("25")])


def test_overrefund(stripe_charge, payment_balances, fake_stripe):
    charge = stripe_charge()
    available, already_locked = payment_balances(charge, "-60", "-40")
    Balance.objects.filter(pk=already_locked.pk).update(locked=True, lock_reason=LockReason.REFUND)
    with pytest.raises(OverrefundNotConfirmed):
        refund_payment_balance(available, amount="100")
    assert fake_stripe.count("POST", "/v1/refunds") == 0
    refund_payment_balance(available, amount="100", confirm_overrefund=True)
    assert rows(charge) == sorted([payment("-60", locked=True), refund("60"), payment("-40", locked=True, linked=False), refund("40"),
                                   payment("-40", locked=True)])
    overrefund = Balance.objects.get(is_overrefund=True)
    assert overrefund.invoice is None and overrefund.amount == Decimal("-40")


def test_refund_changes_no_invoice_status(stripe_charge, payment_balances):
    charge = stripe_charge()
    (balance,) = payment_balances(charge, "-100")
    invoice = balance.invoice
    invoice.status = InvoiceStatus.PAID
    invoice.save()
    refund_payment_balance(balance, amount="30")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert not Balance.objects.filter(type="refund", invoice__isnull=False).exists()
