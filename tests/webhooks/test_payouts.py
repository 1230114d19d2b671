"""Payouts through the webhook inbox (SPEC §12): a day of payments, refunds, a dispute and Stripe's fees becomes one
automatic payout at the fake Stripe, whose `payout.*` events reconcile it against the books."""

from decimal import Decimal

import pytest

from billing.constants import BalanceType
from billing.models import Balance
from payments.constants import DifferenceKind, PayoutLineKind, PayoutStatus
from payments.models import PaymentTransaction, Payout, PayoutLine, StripeFee
from refunds.services import refund_payment_balance
from tests.factories import InvoiceFactory
from webhooks.models import EventStatus, WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def day_of_payments(setting, pay, deliver_all, fake_stripe):
    """Card and SEPA payments, a refund by finance, a Dashboard refund and a dispute, every event delivered."""
    card = [InvoiceFactory(amount=amount) for amount in ("100.00", "59.90", "250.00", "19.99")]
    sepa = [InvoiceFactory(amount=amount) for amount in ("80.00", "120.00")]
    charges = [pay(invoice)["latest_charge"] for invoice in card]
    charges += [pay(invoice, payment_method="pm_sepa_debit")["latest_charge"] for invoice in sepa]
    for charge_id in charges[-2:]:
        fake_stripe.settle_charge(charge_id)
    deliver_all()
    refund_payment_balance(Balance.objects.get(transaction_number=charges[0]), amount="25")
    fake_stripe.create_dashboard_refund(charges[4], 2000)
    fake_stripe.dispute_charge(charges[2])
    deliver_all()
    return charges


def reconciled_payout(deliver_all, fake_stripe, **options) -> Payout:
    stripe_payout = fake_stripe.run_payout(**options)
    deliver_all()
    return Payout.objects.get(stripe_payout_id=stripe_payout["id"])


def test_a_day_of_card_and_sepa_payments_a_refund_a_dispute_and_fees_reconciles(day_of_payments, deliver_all, fake_stripe):
    payout = reconciled_payout(deliver_all, fake_stripe, monthly_fee=500)

    assert payout.status == PayoutStatus.RECONCILED, payout.differences
    assert payout.differences == []
    kinds = sorted(PayoutLine.objects.filter(payout=payout).values_list("kind", flat=True))
    assert kinds == sorted([PayoutLineKind.CHARGE] * 6 + [PayoutLineKind.REFUND] * 2 + [PayoutLineKind.DISPUTE, PayoutLineKind.FEE,
                                                                                        PayoutLineKind.PAYOUT])
    assert PayoutLine.objects.filter(payout=payout, matched=False).count() == 0
    # gross − fees − refunds − disputes = what reached the bank
    assert payout.charges_gross == Decimal("629.89")
    assert payout.refunds_total == Decimal("45.00")
    assert payout.disputes_total == Decimal("250.00")
    card_fees = sum((Decimal(x) * Decimal("0.015")).quantize(Decimal("0.01")) + Decimal("0.25")
                    for x in ("100.00", "59.90", "250.00", "19.99"))
    assert payout.fees_total == card_fees + Decimal("0.70") + Decimal("15.00") + Decimal("5.00")
    assert payout.charges_gross - payout.fees_total - payout.refunds_total - payout.disputes_total + payout.other_total == payout.amount
    assert payout.line_count == 10  # the payout's own balance transaction is not one of its lines' money


def test_lines_link_to_the_books_and_fees_to_the_charges(day_of_payments, deliver_all, fake_stripe):
    payout = reconciled_payout(deliver_all, fake_stripe)
    refunded = PayoutLine.objects.get(payout=payout, kind=PayoutLineKind.CHARGE, source_id=day_of_payments[0])
    assert sorted(refunded.balance_ids) == sorted(Balance.objects.filter(transaction_number=day_of_payments[0],
                                                                         type=BalanceType.PAYMENT).values_list("id", flat=True))
    assert len(refunded.balance_ids) == 2  # split by the refund: both parts are the charge's money
    assert refunded.transaction == PaymentTransaction.objects.get(charge_id=day_of_payments[0])
    dispute = PayoutLine.objects.get(payout=payout, kind=PayoutLineKind.DISPUTE)
    assert dispute.charge_id == day_of_payments[2]
    assert dispute.balance_ids == list(Balance.objects.filter(type=BalanceType.ADJUSTMENT).values_list("id", flat=True))
    refund_line = PayoutLine.objects.get(payout=payout, kind=PayoutLineKind.REFUND, charge_id=day_of_payments[0])
    assert refund_line.balance_ids == list(Balance.objects.filter(type=BalanceType.REFUND, transaction_number=day_of_payments[0])
                                           .values_list("id", flat=True))

    fees = StripeFee.objects.filter(payout=payout)
    assert fees.count() == 6 + 1  # one per charge, the dispute fee
    assert fees.get(charge_id=day_of_payments[0]).amount == Decimal("1.75")  # 1.5 % of 100.00 + 0.25
    assert fees.get(charge_id=day_of_payments[4]).amount == Decimal("0.35")  # SEPA
    dispute_fee = fees.get(payout_line=dispute)
    assert (dispute_fee.amount, dispute_fee.transaction.charge_id) == (Decimal("15.00"), day_of_payments[2])
    assert all(fee.transaction is not None for fee in fees)


def test_a_charge_unknown_to_the_books_makes_the_payout_mismatched_naming_it(day_of_payments, deliver_all, fake_stripe):
    stranger = fake_stripe.add_charge(amount=4200)
    payout = reconciled_payout(deliver_all, fake_stripe)

    assert payout.status == PayoutStatus.MISMATCHED
    assert payout.differences == [{
        "kind": DifferenceKind.UNKNOWN_CHARGE, "object_id": stranger["id"], "expected": "42.00 EUR", "actual": "nothing booked",
        "sentence": f"Charge {stranger['id']} of 42.00 EUR is in payout {payout.stripe_payout_id}, but the books do not know it."}]
    line = PayoutLine.objects.get(payout=payout, source_id=stranger["id"])
    assert not line.matched and "do not know it" in line.note
    assert PayoutLine.objects.filter(payout=payout, matched=False).count() == 1


def test_payout_events_in_any_order_and_twice_reconcile_once(day_of_payments, deliver_all, fake_stripe):
    seen = len(fake_stripe.events)
    fake_stripe.run_payout()
    payout_events = fake_stripe.events_of()[seen:]
    assert [event["type"] for event in payout_events] == ["payout.paid", "payout.reconciliation_completed"]
    deliver_all(list(reversed(payout_events)) + payout_events)
    payout = Payout.objects.get()
    assert payout.status == PayoutStatus.RECONCILED
    assert WebhookEvent.objects.filter(type__startswith="payout.", status=EventStatus.PROCESSED).count() == 2
    assert PayoutLine.objects.filter(payout=payout).count() == 6 + 2 + 1 + 1


def test_a_payout_not_yet_itemised_waits_for_reconciliation_completed(day_of_payments, deliver_all, fake_stripe):
    stripe_payout = fake_stripe.run_payout(reconciliation="in_progress")
    deliver_all()
    payout = Payout.objects.get()
    assert (payout.status, payout.stripe_status, payout.line_count) == (PayoutStatus.PENDING, "paid", 0)
    assert fake_stripe.count("GET", "/v1/balance_transactions") == 0

    fake_stripe.complete_payout_reconciliation(stripe_payout["id"])
    deliver_all()
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.RECONCILED


def test_a_payout_that_fails_after_it_was_paid_is_failed_and_its_money_comes_back_in_the_next(day_of_payments, deliver_all,
                                                                                              fake_stripe):
    first = reconciled_payout(deliver_all, fake_stripe)
    fake_stripe.fail_payout(first.stripe_payout_id)
    deliver_all()
    first.refresh_from_db()
    assert (first.status, first.stripe_status, first.failure_code) == (PayoutStatus.FAILED, "failed", "account_closed")
    # A late payout.paid of the failed payout changes nothing.
    paid_again = fake_stripe.events_of("payout.paid")[0]
    paid_again["id"] += "-redelivered"
    deliver_all([paid_again])
    first.refresh_from_db()
    assert first.status == PayoutStatus.FAILED

    second = reconciled_payout(deliver_all, fake_stripe)
    assert second.status == PayoutStatus.RECONCILED, second.differences
    back = PayoutLine.objects.get(payout=second, kind=PayoutLineKind.PAYOUT, source_id=first.stripe_payout_id)
    assert back.gross == first.amount and back.matched
    assert second.amount == first.amount


def test_a_payout_stripe_describes_in_a_shape_the_service_cannot_read_fails_its_event_and_writes_nothing(setting, client,
                                                                                                       django_capture_on_commit_callbacks):
    from tests.helpers import deliver, make_event
    from tests.stripe_fake.server import TEMPLATES

    unreadable = {**TEMPLATES["payout"], "id": "po_unreadable", "currency": "xyz"}
    deliver(client, setting, make_event("payout.paid", unreadable), django_capture_on_commit_callbacks)
    event = WebhookEvent.objects.get(type="payout.paid")
    assert event.status == EventStatus.FAILED and "cannot be read" in event.last_error and event.attempts == 1
    assert not Payout.objects.exists()


def test_money_held_in_an_entry_its_refund_and_its_dispute_reconcile_against_the_entries(setting, pay, deliver_all, fake_stripe):
    """A payment no invoice matches is held in an entry; a refund and a dispute of it are kept beside that entry.
    The payout's lines match those entries."""
    from billing.constants import PaymentEntryKind
    from billing.models import PaymentEntry
    from providers.stripe import gateway

    pay(InvoiceFactory(amount="250.00"))  # the day's other money: the payout stays positive
    held = gateway.create_payment_intent(setting, amount=Decimal("80.00"), currency="EUR", idempotency_key="unmatched-1",
                                         payment_method_types=["card"], metadata={"provider_setting_id": setting.pk},
                                         payment_method="pm_card_visa", confirm=True)["latest_charge"]
    deliver_all()
    refund = fake_stripe.create_dashboard_refund(held, 1000)
    fake_stripe.dispute_charge(held)
    deliver_all()
    entries = {entry.kind: entry for entry in PaymentEntry.objects.filter(transaction_number=held)}
    assert set(entries) == {PaymentEntryKind.UNMATCHED_PAYMENT, PaymentEntryKind.REFUND_OF_UNBOOKED, PaymentEntryKind.DISPUTE_WITHDRAWAL}

    payout = reconciled_payout(deliver_all, fake_stripe)
    assert payout.status == PayoutStatus.RECONCILED, payout.differences
    lines = {line.kind: line for line in PayoutLine.objects.filter(payout=payout).exclude(kind=PayoutLineKind.CHARGE)}
    lines[PayoutLineKind.CHARGE] = PayoutLine.objects.get(payout=payout, source_id=held)
    assert lines[PayoutLineKind.CHARGE].payment_entry_ids == [entries[PaymentEntryKind.UNMATCHED_PAYMENT].pk]
    assert lines[PayoutLineKind.REFUND].source_id == refund["id"]
    assert lines[PayoutLineKind.REFUND].payment_entry_ids == [entries[PaymentEntryKind.REFUND_OF_UNBOOKED].pk]
    assert lines[PayoutLineKind.DISPUTE].payment_entry_ids == [entries[PaymentEntryKind.DISPUTE_WITHDRAWAL].pk]
    assert "kept beside the entry" in lines[PayoutLineKind.DISPUTE].note
