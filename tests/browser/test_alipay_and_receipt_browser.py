"""In headless Chromium: an Alipay payment through its redirect (the Stripe.js double follows next_action to the fake
Stripe's Alipay page, which returns to the return URL), booked by its webhooks and never saved; and a customer
downloading the receipt from the return page."""

from decimal import Decimal

import pytest

from billing.constants import InvoiceStatus
from payments.models import PaymentInstrument, StripeCustomer
from payments.tokens import make_token
from providers.models import ProviderSetting
from receipts.models import Receipt
from tests.browser.test_payment_page_browser import ARTIFACTS, CHROMIUM, browser, stripe_js_double  # noqa: F401 - fixtures
from tests.factories import InvoiceFactory, ProviderSettingFactory
from tests.helpers import deliver
from tests.receipts.conftest import pdf_text

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
]


@pytest.fixture(autouse=True)
def locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def deliver_events(client, fake_stripe, capture, *types):
    setting = ProviderSetting.objects.get()
    for event in fake_stripe.events_of(*types):
        deliver(client, setting, event, capture)


def test_an_alipay_payment_redirects_returns_is_booked_and_never_offers_future_payments(
        browser, live_server, stripe_js_double, client, django_capture_on_commit_callbacks):  # noqa: F811 - fixtures
    # Future payments forced on for cards and SEPA: Alipay still never offers them.
    ProviderSettingFactory(method_card=True, method_alipay=True, enable_future_payments=True, future_payments_active=True,
                           future_payments_changeable=False)
    invoice = InvoiceFactory(amount=Decimal("88.00"))
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/pay/{make_token(invoice.pk)}/")
    page.wait_for_selector("#double-card")
    assert page.locator("#future-row").is_visible()  # card, the first method: offered (forced)
    page.select_option("#double-type", "alipay")
    assert not page.locator("#future-row").is_visible() and not page.locator("#mandate-text").is_visible()
    page.fill("#double-card", "pm_alipay")
    page.click("#submit")
    page.wait_for_url("**/alipay/authorize/**", timeout=15000)  # Alipay's page (the fake Stripe's)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "alipay-authorize.png"))
    page.click("#authorize")
    page.wait_for_url("**/return/**", timeout=15000)
    page.wait_for_selector("text=succeeded")
    assert "redirect_status=succeeded" in page.url and "€88.00" in page.content()
    page.screenshot(path=str(ARTIFACTS / "alipay-return.png"), full_page=True)
    assert errors == []
    pi = next(o for o in stripe_js_double.objects.values() if o.get("object") == "payment_intent")
    assert pi["payment_method_types"] == ["alipay"] and pi["setup_future_usage"] is None and pi["customer"] is None
    deliver_events(client, stripe_js_double, django_capture_on_commit_callbacks, "charge.succeeded", "payment_intent.succeeded")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert not PaymentInstrument.objects.exists() and not StripeCustomer.objects.exists()
    page.close()


def test_the_customer_downloads_the_receipt_from_the_return_page(browser, live_server, stripe_js_double, client,  # noqa: F811
                                                                  django_capture_on_commit_callbacks):
    ProviderSettingFactory(method_card=True)
    invoice = InvoiceFactory(amount=Decimal("119.00"))
    page = browser.new_page()
    page.goto(f"{live_server.url}/pay/{make_token(invoice.pk)}/")
    page.wait_for_selector("#double-card")
    page.click("#submit")
    page.wait_for_url("**/return/**", timeout=15000)
    page.wait_for_selector("#receipt-link")
    deliver_events(client, stripe_js_double, django_capture_on_commit_callbacks, "charge.succeeded", "payment_intent.succeeded")
    with page.expect_download(timeout=15000) as download_info:
        page.click("#receipt-link")
    download = download_info.value
    receipt = Receipt.objects.get()
    assert download.suggested_filename == f"{receipt.number}.pdf"
    with open(download.path(), "rb") as pdf:
        text = pdf_text(pdf.read())
    assert receipt.number in text and "€119.00" in text and invoice.number in text
    page.close()
