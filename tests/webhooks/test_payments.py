"""Payment events become exactly one payment balance per charge, in any order, with any duplicates."""

import itertools
from decimal import Decimal

import pytest

from billing.constants import BalanceStatus, InvoiceStatus, PaymentEntryKind
from billing.models import Balance, PaymentEntry
from payments.constants import TransactionStatus
from payments.models import PaymentTransaction
from tests.factories import InvoiceFactory, PaymentEntryFactory, ProviderSettingFactory
from tests.helpers import make_charge, make_event
from webhooks.models import EventStatus, WebhookEvent

pytestmark = pytest.mark.django_db


def books(invoice):
    invoice.refresh_from_db()
    rows = sorted((b.transaction_number, b.amount, b.status, b.invoice_id, b.locked) for b in Balance.objects.all())
    return invoice.status, rows


def test_card_payment_books_one_confirmed_balance_and_pays_the_invoice(setting, invoice, pay, deliver_all, fake_stripe):
    pi = pay(invoice)
    deliver_all()
    balance = Balance.objects.get()
    assert balance.amount == Decimal("-100.00")
    assert balance.transaction_number == pi["latest_charge"]
    assert balance.status == BalanceStatus.CONFIRMED
    assert balance.invoice == invoice
    assert balance.provider_setting == setting
    charge = fake_stripe.objects[pi["latest_charge"]]
    assert int(balance.date.timestamp()) == charge["created"]
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    tx = PaymentTransaction.objects.get()
    assert (tx.charge_id, tx.status, tx.invoice) == (pi["latest_charge"], TransactionStatus.SUCCEEDED, invoice)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}


def test_sepa_pending_marks_paid_at_once_then_failure_reopens(setting, invoice, pay, deliver_all, fake_stripe):
    pi = pay(invoice, "pm_sepa_debit_fail")
    deliver_all()
    balance = Balance.objects.get()
    assert balance.status == BalanceStatus.PENDING
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    delivered = len(fake_stripe.events)
    fake_stripe.settle_charge(pi["latest_charge"], succeed=False)
    deliver_all(fake_stripe.events_of()[delivered:])
    assert not Balance.objects.exists()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN
    tx = PaymentTransaction.objects.get()
    assert tx.status == TransactionStatus.FAILED
    assert "insufficient funds" in tx.last_error


@pytest.mark.parametrize("succeed", [True, False])
def test_every_permutation_of_a_sepa_payments_events_gives_the_same_books(setting, pay, deliver_all, fake_stripe, succeed):
    outcomes = set()
    for order_index, order in enumerate(itertools.permutations(range(4))):
        invoice = InvoiceFactory()
        fake_stripe.reset()
        pi = pay(invoice, "pm_sepa_debit", key=f"perm-{order_index}")
        fake_stripe.settle_charge(pi["latest_charge"], succeed=succeed)
        events = fake_stripe.events_of("payment_intent.processing", "charge.pending", "charge.succeeded", "payment_intent.succeeded",
                                       "charge.failed", "payment_intent.payment_failed")
        assert len(events) == 4
        deliver_all([events[i] for i in order] + [events[order[0]]])  # plus a duplicate
        invoice.refresh_from_db()
        rows = [(b.amount, b.status, b.invoice_id == invoice.pk) for b in Balance.objects.filter(transaction_number=pi["latest_charge"])]
        outcomes.add((invoice.status, tuple(rows)))
    expected = (InvoiceStatus.PAID, ((Decimal("-100.000"), BalanceStatus.CONFIRMED, True),)) if succeed else (InvoiceStatus.OPEN, ())
    assert outcomes == {expected}


def test_failed_is_final_even_when_it_arrives_first(setting, invoice, client, deliver_all):
    charge = make_charge(metadata={"invoice_id": str(invoice.pk)}, status="failed", charge_id="ch_final")
    deliver_all([make_event("charge.failed", charge)])
    deliver_all([make_event("charge.pending", {**charge, "status": "pending"}),
                 make_event("charge.succeeded", {**charge, "status": "succeeded"})])
    assert not Balance.objects.exists()
    assert PaymentTransaction.objects.get().status == TransactionStatus.FAILED


def test_payment_intent_with_failed_then_succeeded_charge_has_two_transactions_one_balance(setting, invoice, pay, deliver_all, fake_stripe):
    from providers.stripe import gateway

    failed = pay(invoice, "pm_card_chargeDeclined")
    succeeded = gateway.confirm_payment_intent(setting, failed["id"], idempotency_key="second-try", payment_method="pm_card_visa")
    deliver_all()
    assert PaymentTransaction.objects.count() == 2
    assert PaymentTransaction.objects.get(charge_id=failed["last_payment_error"]["charge"]).status == TransactionStatus.FAILED
    assert Balance.objects.get().transaction_number == succeeded["latest_charge"]
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_payment_larger_than_open_amount_books_the_surplus_unlinked(setting, invoice, deliver_all):
    charge = make_charge(amount=15000, metadata={"invoice_id": str(invoice.pk)})
    deliver_all([make_event("charge.succeeded", charge)])
    linked = Balance.objects.get(invoice=invoice)
    surplus = Balance.objects.get(invoice__isnull=True)
    assert (linked.amount, surplus.amount) == (Decimal("-100.00"), Decimal("-50.00"))
    assert surplus.transaction_number == linked.transaction_number == charge["id"]
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_unmatched_payment_becomes_one_open_payment_entry(setting, deliver_all):
    charge = make_charge(metadata={})
    deliver_all([make_event("charge.succeeded", charge), make_event("charge.succeeded", charge)])
    entry = PaymentEntry.objects.get()
    assert (entry.kind, entry.transaction_number, entry.amount) == (PaymentEntryKind.UNMATCHED_PAYMENT, charge["id"], Decimal("-100.00"))
    assert not Balance.objects.exists()


@pytest.mark.books_may_break  # a refund entry on a debit that then fails cannot happen: built to show it is left alone
def test_a_failed_unmatched_debit_resolves_its_open_entry_and_leaves_refund_entries_alone(setting, deliver_all):
    """The money of an unmatched SEPA debit never arrived: finance has nothing left to decide on its entry."""
    charge = make_charge(metadata={}, status="pending")
    deliver_all([make_event("charge.pending", charge)])
    refund_entry = PaymentEntryFactory(transaction_number=charge["id"], stripe_refund_id="re_1", kind=PaymentEntryKind.REFUND_FAILED)
    deliver_all([make_event("charge.failed", {**charge, "status": "failed", "failure_message": "insufficient funds"})])
    entry = PaymentEntry.objects.get(stripe_refund_id=None)
    assert (entry.kind, entry.status, entry.last_error) == (PaymentEntryKind.UNMATCHED_PAYMENT, "resolved", "Payment failed: insufficient funds")
    assert entry.resolved_at is not None
    refund_entry.refresh_from_db()
    assert (refund_entry.status, refund_entry.resolved_at) == ("open", None)


def test_a_charge_that_arrives_succeeded_makes_its_transaction_succeeded(setting, invoice, deliver_all):
    """No pending step (a card): the one event books the payment confirmed and the transaction says succeeded."""
    deliver_all([make_event("charge.succeeded", make_charge(metadata={"invoice_id": str(invoice.pk)}))])
    assert PaymentTransaction.objects.get().status == TransactionStatus.SUCCEEDED
    assert Balance.objects.get().status == BalanceStatus.CONFIRMED


@pytest.mark.parametrize("invoice_id", ["0", "99999999999999999999999", "12abc"])
def test_a_payment_naming_no_possible_invoice_is_an_unmatched_entry(setting, invoice, deliver_all, invoice_id):
    deliver_all([make_event("charge.succeeded", make_charge(metadata={"invoice_id": invoice_id}))])
    assert PaymentEntry.objects.get().kind == PaymentEntryKind.UNMATCHED_PAYMENT
    assert not Balance.objects.exists()
    assert WebhookEvent.objects.get().status == EventStatus.PROCESSED


def test_payment_in_another_currency_becomes_a_payment_entry(setting, invoice, deliver_all):
    charge = make_charge(currency="usd", metadata={"invoice_id": str(invoice.pk)})
    deliver_all([make_event("charge.succeeded", charge)])
    assert PaymentEntry.objects.get().kind == PaymentEntryKind.CURRENCY_MISMATCH
    assert not Balance.objects.exists()


def test_object_of_another_setting_is_left_to_that_setting(setting, invoice, deliver_all):
    other = ProviderSettingFactory()
    charge = make_charge(metadata={"invoice_id": str(invoice.pk), "provider_setting_id": str(other.pk)})
    deliver_all([make_event("charge.succeeded", charge)])
    assert not Balance.objects.exists()
    assert WebhookEvent.objects.get().status == EventStatus.IGNORED


def test_zero_decimal_currency_payment(setting, deliver_all):
    invoice = InvoiceFactory(amount=Decimal("5000"), currency="JPY")
    deliver_all([make_event("charge.succeeded", make_charge(amount=5000, currency="jpy", metadata={"invoice_id": str(invoice.pk)}))])
    assert Balance.objects.get().amount == Decimal("-5000")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_transient_handler_error_is_retried_then_marked_failed(setting, invoice, deliver_all, fake_stripe, settings):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    fake_stripe.inject("GET", "/v1/charges/", status=500, times=100)
    event = make_event("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent", "status": "succeeded",
                                                    "latest_charge": "ch_missing", "metadata": {}})
    deliver_all([event])
    stored = WebhookEvent.objects.get()
    assert stored.status == EventStatus.FAILED
    assert stored.attempts == 7  # the first try and six retries with backoff
    assert "server error" in stored.last_error


def test_permanent_error_fails_at_once_without_looping(setting, invoice, deliver_all, fake_stripe):
    fake_stripe.inject("GET", "/v1/charges/", status=404, times=100,
                       body={"error": {"type": "invalid_request_error", "message": "No such charge"}})
    event = make_event("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent", "status": "succeeded",
                                                    "latest_charge": "ch_missing", "metadata": {}})
    deliver_all([event])
    stored = WebhookEvent.objects.get()
    assert (stored.status, stored.attempts) == (EventStatus.FAILED, 1)
    assert "No such charge" in stored.last_error
    assert fake_stripe.count("GET", "/v1/charges/") == 1
