"""The finance dashboard (SPEC §13): its figures are the books' figures, every figure opens the admin list behind it
with exactly the rows it counts, bad input is a form error, and only finance (billing.view_balance) sees it."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from finance import selectors
from payments.models import Payout
from refunds.services import refund_payment_balance
from tests.factories import InvoiceFactory, PaymentTransactionFactory
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db
URL = "/admin/finance/"


@pytest.fixture
def scenario(stripe_charge, payment_balances, setting):
    """119.00 EUR paid (10 days ago), 19.00 EUR of it refunded (today), an invoice 45 days overdue, a failed card charge."""
    charge = stripe_charge(Decimal("119.00"))
    (balance,) = payment_balances(charge, "-119")
    refund_payment_balance(balance, amount="19.00", requested_by=None)
    entity = balance.account.business_entity
    overdue = InvoiceFactory(account=balance.account, amount=Decimal("50.00"), due_date=timezone.localdate() - timedelta(days=45))
    PaymentTransactionFactory(provider_setting=setting, status="failed", method_type="card", amount=Decimal("10.00"),
                              last_error="Your card was declined.", invoice=overdue)
    Payout.objects.create(provider_setting=setting, stripe_payout_id="po_dash1", amount=Decimal("95.00"), currency="EUR",
                          arrival_date=timezone.localdate(), status="reconciled", reconciled_at=timezone.now())
    return {"entity": entity, "overdue": overdue}


def _count_behind(client, link: str) -> int:
    response = client.get(link)
    assert response.status_code == 200, (link, response.status_code, response.get("Location"))
    return response.context["cl"].result_count


def test_the_figures_are_the_books_and_link_to_the_rows_behind_them(finance_client, scenario):
    response = finance_client.get(URL, {"entity": scenario["entity"].pk, "currency": "EUR"})
    assert response.status_code == 200
    figures = response.context["figures"]
    money = figures["money"]
    assert money["totals"] == {"money_in": Decimal("119.00"), "refunded": Decimal("19.00"), "disputed": Decimal("0")}
    assert sum(money["series"]["money_in"]) == Decimal("119.00") and len(money["days"]) == 30
    html = response.content.decode()
    assert "119.00 EUR" in html and "19.00 EUR" in html
    # The payment was split by the refund: two payment balances (100.00 and 19.00) and one refund balance.
    assert _count_behind(finance_client, money["links"]["money_in"]) == 2
    assert _count_behind(finance_client, money["links"]["refunded"]) == 1
    assert _count_behind(finance_client, money["links"]["disputed"]) == 0

    buckets = {bucket["label"]: bucket for bucket in figures["outstanding"]}
    assert buckets["31–60"]["amount"] == Decimal("50.00") and buckets["31–60"]["count"] == 1
    assert all(bucket["amount"] == 0 for label, bucket in buckets.items() if label != "31–60")
    invoices = finance_client.get(buckets["31–60"]["link"])
    assert [i.number for i in invoices.context["cl"].result_list] == [scenario["overdue"].number]

    (failure,) = figures["failures"]
    assert (failure["method"], failure["reason"], failure["count"], failure["amount"]) == ("card", "Your card was declined.", 1,
                                                                                            Decimal("10.00"))
    assert _count_behind(finance_client, failure["link"]) == 1
    (payouts,) = figures["payouts"]
    assert (payouts["status"], payouts["count"], payouts["amount"]) == ("Reconciled", 1, Decimal("95.00"))
    assert _count_behind(finance_client, payouts["link"]) == 1
    assert figures["refunds"]["count"] == 0 and _count_behind(finance_client, figures["refunds"]["link"]) == 0
    for link in figures["inbox"]["links"].values():
        _count_behind(finance_client, link)
    # Charts get their data from a json_script block and the page's own static scripts, never inline code.
    assert 'id="finance-chart-data"' in html and "chart.umd.min.js" in html
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_amounts_use_the_currencys_decimals(finance_client, scenario):
    InvoiceFactory(account__business_entity=scenario["entity"], amount=Decimal("5000"), currency="JPY",
                   due_date=timezone.localdate() - timedelta(days=100))
    response = finance_client.get(URL, {"entity": scenario["entity"].pk, "currency": "JPY"})
    assert response.status_code == 200
    assert "5000 JPY" in response.content.decode() and "5000.00" not in response.content.decode()


@pytest.mark.parametrize("query, message", [
    ({"start": "2026-13-01"}, "Enter a valid date"),
    ({"start": "2026-11-30", "end": "2026-11-01"}, "before it starts"),
    ({"start": "2020-01-01", "end": "2026-01-01"}, "at most 400 days"),
    ({"currency": "XYZ"}, "Unknown currency"),
])
def test_bad_input_is_a_form_error(finance_client, query, message):
    response = finance_client.get(URL, query)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_only_finance_sees_it(client):
    assert client.get(URL).status_code == 302  # to the admin login
    client.force_login(User.objects.create_user("staff", password="pw-staff-123", is_staff=True))
    assert client.get(URL).status_code == 403


def test_processing_lag_percentiles(finance_client):
    now = timezone.now()
    for index, lag in enumerate([1, 2, 3, 4, 100]):
        event = WebhookEvent.objects.create(provider_setting_id=1, stripe_event_id=f"evt_lag{index}", type="charge.succeeded",
                                            payload="{}", status="processed")
        WebhookEvent.objects.filter(pk=event.pk).update(received_at=now - timedelta(seconds=lag + 10),
                                                        processed_at=now - timedelta(seconds=10))
    lag = selectors.processing_lag(now)
    assert lag["count"] == 5
    # percentile_cont on PostgreSQL and the sample's interpolation give the same figures.
    assert lag["p50"] == pytest.approx(3.0) and lag["p95"] == pytest.approx(selectors._percentile([1, 2, 3, 4, 100], 0.95))
    assert selectors._percentile([1, 2, 3, 4, 100], 0.95) == pytest.approx(80.8)
