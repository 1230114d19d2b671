"""The payment page in headless Chromium (Debian's package, driven by Playwright) with a local Stripe.js double."""

import os
import shutil
from pathlib import Path

import pytest

from billing.constants import InvoiceStatus
from payments.tokens import make_token
from tests.factories import InvoiceFactory, ProviderSettingFactory
from tests.helpers import deliver

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
]


@pytest.fixture
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop runs beside the live server's ORM calls
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture
def stripe_js_double(fake_stripe, settings):
    settings.STRIPE_JS_URL = fake_stripe.url + "/stripe-double.js"
    return fake_stripe


@pytest.mark.parametrize("enable, active, changeable, shown, checked, disabled", [
    (False, False, False, False, None, None),
    (True, False, True, True, False, False),
    (True, True, True, True, True, False),
    (True, True, False, True, True, True),
])
def test_what_the_customer_sees_for_future_payments(browser, live_server, stripe_js_double, enable, active, changeable, shown, checked,
                                                    disabled):
    ProviderSettingFactory(enable_future_payments=enable, future_payments_active=active, future_payments_changeable=changeable)
    invoice = InvoiceFactory()
    page = browser.new_page()
    page.goto(f"{live_server.url}/pay/{make_token(invoice.pk)}/")
    page.wait_for_selector("#double-card")
    box = page.locator("#save-for-future")
    assert box.count() == (1 if shown else 0)
    if shown:
        assert box.is_checked() == checked and box.is_disabled() == disabled
        assert page.locator("label[for=save-for-future]").is_visible()
    page.close()


def test_card_payment_through_the_page(browser, live_server, stripe_js_double, client, django_capture_on_commit_callbacks):
    setting = ProviderSettingFactory(method_card=True, method_sepa_debit=True)
    invoice = InvoiceFactory()
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/pay/{make_token(invoice.pk)}/")
    page.wait_for_selector("#double-card")
    assert invoice.number in page.content()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "payment-page.png"), full_page=True)
    page.click("#submit")
    page.wait_for_url("**/return/**", timeout=15000)
    page.wait_for_selector("text=succeeded")
    page.screenshot(path=str(ARTIFACTS / "payment-success.png"), full_page=True)
    assert errors == []
    # The books follow from Stripe's events, not from the browser.
    from providers.models import ProviderSetting
    from tests.factories import ProviderSettingFactory as _  # noqa: F401

    setting = ProviderSetting.objects.get()
    for event in stripe_js_double.events_of("charge.succeeded", "payment_intent.succeeded"):
        deliver(client, setting, event, django_capture_on_commit_callbacks)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    page.close()
