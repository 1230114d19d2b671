"""The admin reads like a ledger (issue 20 item 4), as the new finance clerk found it: amounts in their currency's
decimals on lists, pages, messages and the refund form; the balances list with its links; the refund page named by
its invoice with a full breadcrumb; one message per refund; readable filters; the admin in German."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import Balance
from tests.factories import BalanceFactory, InvoiceFactory, PaymentEntryFactory

pytestmark = pytest.mark.django_db

BALANCES = reverse("admin:billing_balance_changelist")


def refund_url(balance):
    return reverse("refunds:refund-balance", args=[balance.pk])


def cells(page: str, column: str) -> list[str]:
    found = re.findall(rf'<t[dh] class="field-{column}[^"]*">(.*?)</t[dh]>', page, re.S)
    return [re.sub(r"<[^>]+>", "", cell.replace("<br>", " ")).strip() for cell in found]


@pytest.fixture
def three_currencies():
    return [BalanceFactory(invoice=InvoiceFactory(amount=amount, currency=currency, number=number), amount=-amount, currency=currency)
            for number, amount, currency in (("DEMO-1001", Decimal("119.00"), "EUR"), ("DEMO-1002", Decimal("5000"), "JPY"),
                                             ("DEMO-1003", Decimal("3.500"), "KWD"))]


def test_amounts_in_their_currencys_decimals_on_lists_and_pages(finance_client, three_currencies):
    page = finance_client.get(BALANCES).content.decode()
    assert sorted(cells(page, "amount_display")) == sorted(["-119.00 EUR", "-5000 JPY", "-3.500 KWD"])
    assert "119.000" not in page and "5000.000" not in page
    invoices = finance_client.get(reverse("admin:billing_invoice_changelist")).content.decode()
    assert sorted(cells(invoices, "amount_display")) == sorted(["119.00 EUR", "5000 JPY", "3.500 KWD"])
    assert sorted(cells(invoices, "open_amount_display")) == sorted(["0.00 EUR", "0 JPY", "0.000 KWD"])
    for balance, shown in zip(three_currencies, ["-119.00 EUR", "-5000 JPY", "-3.500 KWD"], strict=True):
        balance_page = finance_client.get(reverse("admin:billing_balance_change", args=[balance.pk])).content.decode()
        assert shown in balance_page, shown
        assert balance.currency == "KWD" or f"{balance.amount:.3f}" not in balance_page, shown  # no "-119.000" beside it
        invoice_page = finance_client.get(reverse("admin:billing_invoice_change", args=[balance.invoice_id])).content.decode()
        assert shown.lstrip("-") in invoice_page and shown in invoice_page  # the invoice's amount and its balance's


def test_payment_entries_list_formats_amounts(finance_client):
    PaymentEntryFactory(amount=Decimal("-5000"), currency="JPY")
    page = finance_client.get(reverse("admin:billing_paymententry_changelist")).content.decode()
    assert cells(page, "amount_display") == ["-5000 JPY"]


def test_the_balances_list_links_invoice_and_account_and_shows_lock_and_transaction(finance_client):
    balance = BalanceFactory(invoice=InvoiceFactory(number="DEMO-1001", amount=Decimal("119.00")), amount=Decimal("-119.00"),
                             transaction_number="ch_3QabcdefghijklmnopqrstuV")
    Balance.objects.filter(pk=balance.pk).update(locked=True, lock_reason="Disputed")
    page = finance_client.get(BALANCES).content.decode()
    assert f'href="{reverse("admin:billing_invoice_change", args=[balance.invoice_id])}">DEMO-1001</a>' in page
    assert f'href="{reverse("admin:billing_account_change", args=[balance.account_id])}">{balance.account.name}</a>' in page
    assert f'href="{reverse("admin:billing_balance_change", args=[balance.pk])}"' in page
    assert cells(page, "lock_display") == ["Locked: Disputed"] and cells(page, "type_display") == ["Payment Confirmed"]
    assert cells(page, "invoice_link") == ["DEMO-1001 ch_3Qabcdefg…"] and 'title="ch_3QabcdefghijklmnopqrstuV"' in page
    # Fewer columns than fields: date, time and id share one, type and status, invoice and transaction, the lock and its
    # reason; the currency is in the amount.
    header = re.search(r'<table id="result_list">.*?</thead>', page, re.S).group(0)
    assert len(re.findall(r'<th scope="col"', header)) == 6


def test_filters_read_as_words(finance_client):
    page = finance_client.get(BALANCES).content.decode()
    assert "By is overrefund" not in page and "By overrefund" in page and "By locked" in page


def test_the_refund_page_is_named_by_its_invoice_with_a_full_breadcrumb(finance_client, stripe_charge, payment_balances):
    balance, = payment_balances(stripe_charge(Decimal("119.00")), "-119", invoice=InvoiceFactory(number="DEMO-1001",
                                                                                                amount=Decimal("119.00")))
    page = finance_client.get(refund_url(balance)).content.decode()
    assert "<title>Refund payment of DEMO-1001 — 119.00 EUR" in page and "<h1>Refund payment of DEMO-1001 — 119.00 EUR</h1>" in page
    breadcrumb = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", re.search(r'<div class="breadcrumbs">(.*?)</div>', page, re.S).group(1)))
    assert breadcrumb.strip() == "Home › Billing › Balances › Payment -119.00 EUR › Refund"
    assert f'href="{reverse("admin:billing_balance_changelist")}"' in page
    assert 'name="amount" value="119.00"' in page  # not "119.000"
    balance_page = finance_client.get(reverse("admin:billing_balance_change", args=[balance.pk])).content.decode()
    assert f'<a href="{refund_url(balance)}" class="refund-button">Refund</a>' in balance_page
    assert "billing/admin.css" in balance_page  # the style that makes it the primary action


def test_the_refund_form_starts_in_the_currencys_decimals(finance_client, stripe_charge, payment_balances):
    yen, = payment_balances(stripe_charge(Decimal("5000"), currency="JPY"), "-5000", currency="JPY")
    page = finance_client.get(refund_url(yen)).content.decode()
    assert 'name="amount" value="5000"' in page and "— 5000 JPY" in page


def test_a_resubmitted_refund_form_says_refunded_once(finance_client, stripe_charge, payment_balances, fake_stripe):
    balance, = payment_balances(stripe_charge(Decimal("119.00")), "-119")
    form = {"amount": "1.00", "idempotency_key": "one-form", "confirm": "1"}
    first = finance_client.post(refund_url(balance), form, follow=True).content.decode()
    second = finance_client.post(refund_url(balance), form, follow=True).content.decode()
    assert first.count("Refunded 1.00 EUR through Stripe.") == 1
    assert "Refunded" not in second and "was already requested" in second and "nothing was refunded again" in second
    assert fake_stripe.count("POST", "/v1/refunds") == 1


def test_admin_messages_format_amounts(finance_client):
    invoice = InvoiceFactory(amount=Decimal("5000"), currency="JPY")
    balance = BalanceFactory(invoice=None, account=invoice.account, amount=Decimal("-5000"), currency="JPY")
    response = finance_client.post(reverse("admin:billing_balance_assign", args=[balance.pk]), {"document": invoice.number},
                                   follow=True)
    assert f"5000 JPY assigned to {invoice.number}." in response.content.decode()


def test_the_admin_in_german(finance_client, stripe_charge, payment_balances):
    balance, = payment_balances(stripe_charge(Decimal("119.00")), "-119", invoice=InvoiceFactory(number="DEMO-1001",
                                                                                                amount=Decimal("119.00")))
    german = {"HTTP_ACCEPT_LANGUAGE": "de"}
    listing = finance_client.get(BALANCES, **german).content.decode()
    assert '<html lang="de"' in listing
    for text in ("Salden", "Nach Übererstattung", "Nach Typ", "Kundenkonto", "Betrag", "Zahlung", "Bestätigt", "Abrechnung"):
        assert text in listing, text
    refund_page = finance_client.get(refund_url(balance), **german).content.decode()
    assert "Zahlung zu DEMO-1001 erstatten — 119.00 EUR" in refund_page and "Erstattungsbetrag" in refund_page
    assert "Auf dieser Zahlung noch erstattbar" in refund_page
    index = finance_client.get(reverse("admin:index"), **german).content.decode()
    assert "Prüfprotokoll" in index and "Zahlungseinträge" in index
