"""Reads of the refund path."""

from decimal import Decimal

import pytest

from refunds.models import RefundRequest
from refunds.selectors import refund_request_of_stripe_refund
from tests.factories import BalanceFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db


def test_refund_request_of_stripe_refund_is_the_recorded_request_or_none():
    setting = ProviderSettingFactory()
    balance = BalanceFactory(provider_setting=setting, transaction_number="ch_r")
    request = RefundRequest.objects.create(balance=balance, provider_setting=setting, charge_id="ch_r", amount=Decimal("5.00"),
                                           currency="EUR", idempotency_key="k-1", stripe_refund_id="re_known")
    RefundRequest.objects.create(provider_setting=setting, charge_id="ch_r", amount=Decimal("1.00"), currency="EUR", idempotency_key="k-2")
    found = refund_request_of_stripe_refund("re_known")
    assert found == request
    assert (found.amount, found.balance_id, found.status, found.created_at) == (request.amount, balance.pk, request.status, request.created_at)
    assert refund_request_of_stripe_refund("re_unknown") is None
