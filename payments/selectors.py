"""Reads of payments: transactions per charge, saved instruments."""

from functools import cache

from django.db import connection
from django.db.transaction import TransactionManagementError

from billing.sql import columns, from_row, prepared_cursor
from payments.models import PaymentInstrument, PaymentTransaction


def lock_transaction(charge_id: str) -> PaymentTransaction | None:
    """Row-lock one charge's transaction (call inside a transaction; first in the lock order). Plain SQL: every
    refund and dispute event asks."""
    if not connection.in_atomic_block:  # as select_for_update() refuses: a lock released at once protects nothing
        raise TransactionManagementError("lock_transaction() must run inside a transaction.")
    with prepared_cursor() as cursor:
        cursor.execute(_lock_transaction_sql(connection.vendor), [charge_id])
        row = cursor.fetchone()
    return from_row(PaymentTransaction, row) if row else None


@cache
def _lock_transaction_sql(vendor: str) -> str:
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return f"SELECT {columns(PaymentTransaction)} FROM {PaymentTransaction._meta.db_table} WHERE charge_id = %s{lock}"  # noqa: S608


def transaction_for_charge(charge_id: str) -> PaymentTransaction | None:
    return PaymentTransaction.objects.filter(charge_id=charge_id).first()


def active_instrument(*, account, provider_setting) -> PaymentInstrument | None:
    """The most recently saved active instrument of the account for this setting."""
    return (
        PaymentInstrument.objects.filter(account=account, provider_setting=provider_setting, active=True)
        .order_by("-activated_at", "-id")
        .first()
    )


def payment_link_for(invoice) -> str:
    """The absolute payment link of an invoice (signed, expiring)."""
    from django.conf import settings
    from django.urls import reverse

    from payments.tokens import make_token

    return settings.SITE_URL + reverse("payments:pay", args=[make_token(invoice.pk)])


def save_method_link_for(invoice) -> str:
    from django.conf import settings
    from django.urls import reverse

    from payments.tokens import SAVE_METHOD, make_token

    return settings.SITE_URL + reverse("payments:save-method", args=[make_token(invoice.pk, purpose=SAVE_METHOD)])
