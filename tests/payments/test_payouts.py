"""Payout reconciliation as a service (SPEC §12): Stripe's payouts and balance transactions come from the fake Stripe
over HTTP, the books are real rows; scale, locks, order of events, missed events and what a difference says."""

from datetime import date, timedelta
from decimal import Decimal
from functools import partial

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.constants import BalanceType
from billing.models import Balance
from payments.constants import DifferenceKind, PayoutLineKind, PayoutStatus
from payments.models import PaymentTransaction, Payout, PayoutLine, StripeFee
from payments.services import payouts
from payments.tasks import reconcile_recent_payouts
from providers.stripe import gateway
from tests.factories import ProviderSettingFactory
from tests.helpers import booked_charges, make_event, run_at_once

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory()


def reconcile(setting, fake_stripe, **options) -> Payout:
    stripe_payout = fake_stripe.run_payout(**options)
    return payouts.fetch_and_reconcile(setting, stripe_payout["id"])


# --- Reading Stripe's balance transactions ------------------------------------------------------------


@pytest.mark.parametrize(("txn", "kind"), [
    ({"type": "charge", "source": "ch_1"}, PayoutLineKind.CHARGE),
    ({"type": "payment", "source": "py_1"}, PayoutLineKind.CHARGE),
    ({"type": "refund", "source": "re_1"}, PayoutLineKind.REFUND),
    ({"type": "payment_refund", "source": "pyr_1"}, PayoutLineKind.REFUND),
    ({"type": "refund_failure", "source": "re_1"}, PayoutLineKind.REFUND_FAILURE),
    ({"type": "adjustment", "reporting_category": "dispute", "source": "du_1"}, PayoutLineKind.DISPUTE),
    ({"type": "adjustment", "reporting_category": "dispute_reversal", "source": "du_1"}, PayoutLineKind.DISPUTE),
    ({"type": "stripe_fee", "reporting_category": "fee", "source": None}, PayoutLineKind.FEE),
    ({"type": "payout", "source": "po_1"}, PayoutLineKind.PAYOUT),
    ({"type": "payout_failure", "source": "po_0"}, PayoutLineKind.PAYOUT),
    ({"type": "adjustment", "reporting_category": "other_adjustment", "source": "ia_1"}, PayoutLineKind.OTHER),
    ({"type": "reserve_transaction", "source": None}, PayoutLineKind.OTHER),
])
def test_each_type_of_balance_transaction_is_one_kind_of_line(txn, kind):
    payout = Payout(stripe_payout_id="po_1", currency="EUR", amount=Decimal("1"))
    line = payouts.line_from_balance_transaction(payout, {"id": "txn_1", "amount": -100, "fee": 0, "net": -100, "currency": "eur", **txn})
    assert line.kind == kind


def test_a_converted_charge_keeps_both_amounts_and_the_exact_exchange_rate():
    payout = Payout(stripe_payout_id="po_1", currency="EUR", amount=Decimal("1"))
    line = payouts.line_from_balance_transaction(payout, {
        "id": "txn_1", "type": "charge", "amount": 9123, "fee": 162, "net": 8961, "currency": "eur", "exchange_rate": 0.912345,
        "source": {"id": "ch_1", "object": "charge", "amount": 10000, "currency": "usd"}, "fee_details": [
            {"amount": 162, "currency": "eur", "type": "stripe_fee", "description": "Stripe processing fees"}]})
    assert (line.gross, line.fee, line.net, line.currency) == (Decimal("91.23"), Decimal("1.62"), Decimal("89.61"), "EUR")
    assert (line.source_amount, line.source_currency, line.exchange_rate) == (Decimal("100.00"), "USD", Decimal("0.912345"))
    assert line.charge_id == "ch_1"
    [fee] = payouts.fees_of_line(line)
    assert (fee.amount, fee.currency, fee.fee_type) == (Decimal("1.62"), "EUR", "stripe_fee")


def test_a_line_whose_money_cannot_be_read_is_kept_as_an_unexplained_line():
    payout = Payout(stripe_payout_id="po_1", currency="EUR", amount=Decimal("1"))
    line = payouts.line_from_balance_transaction(payout, {"id": "txn_1", "type": "charge", "amount": "12.5", "currency": "xyz",
                                                          "source": "ch_1"})
    assert (line.kind, line.gross, line.currency) == (PayoutLineKind.OTHER, Decimal("0"), "EUR")
    assert "Unreadable amount" in line.description


# --- Matching ------------------------------------------------------------------------------------------


def test_a_charge_the_books_hold_for_less_is_named_with_both_amounts(setting, fake_stripe):
    [charge_id] = booked_charges(fake_stripe, setting, 1, amount=9000)  # sound books of a 90.00 charge...
    fake_stripe.objects[charge_id]["amount"] = 10000  # ...that Stripe settled as 100.00
    payout = reconcile(setting, fake_stripe)
    assert payout.status == PayoutStatus.MISMATCHED
    assert payout.differences == [{"kind": DifferenceKind.AMOUNT_DIFFERS, "object_id": charge_id, "expected": "100.00 EUR",
                                   "actual": "90.00 EUR", "sentence": f"Charge {charge_id}: Stripe paid out 100.00 EUR, the books "
                                                                      "hold 90.00 EUR."}]


def test_a_refund_the_books_never_saw_is_named(setting, fake_stripe):
    [charge_id] = booked_charges(fake_stripe, setting, 1, amount=10000)
    refund = fake_stripe.create_dashboard_refund(charge_id, 2500)  # its events never reach the service
    payout = reconcile(setting, fake_stripe)
    assert [(d["kind"], d["object_id"], d["expected"]) for d in payout.differences] == [
        (DifferenceKind.UNKNOWN_REFUND, refund["id"], "25.00 EUR")]
    assert "the books never saw it" in payout.differences[0]["sentence"]


def test_an_adjustment_of_stripes_own_is_unexplained_but_a_monthly_fee_is_a_stripe_fee(setting, fake_stripe):
    booked_charges(fake_stripe, setting, 3)
    adjustment = fake_stripe.add_balance_transaction(amount=-120, description="Something Stripe did")
    payout = reconcile(setting, fake_stripe, monthly_fee=990)
    assert [(d["kind"], d["object_id"]) for d in payout.differences] == [(DifferenceKind.UNEXPLAINED, adjustment["id"])]
    fee_line = PayoutLine.objects.get(payout=payout, kind=PayoutLineKind.FEE)
    assert fee_line.matched and fee_line.source_id == ""
    monthly = StripeFee.objects.get(payout_line=fee_line)
    assert (monthly.amount, monthly.transaction, monthly.charge_id) == (Decimal("9.90"), None, "")
    assert payout.fees_total == 3 * Decimal("0.40") + Decimal("9.90")
    assert payout.other_total == Decimal("-1.20")


def test_payout_amount_must_be_what_the_lines_add_up_to(setting, fake_stripe):
    booked_charges(fake_stripe, setting, 2)
    stripe_payout = fake_stripe.run_payout()
    fake_stripe.objects[stripe_payout["id"]]["amount"] += 100  # Stripe sent 1.00 EUR more than its lines explain
    payout = payouts.fetch_and_reconcile(setting, stripe_payout["id"])
    assert [d["kind"] for d in payout.differences] == [DifferenceKind.AMOUNT_DIFFERS, DifferenceKind.PAYOUT_TOTAL]
    assert payout.differences[1]["sentence"] == (f"The lines of payout {payout.stripe_payout_id} add up to 19.20 EUR, but 20.20 EUR "
                                                 "reached the bank.")


def test_huf_payouts_are_whole_units_and_the_fraction_left_in_stripe_is_no_difference(setting, fake_stripe):
    booked_charges(fake_stripe, setting, 1, amount=1234500, currency="huf")  # 12,345 HUF, fee 185.18 + 0.25
    first = reconcile(setting, fake_stripe, currency="huf")
    assert first.amount == Decimal("12159") and first.lines_net == Decimal("12159.57")
    assert first.status == PayoutStatus.RECONCILED, first.differences
    booked_charges(fake_stripe, setting, 1, amount=1234500, currency="huf")
    second = reconcile(setting, fake_stripe, currency="huf")
    assert second.amount == Decimal("12160") and second.status == PayoutStatus.RECONCILED  # the carried .57 arrived


def test_a_converted_charge_reconciles_in_its_own_currency(setting, fake_stripe):
    [charge_id] = booked_charges(fake_stripe, setting, 1, amount=10000, currency="usd")
    payout = reconcile(setting, fake_stripe, currency="eur", exchange_rates={"usd": "0.912345"})
    assert payout.status == PayoutStatus.RECONCILED, payout.differences
    line = PayoutLine.objects.get(payout=payout, kind=PayoutLineKind.CHARGE)
    assert (line.gross, line.currency, line.source_amount, line.source_currency) == (Decimal("91.23"), "EUR", Decimal("100.00"), "USD")
    assert line.exchange_rate == Decimal("0.912345") and "at 0.912345" in line.note
    PaymentTransaction.objects.filter(charge_id=charge_id).update(amount=Decimal("91.23"), currency="EUR")
    Balance.objects.filter(transaction_number=charge_id).update(amount=Decimal("-91.23"), currency="EUR")
    assert payouts.rematch_payout(payout).differences[0]["expected"] == "100.00 USD"  # the books hold the charge's own money


# --- Money that never reached a payout ----------------------------------------------------------------------


def test_money_booked_longer_ago_than_the_delay_that_reached_no_payout_is_named_once(setting, fake_stripe):
    ten_days_ago = int((timezone.now() - timedelta(days=10)).timestamp())
    [late] = booked_charges(fake_stripe, setting, 1, amount=5000, created=ten_days_ago)
    [recent] = booked_charges(fake_stripe, setting, 1, amount=5000, created=int((timezone.now() - timedelta(days=3)).timestamp()))
    fake_stripe.paid_out |= {("charge", late), ("charge", recent)}  # Stripe holds both back (still pending, a reserve...)
    booked_charges(fake_stripe, setting, 1)
    payout = reconcile(setting, fake_stripe)
    assert payout.status == PayoutStatus.MISMATCHED
    assert [(d["kind"], d["object_id"], d["actual"]) for d in payout.differences] == [(DifferenceKind.NOT_PAID_OUT, late, "in no payout")]
    assert "reached no payout within the expected 7 days" in payout.differences[0]["sentence"]

    booked_charges(fake_stripe, setting, 1)
    assert reconcile(setting, fake_stripe).status == PayoutStatus.RECONCILED  # named on the first payout that missed it only


def test_the_expected_delay_is_the_settings(setting, fake_stripe):
    setting.payout_delay_days = 14
    setting.save()
    [late] = booked_charges(fake_stripe, setting, 1, created=int((timezone.now() - timedelta(days=10)).timestamp()))
    fake_stripe.paid_out.add(("charge", late))
    booked_charges(fake_stripe, setting, 1)
    assert reconcile(setting, fake_stripe).status == PayoutStatus.RECONCILED


# --- Manual, pending, failed --------------------------------------------------------------------------------


def test_a_manual_payout_cannot_be_itemised_and_stripe_is_not_asked_for_lines(setting, fake_stripe, client,
                                                                             django_capture_on_commit_callbacks):
    from tests.helpers import deliver

    manual = fake_stripe._payout(amount=5000, currency="eur", automatic=False, status="paid", reconciliation="not_applicable")
    deliver(client, setting, make_event("payout.paid", manual), django_capture_on_commit_callbacks)
    payout = Payout.objects.get()
    assert (payout.status, payout.automatic, payout.line_count) == (PayoutStatus.NOT_ITEMISABLE, False, 0)
    assert payout.get_status_display() == "Cannot be itemised by Stripe (manual payout)"
    assert fake_stripe.count("GET", "/v1/payouts") == 0 and fake_stripe.count("GET", "/v1/balance_transactions") == 0
    with pytest.raises(gateway.StripeRequestRefused, match="automatic transfers, not manual"):  # why we never ask
        gateway.list_payout_balance_transactions(setting, payout_id=manual["id"])


def test_stripe_down_while_listing_leaves_the_payout_pending_for_a_retry(setting, fake_stripe, settings):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    booked_charges(fake_stripe, setting, 2)
    stripe_payout = fake_stripe.run_payout()
    fake_stripe.inject("GET", "/v1/balance_transactions", status=500)
    with pytest.raises(gateway.StripeUnavailable):
        payouts.fetch_and_reconcile(setting, stripe_payout["id"])
    payout = Payout.objects.get()
    assert (payout.status, payout.line_count) == (PayoutStatus.PENDING, 0)
    assert payouts.fetch_and_reconcile(setting, stripe_payout["id"]).status == PayoutStatus.RECONCILED


# --- Scale: one Stripe call per page, a constant number of queries ------------------------------------------


def test_lines_are_listed_one_stripe_call_per_page_of_100(setting, fake_stripe):
    booked_charges(fake_stripe, setting, 250)
    payout = reconcile(setting, fake_stripe)
    assert payout.status == PayoutStatus.RECONCILED and payout.line_count == 250
    listings = [r for r in fake_stripe.requests if r["path"] == "/v1/balance_transactions"]
    assert len(listings) == 3  # 251 balance transactions (the payout's own too): 100 + 100 + 51
    assert all(r["params"]["limit"] == "100" and r["params"]["expand"] == ["data.source"] for r in listings)
    assert [r["params"].get("starting_after") is None for r in listings] == [True, False, False]


def queries_to_reconcile(setting, fake_stripe, count: int) -> int:
    booked_charges(fake_stripe, setting, count)
    stripe_payout = fake_stripe.run_payout()
    payout = payouts.record_payout(setting, stripe_payout)
    lines = gateway.list_payout_balance_transactions(setting, payout_id=stripe_payout["id"])
    with CaptureQueriesContext(connection) as queries:
        payout = payouts.reconcile_payout(payout, balance_transactions=lines)
    assert payout.status == PayoutStatus.RECONCILED and payout.line_count == count
    return len(queries)


def test_the_number_of_queries_does_not_grow_with_the_number_of_lines(setting, fake_stripe):
    assert queries_to_reconcile(setting, fake_stripe, 10) == queries_to_reconcile(setting, fake_stripe, 600)
    assert StripeFee.objects.count() == 610


# --- Locks, concurrency, order -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_no_transaction_is_open_while_stripe_is_called(fake_stripe):
    """Every Stripe call of a reconciliation is made with the worker's connection outside any transaction, so it
    holds no row lock while it waits for Stripe."""
    setting = ProviderSettingFactory()
    booked_charges(fake_stripe, setting, 120)
    stripe_payout = fake_stripe.run_payout()
    params = connection.settings_dict
    worker_pid = connection.cursor().connection.info.backend_pid
    seen = []

    def observe(method, path):
        with psycopg.connect(host=params["HOST"], port=params["PORT"] or 5432, user=params["USER"], dbname=params["NAME"],
                             autocommit=True) as conn:
            seen.append((path, conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [worker_pid]).fetchone()[0]))

    fake_stripe.observers.append(observe)
    assert payouts.fetch_and_reconcile(setting, stripe_payout["id"]).status == PayoutStatus.RECONCILED
    assert [path for path, _ in seen] == [f"/v1/payouts/{stripe_payout['id']}"] + ["/v1/balance_transactions"] * 2
    assert {state for _, state in seen} == {"idle"}, seen


@pytest.mark.django_db(transaction=True)
def test_two_reconciliations_of_one_payout_at_once_leave_one_set_of_lines(fake_stripe):
    setting = ProviderSettingFactory()
    booked_charges(fake_stripe, setting, 50)
    stripe_payout = fake_stripe.run_payout()
    reconcile_it = partial(payouts.fetch_and_reconcile, setting, stripe_payout["id"])
    assert run_at_once(reconcile_it, reconcile_it) == []
    payout = Payout.objects.get()
    assert (payout.status, PayoutLine.objects.filter(payout=payout).count(), StripeFee.objects.count()) == (PayoutStatus.RECONCILED, 51, 50)


# --- Missed events: the command and the daily task --------------------------------------------------------


def test_the_command_reconciles_payouts_whose_events_were_missed_and_rematches_mismatched_ones(setting, fake_stripe):
    [known] = booked_charges(fake_stripe, setting, 1)
    stranger = fake_stripe.add_charge(amount=700)
    fake_stripe.run_payout()  # its events never arrive
    lines = []
    call_command("reconcile_payouts", since=str(date.today() - timedelta(days=1)), stdout=_Collect(lines))
    payout = Payout.objects.get()
    assert payout.status == PayoutStatus.MISMATCHED and payout.differences[0]["object_id"] == stranger["id"]
    assert any("mismatched, 2 lines, 1 difference(s)" in line for line in lines), lines

    # Finance books the stranger (say, a payment entry resolved to an account): the next run matches it again.
    tx = PaymentTransaction.objects.get(charge_id=known)
    Balance.objects.create(account=tx.account, type=BalanceType.PAYMENT, amount=Decimal("-7.00"), currency="EUR",
                           transaction_number=stranger["id"], provider_setting=setting, date=timezone.now())
    PaymentTransaction.objects.create(charge_id=stranger["id"], provider_setting=setting, account=tx.account, amount=Decimal("7.00"),
                                      currency="EUR", status="succeeded", booked_at=timezone.now())
    listed = fake_stripe.count("GET", "/v1/balance_transactions")
    call_command("reconcile_payouts", since=str(date.today() - timedelta(days=1)), setting=str(setting.pk), stdout=_Collect([]))
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.RECONCILED
    assert fake_stripe.count("GET", "/v1/balance_transactions") == listed  # matched again from the stored lines


@pytest.mark.parametrize(("arguments", "message"), [
    ({"since": "30.11.2026"}, "--since must be a date like"),
    ({"since": "2999-01-01"}, "is in the future"),
    ({"since": "2026-11-01", "setting": "999999"}, "no provider setting 999999"),
    ({"since": "2026-11-01", "setting": "1; DROP"}, "no provider setting"),
])
def test_the_command_refuses_bad_input_with_a_sentence(setting, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("reconcile_payouts", **arguments)
    assert not Payout.objects.exists()


def test_the_daily_task_is_scheduled_and_catches_up(setting, fake_stripe, settings):
    assert settings.CELERY_BEAT_SCHEDULE["payments-reconcile-recent-payouts"]["task"] == "payments.tasks.reconcile_recent_payouts"
    booked_charges(fake_stripe, setting, 3)
    fake_stripe.run_payout()
    assert reconcile_recent_payouts() == 1
    assert Payout.objects.get().status == PayoutStatus.RECONCILED


class _Collect:
    def __init__(self, lines):
        self.lines = lines

    def write(self, text, *args, **kwargs):
        self.lines.append(text)

    def flush(self):
        pass
