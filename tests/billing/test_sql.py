"""billing.sql: id lists (one array parameter on PostgreSQL, IN-list chunks under SQLite's parameter limit) and the
row helpers of the hot paths, which must read and write exactly what the ORM would."""

from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection

from billing.models import Balance, Invoice
from billing.sql import SQLITE_CHUNK, changed_fields, columns, converted, field_values, from_row, id_batches, insert, update_fields
from tests.factories import InvoiceFactory


def test_postgresql_gets_one_array_whatever_the_count():
    with mock.patch.object(connection, "vendor", "postgresql"):
        assert id_batches(range(1, 2001)) == [("= ANY(%s)", [list(range(1, 2001))])]


def test_sqlite_gets_chunks_that_cover_every_id_once():
    ids = list(range(1, 2 * SQLITE_CHUNK + 8))
    with mock.patch.object(connection, "vendor", "sqlite"):
        batches = id_batches(ids)
    assert len(batches) == 3
    assert [i for _, params in batches for i in params] == ids
    assert all(condition.count("%s") == len(params) <= SQLITE_CHUNK for condition, params in batches)


def test_no_ids_no_statement():
    assert id_batches([]) == []


# --- Row helpers of the hot paths: the same rows and values as the ORM ------------------------------------


@pytest.mark.django_db
def test_from_row_builds_what_the_orm_loads():
    invoice = InvoiceFactory(amount="123.45", currency="EUR")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns(Invoice)} FROM billing_invoice WHERE id = %s", [invoice.pk])  # noqa: S608
        ours = from_row(Invoice, cursor.fetchone())
    theirs = Invoice.objects.get(pk=invoice.pk)
    assert field_values(ours) == field_values(theirs) and ours.pk == theirs.pk
    assert not ours._state.adding


@pytest.mark.django_db
def test_from_row_with_named_fields_defers_the_others():
    invoice = InvoiceFactory()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns(Invoice, names=('id', 'amount'))} FROM billing_invoice WHERE id = %s", [invoice.pk])  # noqa: S608
        ours = from_row(Invoice, cursor.fetchone(), names=("id", "amount"))
    assert ours.amount == invoice.amount and ours.get_deferred_fields() >= {"number", "status"}


@pytest.mark.django_db
def test_named_fields_come_in_the_model_order_whatever_order_they_are_named_in():
    invoice = InvoiceFactory(amount="7.00", currency="EUR")
    names = ("status", "currency", "id", "amount")  # not the model's order
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns(Invoice, names=names)} FROM billing_invoice WHERE id = %s", [invoice.pk])  # noqa: S608
        ours = from_row(Invoice, cursor.fetchone(), names=names)
    assert (ours.pk, ours.amount, ours.currency, ours.status) == (invoice.pk, Decimal("7.00"), "EUR", invoice.status)


@pytest.mark.django_db
def test_insert_and_update_fields_write_what_save_writes():
    invoice = InvoiceFactory(amount="50.00", currency="EUR")
    balance = insert(Balance(account=invoice.account, invoice=invoice, type="payment", amount="-20.00", currency="EUR",
                             date="2026-01-02T03:04:05Z", transaction_number="ch_1"))
    stored = Balance.objects.get(pk=balance.pk)
    assert (stored.amount, stored.invoice_id, stored.transaction_number) == (-20, invoice.pk, "ch_1")
    assert stored.created_at is not None  # auto_now_add, as save() would set it
    before = field_values(stored)
    stored.amount, stored.note = stored.amount - 1, "changed"
    assert changed_fields(stored, before) == ["amount", "note"]
    update_fields(stored, ["amount"])  # only the named field is written
    fresh = Balance.objects.get(pk=balance.pk)
    assert (fresh.amount, fresh.note) == (-21, "")


@pytest.mark.django_db
def test_converted_gives_the_orm_type():
    assert converted(Balance, "amount", Decimal("1.50")) == Decimal("1.50")
