"""The payments records' view-only admin pages show every amount in its currency's decimals, as the lists do
(billing.admin_money.MoneyOnViewPages): 5000 JPY, 3.500 KWD, 100.00 EUR, never the books' three-decimal "100.000"."""

from decimal import Decimal

import pytest
from django.urls import reverse

from payments.models import Payout, PayoutLine
from tests.factories import PaymentTransactionFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db


def page(client, obj) -> str:
    response = client.get(reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_a_charge_page_shows_its_amount_in_its_currency(finance_client):
    for amount, currency, shown in (("5000", "JPY", "5000 JPY"), ("3.5", "KWD", "3.500 KWD"), ("100", "EUR", "100.00 EUR")):
        text = page(finance_client, PaymentTransactionFactory(amount=Decimal(amount), currency=currency, status="failed"))
        assert shown in text
        assert f"{Decimal(amount):.3f}" not in text or currency == "KWD"


def test_a_payout_line_shows_gross_fee_net_and_its_source_amount_in_their_currencies(finance_client):
    payout = Payout.objects.create(provider_setting=ProviderSettingFactory(), stripe_payout_id="po_admin_money",
                                   amount=Decimal("97.10"), currency="EUR")
    line = PayoutLine.objects.create(payout=payout, balance_transaction_id="txn_admin_money", type="charge", kind="charge",
                                     gross=Decimal("100"), fee=Decimal("2.9"), net=Decimal("97.1"), currency="EUR",
                                     source_amount=Decimal("11000"), source_currency="JPY")
    text = page(finance_client, line)
    assert all(shown in text for shown in ("100.00 EUR", "2.90 EUR", "97.10 EUR", "11000 JPY"))
    assert "100.000" not in text and "11000.000" not in text
