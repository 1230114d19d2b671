"""Finance's payout pages: the list, a payout with its lines and the books they matched, CSV exports (streamed)."""

import csv
import io
from datetime import date, timedelta

import pytest
from django.urls import reverse

from billing.models import Balance
from payments.models import Payout, PayoutLine
from payments.services.payouts import fetch_and_reconcile
from tests.factories import ProviderSettingFactory
from tests.helpers import booked_charges
from tests.security.test_admin_action_matrix import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(fake_stripe):
    return ProviderSettingFactory()


@pytest.fixture
def finance(finance_client):
    return finance_client


@pytest.fixture
def mismatched(setting, fake_stripe):
    booked_charges(fake_stripe, setting, 3, amount=2500)
    stranger = fake_stripe.add_charge(amount=990)
    payout = fetch_and_reconcile(setting, fake_stripe.run_payout()["id"])
    return payout, stranger["id"]


def rows_of(response) -> list[list[str]]:
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_list_shows_status_arrival_amount_lines_and_differences(finance, mismatched):
    payout, stranger = mismatched
    page = finance.get(reverse("admin:payments_payout_changelist")).content.decode()
    assert payout.stripe_payout_id in page and "Mismatched" in page and str(payout.arrival_date.year) in page
    assert f"{payout.amount:.2f} EUR" in page
    assert f"1: Charge {stranger} of 9.90 EUR is in payout" in page
    assert ">4<" in page  # lines
    assert "Export a date range (CSV)" in page


def test_the_payout_page_lists_lines_unmatched_first_with_links_to_their_balances(finance, mismatched):
    payout, stranger = mismatched
    page = finance.get(reverse("admin:payments_payout_change", args=[payout.pk])).content.decode()
    assert page.index(stranger) < page.index("The payout itself.")  # the unmatched line comes first
    for balance in Balance.objects.all():
        assert reverse("admin:billing_balance_change", args=[balance.pk]) in page
    assert "charges (gross)" in page and "Download this payout and its lines (CSV)" in page
    assert "unknown_charge" in page and "do not know it" in page
    line = PayoutLine.objects.filter(payout=payout, matched=True, kind="charge").first()
    balance_page = finance.get(reverse("admin:billing_balance_change", args=[line.balance_ids[0]]))
    assert balance_page.status_code == 200  # finance may follow the link
    assert finance.get(reverse("admin:payments_payoutline_change", args=[line.pk])).status_code == 200
    assert finance.get(reverse("admin:payments_paymenttransaction_change", args=[line.transaction_id])).status_code == 200


def test_csv_of_one_payout_is_the_bank_statement_line_then_its_lines(finance, mismatched):
    payout, stranger = mismatched
    rows = rows_of(finance.get(reverse("admin:payments_payout_csv", args=[payout.pk])))
    header, payout_row, *lines = rows
    assert header[:3] == ["record", "payout", "arrival_date"]
    record = dict(zip(header, payout_row, strict=True))
    assert (record["record"], record["payout"], record["payout_amount"], record["payout_status"]) == (
        "payout", payout.stripe_payout_id, f"{payout.amount:.2f}", "mismatched")
    assert "do not know it" in record["note"]
    assert len(lines) == 5  # 3 charges, the stranger, the payout's own line
    unknown = next(dict(zip(header, line, strict=True)) for line in lines if stranger in line)
    assert (unknown["kind"], unknown["gross"], unknown["matched"], unknown["balances"]) == ("charge", "9.90", "false", "")
    charge = next(dict(zip(header, line, strict=True)) for line in lines if line[12] == "charge" and line[22] == "true")
    assert (charge["gross"], charge["fee"], charge["net"]) == ("25.00", "0.63", "24.37")
    assert charge["balances"].isdigit()


def test_csv_of_a_date_range_holds_the_payouts_arriving_in_it(finance, setting, fake_stripe, mismatched):
    payout, _ = mismatched
    booked_charges(fake_stripe, setting, 1)
    later = fetch_and_reconcile(setting, fake_stripe.run_payout()["id"])
    Payout.objects.filter(pk=later.pk).update(arrival_date=payout.arrival_date + timedelta(days=10))
    url = reverse("admin:payments_payout_export")
    rows = rows_of(finance.get(url, {"arrival_from": str(payout.arrival_date), "arrival_to": str(payout.arrival_date)}))
    assert {row[1] for row in rows[1:]} == {payout.stripe_payout_id}
    rows = rows_of(finance.get(url, {"arrival_from": str(payout.arrival_date), "arrival_to": str(payout.arrival_date + timedelta(days=10))}))
    assert [row[1] for row in rows[1:] if row[0] == "payout"] == [payout.stripe_payout_id, later.stripe_payout_id]


@pytest.mark.parametrize(("params", "sentence"), [
    ({"arrival_from": "2026-11-01", "arrival_to": "30.11.2026"}, "Give both dates as YYYY-MM-DD"),
    ({"arrival_from": "2026-11-01"}, "Give both dates as YYYY-MM-DD"),
    ({"arrival_from": "2026-11-30", "arrival_to": "2026-11-01"}, "The range ends (2026-11-01) before it starts (2026-11-30)."),
    ({"arrival_from": "2020-01-01", "arrival_to": "2026-01-01"}, "Export at most 400 days at once"),
])
def test_a_bad_date_range_is_refused_with_a_sentence(finance, params, sentence):
    response = finance.get(reverse("admin:payments_payout_export"), params)
    assert response.status_code == 400 and not response.streaming
    assert sentence in response.content.decode()


def test_the_export_form_without_dates(finance):
    response = finance.get(reverse("admin:payments_payout_export"))
    assert response.status_code == 200 and 'name="arrival_from"' in response.content.decode()


def test_text_that_a_spreadsheet_would_run_is_neutralised(finance, setting, fake_stripe):
    booked_charges(fake_stripe, setting, 1)
    fake_stripe.add_balance_transaction(amount=-100, type="stripe_fee", reporting_category="fee",
                                        description='=HYPERLINK("http://evil.example","x")')
    payout = fetch_and_reconcile(setting, fake_stripe.run_payout()["id"])
    PayoutLine.objects.filter(payout=payout, kind="fee").update(note='@SUM(1+1)')
    text = b"".join(finance.get(reverse("admin:payments_payout_csv", args=[payout.pk])).streaming_content).decode()
    assert "'@SUM(1+1)" in text and "\n@SUM" not in text and ",@SUM" not in text


@pytest.mark.parametrize("kind", ["anonymous", "staff"])
def test_exports_need_the_view_permission(kind, mismatched):
    payout, _ = mismatched
    client = client_for(kind)
    for url in (reverse("admin:payments_payout_csv", args=[payout.pk]),
                reverse("admin:payments_payout_export") + f"?arrival_from={date.today()}&arrival_to={date.today()}"):
        response = client.get(url)
        assert response.status_code in (302, 403) and not response.streaming


def test_csv_of_an_unknown_payout_is_a_404(finance):
    assert finance.get(reverse("admin:payments_payout_csv", args=[987654])).status_code == 404
