"""Exports of the books lists (billing.exports): exactly the changelist's current filter, amounts as the books hold
them, CSV streamed in bounded memory, XLSX that openpyxl opens, no secrets, view permission needed."""

import csv
import io
import tracemalloc
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone
from openpyxl import load_workbook

from billing.models import Account, Balance
from tests.factories import AccountFactory, BalanceFactory, InvoiceFactory, PaymentEntryFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db
BALANCES = "/admin/billing/balance/"


def _csv(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def _xlsx(response) -> list[tuple]:
    assert isinstance(response, FileResponse)
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True).active
    return list(sheet.iter_rows(values_only=True))


@pytest.fixture
def books():
    """Three EUR payments of one customer, one JPY and one KWD payment of another, and a formula-looking note."""
    eur = AccountFactory(name="=HYPERLINK(\"http://evil\")")
    other = AccountFactory(name="Other customer")
    balances = [BalanceFactory(invoice=InvoiceFactory(account=eur, amount=Decimal(a)), amount=-Decimal(a)) for a in ("119.00", "20.50", "3.10")]
    balances.append(BalanceFactory(invoice=InvoiceFactory(account=other, amount=Decimal("5000"), currency="JPY"), amount=Decimal("-5000"),
                                   currency="JPY"))
    balances.append(BalanceFactory(invoice=InvoiceFactory(account=other, amount=Decimal("1.234"), currency="KWD"), amount=Decimal("-1.234"),
                                   currency="KWD"))
    return balances


def test_csv_export_has_exactly_the_filtered_rows(finance_client, books):
    page = finance_client.get(BALANCES, {"currency__exact": "EUR", "q": "HYPERLINK"})
    assert page.status_code == 200 and 'id="export-csv"' in page.content.decode()
    link = page.context["cl"].get_query_string()
    rows = _csv(finance_client.get(BALANCES + "export/csv/" + link))
    assert sorted(row["amount"] for row in rows) == ["-119.00", "-20.50", "-3.10"]
    assert {row["currency"] for row in rows} == {"EUR"}
    # A name that a spreadsheet would run as a formula is exported as text.
    assert {row["account"] for row in rows} == {"'=HYPERLINK(\"http://evil\")"}


def test_amounts_keep_their_currencys_decimals(finance_client, books):
    rows = _csv(finance_client.get(BALANCES + "export/csv/", {"q": "Other customer"}))
    assert sorted((row["amount"], row["currency"]) for row in rows) == [("-1.234", "KWD"), ("-5000", "JPY")]


def test_xlsx_export_opens_with_openpyxl_and_holds_decimal_amounts(finance_client, books):
    rows = _xlsx(finance_client.get(BALANCES + "export/xlsx/", {"currency__exact": "EUR"}))
    header, *data = rows
    assert header[:6] == ("id", "date", "account", "business entity", "type", "amount")
    assert sorted(Decimal(str(row[5])) for row in data) == [Decimal("-119.00"), Decimal("-20.50"), Decimal("-3.10")]
    assert len(data) == 3 and all(row[2].startswith("'=") for row in data)


@pytest.mark.parametrize("url, query, count", [
    ("/admin/billing/invoice/", {"currency__exact": "JPY"}, 1),
    ("/admin/billing/paymententry/", {"status__exact": "open"}, 2),
    ("/admin/refunds/refundrequest/", {}, 0),
    ("/admin/payments/payout/", {"status__exact": "reconciled"}, 0),
])
def test_every_books_list_exports(finance_client, books, url, query, count):
    setting = ProviderSettingFactory()
    PaymentEntryFactory(provider_setting=setting)
    PaymentEntryFactory(provider_setting=setting, transaction_number="ch_second")
    assert len(_csv(finance_client.get(url + "export/csv/", query))) == count
    assert len(_xlsx(finance_client.get(url + "export/xlsx/", query))) == count + 1
    assert setting.secret_key[-8:] not in finance_client.get(url + "export/csv/", query).getvalue().decode()


def test_export_needs_the_view_permission(client, books):
    client.force_login(User.objects.create_user("clerk", password="pw-clerk-123", is_staff=True))
    assert client.get(BALANCES + "export/csv/").status_code == 403
    assert client.get(BALANCES + "export/xlsx/").status_code == 403


def test_a_bad_filter_is_a_clear_4xx(finance_client, books):
    assert finance_client.get(BALANCES + "export/csv/", {"date__gte": "not a date"}).status_code == 400
    assert finance_client.get(BALANCES + "export/csv/", {"account__email__startswith": "x"}).status_code == 400


def test_csv_streams_20k_rows_in_bounded_memory(finance_client):
    account = AccountFactory()
    now = timezone.now()
    Balance.objects.bulk_create(Balance(account=account, type="credit", amount=Decimal("12.34"), currency="EUR", date=now - timedelta(seconds=i),
                                        transaction_number=f"credit-{i:06d}", note="x" * 40) for i in range(20_000))
    response = finance_client.get(BALANCES + "export/csv/", {"currency__exact": "EUR"})
    assert isinstance(response, StreamingHttpResponse)
    tracemalloc.start()
    lines = size = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
        size += len(chunk)
    _, export_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert lines == 20_001
    tracemalloc.start()
    materialised = list(Balance.objects.filter(account=account).select_related("account", "invoice"))
    _, rows_size = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(materialised) == 20_000 and Account.objects.count() == 1
    # The stream holds one chunk of rows at a time (about 3.4 MB here for 5,000 or 20,000 rows alike), a fraction of
    # the rows materialised (about 42 MB).
    assert export_peak < rows_size / 5, (export_peak, rows_size, size)
