"""The review's cases of money in the wrong place (issue "The books have one owner"), each through the product's own
doors: the admin, the API, the webhook endpoint, the beat task."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.constants import BalanceStatus, BalanceType, InvoiceStatus, PaymentEntryKind
from billing.models import Balance, PaymentEntry
from billing.selectors import open_amount
from refunds.models import RefundRequest, RefundStatus
from tests.factories import BalanceFactory, InvoiceFactory, ProviderSettingFactory
from tests.helpers import make_charge, make_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance(finance_client):
    return finance_client


# --- A clerk re-linking a balance goes through assignment, with its rules -------------------------------------------


def test_the_balance_admin_cannot_type_an_invoice_into_a_payment_balance(finance):
    balance = BalanceFactory(invoice=None, amount=Decimal("-50.00"))
    other_customers = InvoiceFactory(amount=Decimal("100.00"))
    url = reverse("admin:billing_balance_change", args=[balance.pk])
    page = finance.get(url).content.decode()
    assert 'name="invoice"' not in page  # no raw field to type an id into
    finance.post(url, {"invoice": other_customers.pk, "amount": "-1.00", "account": other_customers.account_id})
    balance.refresh_from_db()
    assert (balance.invoice_id, balance.amount) == (None, Decimal("-50.00"))


@pytest.mark.parametrize("case, message", [
    ("other_customer", "belongs to another account"), ("other_currency", "is in JPY, not EUR"), ("unknown", "No invoice or credit note"),
])
def test_relinking_refuses_another_customer_or_currency_with_a_sentence(finance, case, message):
    balance = BalanceFactory(invoice=None, amount=Decimal("-50.00"))
    document = {"other_customer": lambda: InvoiceFactory(),
                "other_currency": lambda: InvoiceFactory(account=balance.account, currency="JPY", amount=Decimal("5000"))}.get(case)
    number = document().number if document else "NO-SUCH"
    response = finance.post(reverse("admin:billing_balance_assign", args=[balance.pk]), {"document": number})
    assert response.status_code == 200 and message in response.content.decode()
    balance.refresh_from_db()
    assert balance.invoice_id is None


def test_relinking_moves_the_balance_and_both_invoices_follow(finance):
    first = InvoiceFactory(amount=Decimal("50.00"))
    second = InvoiceFactory(account=first.account, business_entity=first.business_entity, amount=Decimal("30.00"))
    balance = BalanceFactory(invoice=first, account=first.account, amount=Decimal("-50.00"))
    first.refresh_from_db()
    assert first.status == InvoiceStatus.PAID
    response = finance.post(reverse("admin:billing_balance_assign", args=[balance.pk]), {"document": second.number})
    assert response.status_code == 302
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.status, open_amount(first)) == (InvoiceStatus.OPEN, Decimal("50.00"))
    assert (second.status, open_amount(second)) == (InvoiceStatus.PAID, Decimal("0"))  # 20.00 split off, unassigned
    assert sorted(Balance.objects.values_list("amount", "invoice_id")) == [(Decimal("-30.000"), second.pk), (Decimal("-20.000"), None)]


# --- Three-decimal refunds -------------------------------------------------------------------------------------------


@pytest.fixture
def kwd_balance(fake_stripe, payment_balances, stripe_charge):
    return payment_balances(stripe_charge(amount=Decimal("10.000"), currency="KWD"), "-10.000", currency="KWD")[0]


def test_a_kwd_refund_not_ending_in_zero_is_refused_in_the_api_and_the_admin(kwd_balance, finance, fake_stripe):
    api = finance.post(reverse("refunds:api-refund-balance", args=[kwd_balance.pk]), {"amount": "3.335"},
                       content_type="application/json")
    assert api.status_code == 400 and "last digit must be 0" in api.json()["detail"]
    page = finance.get(reverse("refunds:refund-balance", args=[kwd_balance.pk])).content.decode()
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page).group(1)
    admin = finance.post(reverse("refunds:refund-balance", args=[kwd_balance.pk]),
                         {"amount": "3.335", "idempotency_key": key, "confirm": "1"})
    assert admin.status_code == 200 and "last digit must be 0" in admin.content.decode()
    assert not RefundRequest.objects.exists() and fake_stripe.count("POST", "/v1/refunds") == 0


def test_one_request_that_can_never_be_sent_does_not_stop_the_beat_task(kwd_balance, fake_stripe):
    """A pending request written before amounts were checked (3.335 KWD) fails with its reason; the others finish."""
    from datetime import timedelta

    from django.utils import timezone

    from refunds.services import finish_pending_refund_requests

    charge = kwd_balance.transaction_number
    old = timezone.now() - timedelta(minutes=10)
    bad = RefundRequest.objects.create(balance=kwd_balance, provider_setting=kwd_balance.provider_setting, charge_id=charge,
                                       amount=Decimal("3.335"), currency="KWD", idempotency_key="legacy-bad")
    good = RefundRequest.objects.create(balance=kwd_balance, provider_setting=kwd_balance.provider_setting, charge_id=charge,
                                        amount=Decimal("1.000"), currency="KWD", idempotency_key="legacy-good")
    RefundRequest.objects.filter(pk__in=[bad.pk, good.pk]).update(created_at=old)
    finish_pending_refund_requests()
    bad.refresh_from_db(), good.refresh_from_db()
    assert bad.status == RefundStatus.FAILED and "last digit must be 0" in bad.failure_reason
    assert good.status == RefundStatus.SUCCEEDED and good.applied_at is not None


def test_the_preview_says_stripe_cannot_refund_more_than_is_left(finance, stripe_charge, payment_balances):
    balance = payment_balances(stripe_charge(), "-100")[0]
    page = finance.get(reverse("refunds:refund-balance", args=[balance.pk])).content.decode()
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page).group(1)
    preview = finance.post(reverse("refunds:refund-balance", args=[balance.pk]),
                           {"amount": "150", "idempotency_key": key, "preview": "1"}).content.decode()
    assert "Stripe cannot refund that much" in preview
    assert "confirm_overrefund" not in preview and "Confirm refund" not in preview


# --- Entries: a pending SEPA debit stays pending; a refund of held money is booked once --------------------------------


def test_a_sepa_debit_resolved_from_an_entry_stays_pending_and_goes_when_it_fails(client, fake_stripe, django_capture_on_commit_callbacks):
    from billing import ledger
    from tests.helpers import deliver

    setting = ProviderSettingFactory(method_sepa_debit=True)
    invoice = InvoiceFactory()
    debit = make_charge(metadata={}, status="pending", method="sepa_debit")  # no invoice named: an unmatched entry
    deliver(client, setting, make_event("charge.pending", debit), django_capture_on_commit_callbacks)
    entry = PaymentEntry.objects.get()
    balance = ledger.resolve_payment_entry(entry, invoice=invoice)
    assert balance.status == BalanceStatus.PENDING  # the money has not arrived: it cannot be refunded
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    failed = {**debit, "status": "failed", "failure_message": "The account has insufficient funds."}
    deliver(client, setting, make_event("charge.failed", failed), django_capture_on_commit_callbacks)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN and not Balance.objects.exists()


def test_a_dashboard_refund_of_money_held_in_an_entry_is_booked_when_the_entry_is_resolved(client, fake_stripe,
                                                                                             django_capture_on_commit_callbacks):
    from billing import ledger
    from tests.helpers import deliver

    setting = ProviderSettingFactory()
    invoice = InvoiceFactory(currency="EUR")
    usd = make_charge(metadata={"invoice_id": str(invoice.pk)}, currency="usd")
    deliver(client, setting, make_event("charge.succeeded", usd), django_capture_on_commit_callbacks)
    entry = PaymentEntry.objects.get(kind=PaymentEntryKind.CURRENCY_MISMATCH)
    refund = {"id": "re_dash_usd", "object": "refund", "amount": 4000, "currency": "usd", "charge": usd["id"], "status": "succeeded",
              "created": 1_700_000_500, "metadata": {}}
    deliver(client, setting, make_event("charge.refunded", {**usd, "amount_refunded": 4000, "refunds": {
        "object": "list", "data": [refund], "has_more": False}}), django_capture_on_commit_callbacks)
    assert not Balance.objects.exists()  # no netting pair: the money sits in the entry, and the refund beside it
    assert PaymentEntry.objects.get(kind=PaymentEntryKind.REFUND_OF_UNBOOKED).parent == entry

    first = ledger.resolve_payment_entry(entry, account=invoice.account)
    assert first.invoice is None  # USD money is booked on the account, not on the EUR invoice
    rows = sorted((b.type, b.amount, b.locked) for b in Balance.objects.all())
    assert rows == [(BalanceType.PAYMENT, Decimal("-60.000"), False), (BalanceType.PAYMENT, Decimal("-40.000"), True),
                    (BalanceType.REFUND, Decimal("40.000"), True)]  # only the unrefunded 60.00 USD is credited


def test_a_stale_pending_refund_event_after_succeeded_changes_nothing(setting, pay, deliver_all, fake_stripe):
    invoice = InvoiceFactory()
    charge = pay(invoice)["latest_charge"]
    deliver_all()
    seen = len(fake_stripe.events)
    refund = fake_stripe.create_dashboard_refund(charge, 2500)
    created = [e for e in fake_stripe.events_of()[seen:] if e["type"] == "refund.created"][0]
    created["data"]["object"]["status"] = "pending"
    updated = make_event("refund.updated", {**refund, "status": "succeeded"})
    deliver_all([updated, created])
    assert RefundRequest.objects.get().status == RefundStatus.SUCCEEDED
