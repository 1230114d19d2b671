"""The finance dashboard in headless Chromium: a finance user logs in, reads the figures of the scenario's books, follows
a figure to the admin list behind it, exports that list (CSV and XLSX) and opens the files. The screenshot of the
dashboard is README's (docs/dashboard.png)."""

import csv
import io
import os
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from openpyxl import load_workbook

from refunds.services import refund_payment_balance
from tests.browser.test_payment_page_browser import ARTIFACTS, CHROMIUM, browser  # noqa: F401 - the fixture
from tests.factories import AccountFactory, BalanceFactory, BusinessEntityFactory, InvoiceFactory, PaymentTransactionFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"), reason="Debian's chromium is not installed"),
]
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def books(setting, stripe_charge, payment_balances):
    """ACME's books: eight card payments over the last days (1,203.50 EUR in all, one charge on the fake Stripe of
    which 19.00 EUR was refunded), three overdue invoices, two failed charges."""
    entity = BusinessEntityFactory(name="ACME Deutschland")
    customers = [AccountFactory(business_entity=entity, name=name) for name in ("Muster GmbH", "Beispiel AG", "Nordwind KG")]
    now = timezone.now()
    amounts = ["250.00", "99.90", "180.00", "45.60", "310.00", "75.00", "124.00"]
    for days, amount in enumerate(amounts):
        invoice = InvoiceFactory(account=customers[days % 3], amount=Decimal(amount))
        BalanceFactory(invoice=invoice, amount=-Decimal(amount), provider_setting=setting, date=now - timedelta(days=days * 3 + 1))
    charge = stripe_charge(Decimal("119.00"))
    (balance,) = payment_balances(charge, "-119", invoice=InvoiceFactory(account=customers[0], amount=Decimal("119.00")))
    refund_payment_balance(balance, amount="19.00", requested_by=None)
    today = timezone.localdate()
    for days, amount in ((5, "49.90"), (40, "75.00"), (120, "300.00")):
        InvoiceFactory(account=customers[1], amount=Decimal(amount), due_date=today - timedelta(days=days))
    for reason in ("Your card was declined.", "Your card has insufficient funds."):
        PaymentTransactionFactory(provider_setting=setting, status="failed", method_type="card", amount=Decimal("20.00"), last_error=reason)
    return entity


@pytest.fixture
def finance_user():
    user = User.objects.create_user("finance-dash", "f@example.com", "finance-dash-pass", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    return user


def test_finance_reads_the_dashboard_follows_a_figure_and_exports_it(browser, live_server, finance_user, books):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A blocked script or style (Content-Security-Policy) is reported on the console.
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" and "favicon" not in message.location.get("url", "")
            else None)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "finance-dash")
    page.fill("#id_password", "finance-dash-pass")
    page.click("input[type=submit]")
    page.wait_for_selector("text=Log out")

    page.click("text=Finance dashboard")
    page.wait_for_selector("#chart-money")
    page.wait_for_function("() => Chart.getChart('chart-money') && Chart.getChart('chart-outstanding')")
    assert page.inner_text("#figure-money-in a") == "1203.50 EUR"  # 1,084.50 in seven payments + 119.00
    assert page.inner_text("#figure-refunded a") == "19.00 EUR"
    assert page.inner_text("#figure-disputed a") == "0.00 EUR"
    outstanding = page.locator("#outstanding tbody tr").all_inner_texts()
    assert [row.split("\t")[-1] for row in outstanding] == ["49.90 EUR", "75.00 EUR", "0.00 EUR", "300.00 EUR"], outstanding
    assert page.locator("#failures tbody tr").count() == 2
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    # README's screenshot: written when missing or asked for (UPDATE_DOCS_SCREENSHOTS=1), so a test run leaves the tree clean.
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") or not (DOCS / "dashboard.png").exists():
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACTS / "dashboard.png", DOCS / "dashboard.png")

    # The money-in figure opens the balances behind it: the seven payments and the refunded charge's two parts.
    page.click("#figure-money-in a")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 9
    page.screenshot(path=str(ARTIFACTS / "dashboard-money-in-balances.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) == 9 and {row["type"] for row in rows} == {"payment"}
    assert sum(-Decimal(row["amount"]) for row in rows) == Decimal("1203.50")
    with page.expect_download() as download:
        page.click("#export-xlsx")
    assert download.value.suggested_filename.endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()), read_only=True).active
    header, *data = list(sheet.iter_rows(values_only=True))
    amount = header.index("amount")
    assert len(data) == 9 and sum(-Decimal(str(row[amount])) for row in data) == Decimal("1203.50")
    assert errors == []
    page.close()
