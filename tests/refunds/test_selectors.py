"""The plain-SQL reads of the refund path read what the ORM queries they replace read."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from billing.constants import BalanceStatus, BalanceType
from refunds.models import RefundRequest
from refunds.selectors import charge_payment_balances, lock_plan_balances, plan_balances, refund_request_of_stripe_refund
from tests.factories import BalanceFactory, InvoiceFactory, ProviderSettingFactory

pytestmark = pytest.mark.django_db


def test_lock_plan_balances_reads_the_available_payment_balances_oldest_first_like_the_queryset():
    setting, other_setting = ProviderSettingFactory(), ProviderSettingFactory()
    invoice = InvoiceFactory(amount=Decimal("500.00"))
    now = timezone.now()

    def balance(days_ago, amount="-10.00", **fields):
        return BalanceFactory(invoice=fields.pop("invoice", invoice), account=invoice.account, amount=Decimal(amount),
                              transaction_number=fields.pop("charge", "ch_plan"), provider_setting=fields.pop("setting", setting),
                              date=now - timedelta(days=days_ago), **fields)

    # Dates out of id order, one shared date (then id decides), and every kind of row the plan must not take.
    expected = [balance(3, "-30.00"), balance(9, "-12.34", invoice=None), balance(5), balance(5, "-7.00")]
    balance(1, locked=True, lock_reason="Disputed")
    balance(2, status=BalanceStatus.PENDING)
    balance(4, "20.00", type=BalanceType.REFUND)
    balance(6, setting=other_setting)
    balance(7, charge="ch_other")

    with transaction.atomic():
        rows = lock_plan_balances(provider_setting_id=setting.pk, charge_id="ch_plan")
    assert rows == plan_balances(charge_payment_balances(provider_setting=setting, charge_id="ch_plan"))
    assert [row.pk for row in rows] == [expected[1].pk, expected[2].pk, expected[3].pk, expected[0].pk]
    assert rows[0].amount == Decimal("-12.34") and rows[0].invoice_id is None


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
