"""The finance flow in the admin, in headless Chromium: log in, open a payment balance, Refund, preview, confirm.

Screenshots of each step are saved under tests/artifacts/ (CI keeps them as artifacts).
"""

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from billing.models import Balance
from refunds.models import RefundRequest
from tests.browser.test_payment_page_browser import ARTIFACTS, CHROMIUM, browser  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def finance_user():
    user = User.objects.create_user("finance-browser", "f@example.com", "finance-browser-pass", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    return user


def test_finance_user_refunds_part_of_a_payment_in_the_admin(browser, live_server, finance_user, stripe_charge, payment_balances):  # noqa: F811
    charge = stripe_charge(Decimal("100.00"))
    (balance,) = payment_balances(charge, "-100")
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "finance-browser")
    page.fill("#id_password", "finance-browser-pass")
    page.click("input[type=submit]")
    page.wait_for_selector("text=Log out")

    page.goto(f"{live_server.url}/admin/billing/balance/{balance.pk}/change/")
    page.screenshot(path=str(ARTIFACTS / "admin-refund-1-balance.png"), full_page=True)
    page.click(f"a[href='/admin/billing/balance/{balance.pk}/refund/']")
    page.wait_for_selector("text=Still refundable on this charge")
    page.fill("input[name=amount]", "25.00")
    page.click("input[name=preview]")
    page.wait_for_selector("text=Balances after the refund")
    preview_rows = page.locator("table tbody tr").all_inner_texts()
    assert any("-75" in row for row in preview_rows) and any("-25" in row and "locked" in row for row in preview_rows), preview_rows
    assert not RefundRequest.objects.exists()  # a preview changes nothing
    page.screenshot(path=str(ARTIFACTS / "admin-refund-2-preview.png"), full_page=True)

    page.click("input[name=confirm]")
    page.wait_for_selector(".messagelist")
    page.screenshot(path=str(ARTIFACTS / "admin-refund-3-done.png"), full_page=True)
    assert "refund" in page.locator(".messagelist").inner_text().lower()

    rows = sorted((b.type, b.amount, b.locked) for b in Balance.objects.filter(transaction_number=charge))
    assert rows == sorted([("payment", Decimal("-75.00"), False), ("payment", Decimal("-25.00"), True), ("refund", Decimal("25.00"), True)])
    assert RefundRequest.objects.get().status == "succeeded"
    # The split and locked balances as the finance user sees them in the list, on a 1280 px screen with the navigation
    # and the filters open: every column fits, the lock and its reason included, nothing scrolls sideways.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{live_server.url}/admin/billing/balance/?transaction_number={charge}")
    page.screenshot(path=str(ARTIFACTS / "admin-refund-4-balances.png"), full_page=True)
    assert page.locator("#result_list tbody tr").count() == 3
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.evaluate("(() => { const r = document.querySelector('.results'); return r.scrollWidth <= r.clientWidth; })()")
    text = page.locator("#result_list").inner_text()
    assert "Locked: Refund via payment provider" in text and "Confirmed" in text and charge[:12] in text
    # Who did it, on the balance's page and in the audit trail's own list (filtered to refunds, exported as CSV).
    page.goto(f"{live_server.url}/admin/billing/balance/{balance.pk}/change/")
    trail = page.locator("body").inner_text()
    assert "Audit trail" in trail and "Refund requested" in trail and finance_user.username in trail
    page.goto(f"{live_server.url}/admin/billing/auditentry/?action__exact=refund_requested")
    assert page.locator("#result_list tbody tr").count() == 1
    with page.expect_download() as download:
        page.click("#export-csv")
    exported = Path(download.value.path()).read_text()
    assert "refund_requested" in exported and finance_user.username in exported
    assert errors == []
    page.close()
