"""Every hand-written statement (billing.ledger.sql) reads and writes what the ORM query beside it does.

Each case runs the statement and its ORM twin on the same books, each in a savepoint rolled back afterwards, and
compares what they return and the whole state of the books they leave. A statement added without a case here fails
`test_every_statement_has_a_case`.
"""

from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection, transaction
from django.utils import timezone

from billing.constants import BalanceStatus, BalanceType, LockReason, PaymentEntryKind
from billing.ledger import sql
from billing.models import Balance, Invoice, PaymentEntry
from payments.models import PaymentTransaction
from refunds.models import RefundRequest
from tests.factories import BalanceFactory, InvoiceFactory, PaymentEntryFactory, ProviderSettingFactory
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db
VOLATILE = {"id", "created_at", "updated_at", "booked_at"}


class Rollback(Exception):
    pass


def state() -> dict:
    """The books (and the other tables the statements touch), without ids and clock values, in a stable order."""
    def rows(model):
        names = [f.attname for f in model._meta.concrete_fields if f.name not in VOLATILE]
        return sorted(tuple(str(getattr(obj, name)) for name in names) for obj in model.objects.all())
    return {model.__name__: rows(model) for model in (Invoice, Balance, PaymentEntry, PaymentTransaction, RefundRequest, WebhookEvent)}


def comparable(value):
    if isinstance(value, Invoice | Balance | PaymentEntry | PaymentTransaction | RefundRequest | WebhookEvent):
        return type(value).__name__, {k: str(v) for k, v in sql.field_values(value).items() if k not in VOLATILE}
    if isinstance(value, tuple | list):
        return type(value).__name__, [comparable(item) for item in value]
    if isinstance(value, dict):
        return sorted((key, comparable(item)) for key, item in value.items())
    return value


def run(function, call):
    """What `call(function)` returns and the state it leaves, then undone."""
    try:
        with transaction.atomic():
            result = comparable(call(function))
            after = state()
            raise Rollback
    except Rollback:
        pass
    return result, after


@pytest.fixture
def books():
    """A charge of 150.00 in every shape the statements meet: linked, surplus, pending, locked, refunded, another charge and
    setting, an entry, a failed-charge candidate."""
    setting, other = ProviderSettingFactory(), ProviderSettingFactory()
    now = timezone.now()
    invoice = InvoiceFactory(amount=Decimal("500.00"))
    second = InvoiceFactory(account=invoice.account, business_entity=invoice.business_entity, amount=Decimal("80.00"))
    account = invoice.account

    def balance(days_ago, amount="-10.00", **fields):
        return BalanceFactory(account=account, invoice=fields.pop("invoice", invoice), amount=Decimal(amount),
                              transaction_number=fields.pop("charge", "ch_twin"), provider_setting=fields.pop("setting", setting),
                              date=now - timedelta(days=days_ago), **fields)

    rows = {
        "oldest": balance(9, "-12.34", invoice=None), "linked": balance(3, "-30.00"), "same_day_a": balance(5),
        "same_day_b": balance(5, "-7.00"), "on_second": balance(4, "-20.00", invoice=second),
        "disputed": balance(1, locked=True, lock_reason=LockReason.DISPUTED),
        "pending": balance(2, status=BalanceStatus.PENDING), "refund": balance(6, "20.00", type=BalanceType.REFUND, invoice=None,
                                                                                locked=True, lock_reason=LockReason.REFUND),
        "other_charge": balance(7, charge="ch_other", setting=other),
    }
    rows["split_part"] = balance(8, "-3.00", split_from=rows["linked"])
    PaymentEntryFactory(transaction_number="ch_twin", kind=PaymentEntryKind.UNMATCHED_PAYMENT, amount=Decimal("-9.00"),
                        payment_status=BalanceStatus.PENDING, resolved_balance=rows["same_day_a"], status="resolved")
    PaymentEntryFactory(transaction_number="ch_twin", kind=PaymentEntryKind.CURRENCY_MISMATCH, amount=Decimal("-5.00"),
                        provider_setting=setting)
    RefundRequest.objects.create(balance=rows["linked"], provider_setting=setting, charge_id="ch_twin", amount=Decimal("1.00"),
                                 currency="EUR", idempotency_key="twin-1", stripe_refund_id="re_twin", status="failed")
    tx = PaymentTransaction.objects.get(charge_id="ch_twin")  # made by the factories, holding what the books hold
    events = [WebhookEvent.objects.create(provider_setting=setting, stripe_event_id=f"evt_twin{i}", type="charge.succeeded", payload="{}",
                                          status=status) for i, status in enumerate(["received", "processed", "failed"])]
    return {"events": events, "setting": setting, "invoice": invoice, "second": second, "tx": tx, "rows": rows, "now": now}


def new_balance(books):
    invoice = books["invoice"]
    return Balance(account=invoice.account, invoice=invoice, type=BalanceType.PAYMENT, amount=Decimal("-1.50"), currency="EUR",
                   date=books["now"], transaction_number="ch_new", provider_setting=books["setting"])


def changed(balance, **fields):
    row = Balance.objects.get(pk=balance.pk)
    for name, value in fields.items():
        setattr(row, name, value)
    return row


CASES = {
    "insert": lambda b: lambda f: f(new_balance(b)),
    "update_fields": lambda b: lambda f: f(changed(b["rows"]["linked"], amount=Decimal("-29.00"), note="not written"), ["amount"]),
    "upsert_and_lock": lambda b: lambda f: [f(PaymentTransaction(charge_id=charge, provider_setting=b["setting"], currency="EUR"),
                                              key="charge_id") for charge in ("ch_twin", "ch_brand_new")],
    "lock_row": lambda b: lambda f: [f(PaymentTransaction, key="charge_id", value=v) for v in ("ch_twin", "ch_none")],
    "read_row": lambda b: lambda f: [f(RefundRequest, key="stripe_refund_id", value=v) for v in ("re_twin", "re_none")],
    "open_amount": lambda b: lambda f: [f(b["invoice"]), f(b["second"])],
    "lock_invoice_with_open_amount": lambda b: lambda f: [f(b["invoice"].pk), f(b["second"].pk), f(10**12)],
    "lock_available_payment_balances": lambda b: lambda f: f(setting_id=b["setting"].pk, charge_id="ch_twin"),
    "confirm_pending_payments": lambda b: lambda f: f(setting_id=b["setting"].pk, charge_id="ch_twin"),
    "set_amount_returning": lambda b: lambda f: f(b["rows"]["linked"].pk, Decimal("-25.00")),
    "lock_with_reason": lambda b: lambda f: f([b["rows"]["linked"].pk, b["rows"]["disputed"].pk, b["rows"]["oldest"].pk],
                                              LockReason.REFUND),
    "insert_refund_balances": lambda b: lambda f: len(f([b["rows"]["linked"].pk, b["rows"]["oldest"].pk], date=b["now"],
                                                        charge_id="ch_twin", setting_id=b["setting"].pk, refund_id="re_new",
                                                        now=b["now"])),
    "lock_unlocked_payments_of_charge": lambda b: lambda f: f(setting_id=b["setting"].pk, charge_id="ch_twin"),
    "delete_balances": lambda b: lambda f: f([b["rows"]["linked"].pk, b["rows"]["same_day_a"].pk, b["rows"]["on_second"].pk],
                                             then_sum_invoices=[b["invoice"].pk, b["second"].pk]),
    "void_open_money_entries": lambda b: lambda f: f(charge_id="ch_twin", reason="Payment failed: test", now=b["now"]),
    "invoice_with_open_amount": lambda b: lambda f: [f(b["invoice"].pk), f(b["second"].pk), f(10**12)],
    "select_by_ids": lambda b: lambda f: f(WebhookEvent, [e.pk for e in b["events"]] + [10**9],
                                           names=("id", "provider_setting_id", "type", "status", "stripe_created", "payload")),
    "update_by_ids": lambda b: lambda f: f(WebhookEvent, [e.pk for e in b["events"][:2]],
                                           values={"status": "processed", "last_error": "", "processed_at": b["now"]}, increment="attempts"),
}


def test_every_statement_has_a_case():
    assert set(sql.TWINS) == set(CASES)


@pytest.mark.services
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_statement_reads_and_writes_what_its_orm_twin_does(books, name):
    statement, orm = sql.TWINS[name]
    call = CASES[name](books)
    ours, theirs = run(statement, call), run(orm, call)
    assert ours == theirs
    assert ours[1] != state() or name in {"open_amount", "lock_row", "read_row", "lock_invoice_with_open_amount", "select_by_ids",
                                          "invoice_with_open_amount", "lock_available_payment_balances", "lock_unlocked_payments_of_charge"}  # writes wrote


@pytest.mark.services
def test_prepared_statements_are_prepared_by_postgresql_without_overriding_django():
    """The hot statements are prepared on their connection (psycopg's prepare threshold, set in DATABASES), through
    Django's public cursor wrappers: no private method of Django is overridden."""
    assert connection.settings_dict["OPTIONS"].get("prepare_threshold") == 0
    invoice = InvoiceFactory()
    sql.open_amount(invoice)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%SUM(%"])
        assert cursor.fetchone()[0] >= 1
    from django.db.backends.utils import CursorWrapper

    with sql.prepared_cursor() as cursor:
        assert type(cursor) in (CursorWrapper, connection.make_debug_cursor(cursor.cursor).__class__)


def test_id_batches_postgresql_one_array_sqlite_chunks():
    with mock.patch.object(connection, "vendor", "postgresql"):
        assert sql.id_batches(range(1, 2001)) == [("= ANY(%s)", [list(range(1, 2001))])]
    ids = list(range(1, 2 * sql.SQLITE_CHUNK + 8))
    with mock.patch.object(connection, "vendor", "sqlite"):
        batches = sql.id_batches(ids)
    assert len(batches) == 3 and [i for _, params in batches for i in params] == ids
    assert sql.id_batches([]) == []


def test_from_row_with_named_fields_in_any_order_defers_the_others():
    invoice = InvoiceFactory(amount="7.00", currency="EUR")
    names = ("status", "currency", "id", "amount")  # not the model's order
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql.columns(Invoice, names=names)} FROM billing_invoice WHERE id = %s", [invoice.pk])  # noqa: S608
        ours = sql.from_row(Invoice, cursor.fetchone(), names=names)
    assert (ours.pk, ours.amount, ours.currency, ours.status) == (invoice.pk, Decimal("7.00"), "EUR", invoice.status)
    assert ours.get_deferred_fields() >= {"number", "account_id"}
