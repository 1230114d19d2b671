"""Disputes book the money taken back where the charge's money actually is (SPEC §7), through the real endpoint.

Unlinked surplus first, then invoice-linked balances newest first; money held in an entry is withdrawn beside it and
no invoice changes; once per dispute id, never more than the charge holds; an inquiry withdraws nothing; the reversal
of a dispute won never lets an open amount cross zero.
"""

from decimal import Decimal

import pytest

from billing.constants import BalanceType, InvoiceStatus, PaymentEntryKind
from billing.models import Balance, PaymentEntry
from billing.selectors import open_amount
from providers.stripe import gateway
from tests.factories import InvoiceFactory

pytestmark = pytest.mark.django_db


def paid_twice_invoice(pay, deliver_all, fake_stripe, amount="100.00"):
    invoice = InvoiceFactory(amount=Decimal(amount))
    first = pay(invoice, key="first")
    second = pay(invoice, key="second")  # the customer paid the same invoice twice (two tabs, a retry)
    deliver_all()
    return invoice, first["latest_charge"], second["latest_charge"]


def state(invoice):
    invoice.refresh_from_db()
    return invoice.status, open_amount(invoice)


def adjustments(charge_id):
    return sorted(Balance.objects.filter(type=BalanceType.ADJUSTMENT, transaction_number=charge_id).values_list("amount", "invoice_id"))


def test_a_dispute_of_the_duplicate_payment_leaves_the_paid_invoice_paid(setting, pay, deliver_all, fake_stripe):
    invoice, _first, duplicate = paid_twice_invoice(pay, deliver_all, fake_stripe)
    seen = len(fake_stripe.events)
    fake_stripe.dispute_charge(duplicate, outcome="lost")
    deliver_all(fake_stripe.events_of()[seen:])
    assert state(invoice) == (InvoiceStatus.PAID, Decimal("0"))  # the payment page would otherwise charge again
    assert adjustments(duplicate) == [(Decimal("100.000"), None)]  # taken from the unlinked duplicate


def test_a_partial_dispute_of_an_overpayment_takes_the_surplus_first(setting, pay, deliver_all, fake_stripe):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    charge = pay(invoice, amount=Decimal("150.00"))["latest_charge"]
    deliver_all()
    seen = len(fake_stripe.events)
    fake_stripe.dispute_charge(charge, amount=3000)
    deliver_all(fake_stripe.events_of()[seen:])
    assert state(invoice) == (InvoiceStatus.PAID, Decimal("0"))
    assert adjustments(charge) == [(Decimal("30.000"), None)]
    fake_stripe.dispute_charge(charge, amount=15000)  # a second dispute: only what the charge still holds (120.00)
    deliver_all(fake_stripe.events_of()[seen:])
    assert adjustments(charge) == sorted([(Decimal("30.000"), None), (Decimal("20.000"), None), (Decimal("100.000"), invoice.pk)])
    assert state(invoice) == (InvoiceStatus.OPEN, Decimal("100.00"))


def test_a_charge_split_over_two_invoices_reopens_each_by_what_it_paid_newest_first(setting, pay, deliver_all, fake_stripe):
    from billing import ledger

    first = InvoiceFactory(amount=Decimal("100.00"))
    second = InvoiceFactory(account=first.account, business_entity=first.business_entity, amount=Decimal("50.00"))
    charge = pay(first, amount=Decimal("150.00"))["latest_charge"]
    deliver_all()
    ledger.assign_balance(Balance.objects.get(transaction_number=charge, invoice=None), document=second)
    assert state(first)[0] == state(second)[0] == InvoiceStatus.PAID
    seen = len(fake_stripe.events)
    fake_stripe.dispute_charge(charge, amount=6000)
    deliver_all(fake_stripe.events_of()[seen:])
    assert state(second) == (InvoiceStatus.OPEN, Decimal("50.00"))  # the newer balance first
    assert state(first) == (InvoiceStatus.OPEN, Decimal("10.00"))
    assert adjustments(charge) == sorted([(Decimal("50.000"), second.pk), (Decimal("10.000"), first.pk)])


def test_a_dispute_of_a_payment_in_another_currency_changes_no_invoice(setting, deliver_all, fake_stripe):
    invoice = InvoiceFactory(amount=Decimal("100.00"), currency="EUR")
    payment_intent = gateway.create_payment_intent(
        setting, amount=Decimal("100.00"), currency="USD", idempotency_key="usd-for-eur", payment_method_types=["card"],
        metadata={"invoice_id": invoice.pk, "provider_setting_id": setting.pk}, payment_method="pm_card_visa", confirm=True)
    deliver_all()
    entry = PaymentEntry.objects.get(kind=PaymentEntryKind.CURRENCY_MISMATCH)
    seen = len(fake_stripe.events)
    fake_stripe.dispute_charge(payment_intent["latest_charge"], outcome="lost")
    deliver_all(fake_stripe.events_of()[seen:])
    assert state(invoice) == (InvoiceStatus.OPEN, Decimal("100.00"))  # a USD dispute never reopens (or touches) the EUR invoice
    assert not Balance.objects.exists()
    withdrawal = PaymentEntry.objects.get(kind=PaymentEntryKind.DISPUTE_WITHDRAWAL)
    assert (withdrawal.parent, withdrawal.amount, withdrawal.currency) == (entry, Decimal("100.00"), "USD")


def test_funds_reinstated_after_the_customer_paid_again_become_unlinked_surplus(setting, pay, deliver_all, fake_stripe):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    charge = pay(invoice, key="disputed")["latest_charge"]
    deliver_all()
    events = fake_stripe.dispute_charge(charge, outcome="won")
    withdrawn, reinstated = events[:2], events[2:]
    deliver_all(withdrawn)
    assert state(invoice) == (InvoiceStatus.OPEN, Decimal("100.00"))
    seen = len(fake_stripe.events)
    pay(invoice, key="paid-again")
    deliver_all(fake_stripe.events_of()[seen:])
    assert state(invoice) == (InvoiceStatus.PAID, Decimal("0"))
    deliver_all(reinstated)
    assert state(invoice) == (InvoiceStatus.PAID, Decimal("0"))  # never below zero, and paid
    reversal = Balance.objects.get(type=BalanceType.ADJUSTMENT, amount__lt=0)
    assert (reversal.amount, reversal.invoice) == (Decimal("-100.000"), None)


def test_an_inquiry_withdraws_nothing_and_a_second_dispute_books_once(setting, pay, deliver_all, fake_stripe):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    charge = pay(invoice)["latest_charge"]
    deliver_all()
    seen = len(fake_stripe.events)
    fake_stripe.dispute_charge(charge, inquiry=True, outcome="closed")
    deliver_all(fake_stripe.events_of()[seen:])
    assert adjustments(charge) == [] and state(invoice) == (InvoiceStatus.PAID, Decimal("0"))
    assert not Balance.objects.get(type=BalanceType.PAYMENT).locked  # the closed inquiry released the payment
    chargeback = fake_stripe.dispute_charge(charge, outcome="lost")
    second = fake_stripe.dispute_charge(charge)  # Stripe reports another dispute of the same charge
    deliver_all(chargeback + second + chargeback)  # duplicates too
    assert adjustments(charge) == [(Decimal("100.000"), invoice.pk)]  # never more than the charge holds
    assert state(invoice) == (InvoiceStatus.OPEN, Decimal("100.00"))


def test_dispute_events_of_an_overpayment_in_any_order_give_the_same_books(setting, pay, deliver_all, fake_stripe):
    import itertools

    outcomes = set()
    for index, order in enumerate(itertools.permutations(range(4))):
        fake_stripe.reset()
        invoice = InvoiceFactory(amount=Decimal("80.00"))
        charge = pay(invoice, amount=Decimal("100.00"), key=f"order-{index}")["latest_charge"]
        payment_events = fake_stripe.events_of()
        disputes = fake_stripe.dispute_charge(charge, amount=5000, outcome="won")
        deliver_all([disputes[i] for i in order] + payment_events)
        outcomes.add((state(invoice), tuple((amount, linked is not None) for amount, linked in adjustments(charge))))
    assert outcomes == {((InvoiceStatus.PAID, Decimal("0")), ((Decimal("-30.000"), True), (Decimal("-20.000"), False),
                                                               (Decimal("20.000"), False), (Decimal("30.000"), True)))}
