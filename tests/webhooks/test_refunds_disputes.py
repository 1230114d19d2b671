"""Refund and dispute events: Dashboard refunds, our own refunds seen again, failures, disputes in any order."""

import itertools
from decimal import Decimal

import pytest

from billing.constants import BalanceType, InvoiceStatus, LockReason, PaymentEntryKind
from billing.models import Balance, PaymentEntry
from refunds.models import RefundRequest, RefundSource, RefundStatus
from refunds.services import refund_payment_balance
from tests.factories import InvoiceFactory
from tests.helpers import make_charge, make_event

pytestmark = pytest.mark.django_db


def snapshot(account=None):
    balances = Balance.objects.filter(account=account) if account else Balance.objects.all()
    return sorted((b.type, b.amount, b.locked, b.lock_reason, b.invoice_id is not None, b.is_overrefund) for b in balances)


def test_dashboard_refund_after_the_payment(setting, invoice, pay, deliver_all, fake_stripe):
    pi = pay(invoice)
    deliver_all()
    seen = len(fake_stripe.events)
    fake_stripe.create_dashboard_refund(pi["latest_charge"], 3000)
    deliver_all(fake_stripe.events_of()[seen:])
    request = RefundRequest.objects.get()
    assert (request.source, request.amount, request.balance) == (RefundSource.DASHBOARD, Decimal("30.00"), None)
    assert snapshot() == sorted([
        (BalanceType.PAYMENT, Decimal("-70.000"), False, "", True, False),
        (BalanceType.PAYMENT, Decimal("-30.000"), True, LockReason.REFUND, True, False),
        (BalanceType.REFUND, Decimal("30.000"), True, LockReason.REFUND, False, False),
    ])


def test_dashboard_refund_delivered_before_the_payments_own_events(setting, invoice, pay, deliver_all, fake_stripe):
    pi = pay(invoice)
    fake_stripe.create_dashboard_refund(pi["latest_charge"], 10000)
    events = fake_stripe.events_of()
    deliver_all(list(reversed(events)))
    assert len(snapshot()) == 2
    assert Balance.objects.get(type=BalanceType.PAYMENT).locked
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID  # a refund never changes the invoice


def test_every_order_of_payment_and_refund_events_gives_the_same_books(setting, pay, deliver_all, fake_stripe):
    outcomes = set()
    for index, order in enumerate(itertools.permutations(range(4))):
        fake_stripe.reset()
        invoice = InvoiceFactory()
        pi = pay(invoice, key=f"order-{index}")
        fake_stripe.create_dashboard_refund(pi["latest_charge"], 2500)
        events = fake_stripe.events_of()
        assert len(events) == 4
        deliver_all([events[i] for i in order])
        outcomes.add(tuple(snapshot(invoice.account)))
    assert len(outcomes) == 1


def test_our_own_refund_seen_again_by_webhook_changes_nothing(setting, invoice, pay, deliver_all, fake_stripe):
    pay(invoice)
    deliver_all()
    seen = len(fake_stripe.events)
    balance = Balance.objects.get()
    refund_payment_balance(balance, amount="25")
    before = snapshot()
    deliver_all(fake_stripe.events_of()[seen:])
    assert snapshot() == before
    assert RefundRequest.objects.count() == 1


def test_webhook_applies_our_refund_when_the_service_crashed_before_applying(setting, invoice, pay, deliver_all, fake_stripe):
    """The refund webhook comes first: it applies our request's plan (initiating balance first)."""
    from providers.stripe import gateway

    pi = pay(invoice)
    deliver_all()
    seen = len(fake_stripe.events)
    balance = Balance.objects.get()
    request = RefundRequest.objects.create(balance=balance, provider_setting=setting, charge_id=pi["latest_charge"],
                                           amount=Decimal("40"), currency="EUR", idempotency_key="crash-test")
    gateway.create_refund(setting, charge_id=pi["latest_charge"], amount=Decimal("40"), currency="EUR",
                          metadata={"refund_request_id": request.pk}, idempotency_key="crash-test")
    deliver_all(fake_stripe.events_of()[seen:])
    request.refresh_from_db()
    assert request.applied_at is not None and request.source == RefundSource.SERVICE
    assert Balance.objects.filter(type=BalanceType.REFUND).get().amount == Decimal("40")


def test_failed_refund_event_creates_one_payment_entry(setting, invoice, pay, deliver_all, fake_stripe):
    pi = pay(invoice)
    deliver_all()
    result = refund_payment_balance(Balance.objects.get(), amount="100")
    seen = len(fake_stripe.events)
    fake_stripe.fail_refund(result.request.stripe_refund_id)
    deliver_all(fake_stripe.events_of()[seen:])  # refund.failed and charge.refund.updated: one entry
    entry = PaymentEntry.objects.get()
    assert (entry.kind, entry.amount, entry.last_error) == (PaymentEntryKind.REFUND_FAILED, Decimal("-100.00"),
                                                            "Refund failed: expired_or_canceled_card")
    assert entry.transaction_number == pi["latest_charge"]
    assert RefundRequest.objects.get().status == RefundStatus.FAILED


def test_old_api_version_charge_refunded_with_embedded_refunds(setting, invoice, deliver_all, fake_stripe):
    refund = {"id": "re_embedded", "object": "refund", "amount": 1000, "currency": "eur", "charge": "ch_old", "status": "succeeded",
              "created": 1_700_000_100, "metadata": {}}
    charge = make_charge(charge_id="ch_old", metadata={"invoice_id": str(invoice.pk)}, refunds=[refund])
    deliver_all([make_event("charge.refunded", charge, api_version="2019-02-19")])
    assert fake_stripe.requests == []  # nothing fetched: the refunds were embedded
    assert Balance.objects.filter(type=BalanceType.REFUND, stripe_refund_id="re_embedded").count() == 1


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_dispute_events_in_any_order(setting, pay, deliver_all, fake_stripe, outcome):
    outcomes = set()
    for index, order in enumerate(itertools.permutations(range(3 if outcome == "lost" else 4))):
        fake_stripe.reset()
        invoice = InvoiceFactory()
        pi = pay(invoice, key=f"dispute-{outcome}-{index}")
        payment_events = fake_stripe.events_of()
        dispute_events = fake_stripe.dispute_charge(pi["latest_charge"], outcome=outcome)
        deliver_all([dispute_events[i] for i in order] + payment_events + dispute_events[:1])
        invoice.refresh_from_db()
        outcomes.add((invoice.status, tuple(snapshot(invoice.account))))
    assert len(outcomes) == 1
    status, rows = outcomes.pop()
    adjustments = [row for row in rows if row[0] == BalanceType.ADJUSTMENT]
    payments = [row for row in rows if row[0] == BalanceType.PAYMENT]
    # Lost: the payment stays locked as disputed (its money was taken back); won: the dispute releases it (SPEC §11.3).
    assert payments[0][2:4] == ((True, LockReason.DISPUTED) if outcome == "lost" else (False, ""))
    if outcome == "lost":
        assert [a[1] for a in adjustments] == [Decimal("100.000")] and status == InvoiceStatus.OPEN
    else:
        assert sorted(a[1] for a in adjustments) == [Decimal("-100.000"), Decimal("100.000")] and status == InvoiceStatus.PAID
