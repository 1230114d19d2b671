"""Every hand-written SQL statement of the service, in one place.

Why they exist: a webhook event pays for every round trip and for every ORM query compile (the worker's profile
showed Django's compiler at 55 % before these statements). Each one stands for the ORM query written beside it
(`..._orm`): the same rows read, the same rows written. `tests/billing/test_ledger_sql.py` runs every pair on the same
books on PostgreSQL and compares; the registry below (`TWINS`) makes a statement without a twin fail that test.

Rules: table and column names come from the models (cached per database vendor), every value is a parameter, and a
model gaining a column either gets it here automatically or fails loudly (`insert_refund_balances`).

The generic row helpers (`insert`, `update_fields`, `upsert_and_lock`, `lock_row`) take any model, so the payments
and webhooks apps use them for their own tables without writing SQL; the statements on the books (Balance,
PaymentEntry, Invoice) are called only by the ledger, and the locking ones only by `billing.ledger.locks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager
from decimal import Decimal
from functools import cache

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Sum

from billing.constants import BalanceStatus, BalanceType, LockReason, PaymentEntryStatus
from billing.models import Account, Balance, Invoice, PaymentEntry

SQLITE_CHUNK = 500  # below SQLite's limit on parameters per statement

# name -> (hand-written statement, its ORM twin); see the module docstring.
TWINS: dict[str, tuple[Callable, Callable]] = {}


def twin_of(statement: Callable) -> Callable[[Callable], Callable]:
    """Register `orm` as the ORM query that `statement` stands for."""

    def register(orm: Callable) -> Callable:
        TWINS[statement.__name__] = (statement, orm)
        return orm

    return register


# --- Cursors ---------------------------------------------------------------------------------------


def prepared_cursor():
    """A Django cursor whose statements PostgreSQL binds and keeps prepared on the connection (psycopg prepares a
    server-binding cursor's statement once `prepare_threshold`, set in DATABASES OPTIONS, is reached: at the first
    execution here). A webhook's 4 KB payload is then not quoted into the SQL text in Python, and the server does not
    parse and plan the same statement for every event. Django's public cursor wrappers keep error translation,
    execute wrappers and query logging. Django's ordinary (client-binding, never prepared) cursor elsewhere: other
    databases, or DB_PREPARED_STATEMENTS=false (a pooler in transaction mode without prepared statements).

    Without Django's per-request health check (a `SELECT 1` round trip as long as the statement it protects): a
    connection that died fails the statement instead, and the callers recover (the webhook view retries its
    idempotent insert once on a new connection; tasks are retried)."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each `connection.x` is a thread-local lookup (4 cursors per event)
    if db.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS:
        return db.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    db.ensure_connection()
    db.validate_thread_sharing()
    with db.wrap_database_errors:
        raw = ServerBindingCursor(db.connection)
    return db.make_debug_cursor(raw) if db.queries_logged else db.make_cursor(raw)


def id_batches(ids: Iterable[int]) -> list[tuple[str, list]]:
    """`id` conditions with their parameters, e.g. `("= ANY(%s)", [[1, 2, 3]])`: one array on PostgreSQL whatever
    the count (one statement, one parameter), chunks of an IN list on the demo's SQLite (no arrays)."""
    ids = list(ids)
    if not ids:
        return []
    if connection.vendor == "postgresql":
        return [("= ANY(%s)", [ids])]
    chunks = (ids[start:start + SQLITE_CHUNK] for start in range(0, len(ids), SQLITE_CHUNK))
    return [(f"IN ({', '.join(['%s'] * len(chunk))})", chunk) for chunk in chunks]


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _table(model) -> str:
    return _quote(model._meta.db_table)


# --- Rows as the ORM reads and writes them -----------------------------------------------------------


def columns(model, alias: str = "", names: tuple[str, ...] | None = None) -> str:
    """The model's concrete columns (or the named fields'), in the model's field order, for a SELECT or RETURNING
    whose rows go to from_row() with the same names."""
    return _columns(model, alias, names, connection.vendor)


@cache
def _columns(model, alias: str, names: tuple[str, ...] | None, vendor: str) -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + _quote(field.column) for field in _fields(model, names))


def from_row(model, values, names: tuple[str, ...] | None = None):
    """A model instance from a row of columns(model, names=names), with the converters the ORM would apply
    (datetimes and decimals on the demo's SQLite; nearly none on PostgreSQL). Fields not named are deferred."""
    values = list(values)
    fields = _fields(model, names)
    for index, converters in _converters(model, names, connection.vendor):
        for converter in converters:
            values[index] = converter(values[index], fields[index].cached_col, connection)
    return model.from_db(connection.alias, None if names is None else [field.attname for field in fields], values)


def converted(model, field_name: str, value):
    """A value read with plain SQL from (or computed like) the model's field, as the ORM would return it."""
    column, converters = _field_converters(model, field_name, connection.vendor)
    for converter in converters:
        value = converter(value, column, connection)
    return value


@cache
def _field_converters(model, field_name: str, vendor: str) -> tuple:
    """Looked up once: a refund reads the amounts of thousands of balances (none apply on PostgreSQL)."""
    column = model._meta.get_field(field_name).cached_col
    return column, tuple(connection.ops.get_db_converters(column) + column.get_db_converters(connection))


@cache
def _fields(model, names: tuple[str, ...] | None) -> list:
    """The named concrete fields (all when None) in the model's field order, which Model.from_db() expects."""
    named = None if names is None else {model._meta.get_field(name) for name in names}
    return [field for field in model._meta.concrete_fields if named is None or field in named]


@cache
def _converters(model, names: tuple[str, ...] | None, vendor: str) -> list[tuple[int, list]]:
    result = []
    for index, field in enumerate(_fields(model, names)):
        converters = connection.ops.get_db_converters(field.cached_col) + field.cached_col.get_db_converters(connection)
        if converters:
            result.append((index, converters))
    return result


def field_values(instance) -> dict:
    """The instance's concrete field values by field name (foreign keys by their id)."""
    return {field.name: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields if not field.primary_key}


def changed_fields(instance, snapshot: dict) -> list[str]:
    """Names of the concrete fields whose value differs from `snapshot` (see field_values)."""
    return [name for name, value in field_values(instance).items() if snapshot[name] != value]


@cache
def _insert_fields(model) -> list:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


@cache
def _insert_sql(model, conflict: str, vendor: str) -> str:
    fields = _insert_fields(model)
    return (f"INSERT INTO {_table(model)} ({', '.join(_quote(field.column) for field in fields)}) "  # noqa: S608 - model names
            f"VALUES ({', '.join(['%s'] * len(fields))}){conflict} RETURNING {_quote(model._meta.pk.column)}")


def insert(instance, *, unless_conflict: bool = False):
    """INSERT one new instance (what Model.save() does for a new row, without compiling a query); sets its pk.

    With unless_conflict, a row that would break a unique constraint is not written and None is returned
    (ON CONFLICT DO NOTHING: no error, so the caller's transaction goes on).
    """
    model = type(instance)
    values = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in _insert_fields(model)]
    with prepared_cursor() as cursor:
        cursor.execute(_insert_sql(model, " ON CONFLICT DO NOTHING" if unless_conflict else "", connection.vendor), values)
        row = cursor.fetchone()
    if row is None:
        return None
    instance.pk = row[0]
    instance._state.adding, instance._state.db = False, connection.alias
    return instance


@twin_of(insert)
def insert_orm(instance, *, unless_conflict: bool = False):
    from django.db import IntegrityError, transaction

    try:
        with transaction.atomic():
            instance.save(force_insert=True)
    except IntegrityError:
        if not unless_conflict:
            raise
        return None
    return instance


def update_fields(instance, names) -> None:
    """Write the named fields of one row with a plain UPDATE (auto_now fields named here get the time).

    What Model.save(update_fields=...) writes, without compiling a query per call. No signals are sent (the books
    use none)."""
    model = type(instance)
    names = tuple(names)
    if not names:
        return
    fields = _named_fields(model, names)
    values = [field.get_db_prep_save(field.pre_save(instance, add=False), connection) for field in fields]
    with prepared_cursor() as cursor:
        cursor.execute(_update_sql(model, names, connection.vendor), [*values, model._meta.pk.get_db_prep_value(instance.pk, connection)])


@cache
def _named_fields(model, names: tuple[str, ...]) -> list:
    return [model._meta.get_field(name) for name in names]


@cache
def _update_sql(model, names: tuple[str, ...], vendor: str) -> str:
    assignments = ", ".join(f"{_quote(field.column)} = %s" for field in _named_fields(model, names))
    return f"UPDATE {_table(model)} SET {assignments} WHERE {_quote(model._meta.pk.column)} = %s"  # noqa: S608 - model names


@twin_of(update_fields)
def update_fields_orm(instance, names) -> None:
    instance.save(update_fields=list(names))


@cache
def _upsert_sql(model, key: str, vendor: str) -> str:
    column = _quote(model._meta.get_field(key).column)
    return (_insert_sql(model, f" ON CONFLICT ({column}) DO UPDATE SET {column} = EXCLUDED.{column}", vendor)
            .rsplit(" RETURNING ", 1)[0] + f" RETURNING {columns(model)}")


def upsert_and_lock(instance, *, key: str):
    """The row whose unique field `key` equals the instance's, inserted from the instance if missing, row-locked: one
    statement instead of an INSERT then a SELECT FOR UPDATE. INSERT ... ON CONFLICT (key) DO UPDATE locks an existing
    row like FOR UPDATE does (a concurrent first insert makes it wait for that commit) and RETURNING gives the row as
    it is. Inside a transaction; PostgreSQL and the demo's SQLite both support it."""
    model = type(instance)
    values = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in _insert_fields(model)]
    with prepared_cursor() as cursor:
        cursor.execute(_upsert_sql(model, key, connection.vendor), values)
        return from_row(model, cursor.fetchone())


@twin_of(upsert_and_lock)
def upsert_and_lock_orm(instance, *, key: str):
    model = type(instance)
    defaults = {field.attname: getattr(instance, field.attname) for field in _insert_fields(model) if field.name != key}
    model.objects.get_or_create(**{key: getattr(instance, key)}, defaults=defaults)
    return model.objects.select_for_update().get(**{key: getattr(instance, key)})


@cache
def _lock_row_sql(model, key: str, vendor: str) -> str:
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return f"SELECT {columns(model)} FROM {_table(model)} WHERE {_quote(model._meta.get_field(key).column)} = %s{lock}"  # noqa: S608


def lock_row(model, *, key: str, value):
    """The row whose unique field `key` is `value`, row-locked (None when there is none). Inside a transaction."""
    with prepared_cursor() as cursor:
        cursor.execute(_lock_row_sql(model, key, connection.vendor), [value])
        row = cursor.fetchone()
    return from_row(model, row) if row else None


@twin_of(lock_row)
def lock_row_orm(model, *, key: str, value):
    return model.objects.select_for_update().filter(**{key: value}).first()


def read_row(model, *, key: str, value):
    """lock_row without the lock: the row whose unique field `key` is `value`, or None."""
    with prepared_cursor() as cursor:
        cursor.execute(_lock_row_sql(model, key, connection.vendor).removesuffix(" FOR UPDATE"), [value])
        row = cursor.fetchone()
    return from_row(model, row) if row else None


@twin_of(read_row)
def read_row_orm(model, *, key: str, value):
    return model.objects.filter(**{key: value}).first()


def select_by_ids(model, ids, *, names: tuple[str, ...]) -> list:
    """The rows with these ids (the named fields only, the others deferred), in id order: one statement."""
    rows = []
    with prepared_cursor() as cursor:
        for condition, params in id_batches(sorted(set(ids))):
            cursor.execute(_select_sql(model, names, connection.vendor) + condition + " ORDER BY id", params)
            rows += [from_row(model, row, names) for row in cursor.fetchall()]
    return rows


@cache
def _select_sql(model, names: tuple[str, ...], vendor: str) -> str:
    return f"SELECT {columns(model, names=names)} FROM {_table(model)} WHERE {_quote(model._meta.pk.column)} "  # noqa: S608


@twin_of(select_by_ids)
def select_by_ids_orm(model, ids, *, names: tuple[str, ...]) -> list:
    return list(model.objects.filter(pk__in=list(ids)).only(*names).order_by("pk"))


def update_by_ids(model, ids, *, values: dict, increment: str = "") -> int:
    """Set `values` (field name -> value) on the rows with these ids, adding 1 to the field `increment`: one statement."""
    names = tuple(values)
    fields = _named_fields(model, names)
    params = [field.get_db_prep_save(values[field.name], connection) for field in fields]
    count = 0
    with prepared_cursor() as cursor:
        for condition, batch in id_batches(sorted(set(ids))):
            cursor.execute(_update_by_ids_sql(model, names, increment, connection.vendor) + condition, [*params, *batch])
            count += cursor.rowcount
    return count


@cache
def _update_by_ids_sql(model, names: tuple[str, ...], increment: str, vendor: str) -> str:
    assignments = [f"{_quote(field.column)} = %s" for field in _named_fields(model, names)]
    if increment:
        column = _quote(model._meta.get_field(increment).column)
        assignments.append(f"{column} = {column} + 1")
    return f"UPDATE {_table(model)} SET {', '.join(assignments)} WHERE {_quote(model._meta.pk.column)} "  # noqa: S608


@twin_of(update_by_ids)
def update_by_ids_orm(model, ids, *, values: dict, increment: str = "") -> int:
    from django.db.models import F

    changes = {**values, **({increment: F(increment) + 1} if increment else {})}
    return model.objects.filter(pk__in=list(ids)).update(**changes)


# --- Statements on the books ---------------------------------------------------------------------------


def open_amount_from_sum(invoice: Invoice, linked_sum) -> Decimal:
    """The open amount from a SUM of the invoice's balances read with plain SQL (NULL when it has none)."""
    return invoice.amount + (converted(Balance, "amount", linked_sum) if linked_sum is not None else Decimal("0"))


@cache
def _open_sum_sql(vendor: str) -> str:
    return f"SELECT SUM({_quote('amount')}) FROM {_table(Balance)} WHERE {_quote('invoice_id')} = %s"  # noqa: S608


def open_amount(invoice: Invoice) -> Decimal:
    """Invoice amount plus the balances linked to it (0 means settled). Every booked payment asks."""
    with prepared_cursor() as cursor:
        cursor.execute(_open_sum_sql(connection.vendor), [invoice.pk])
        return open_amount_from_sum(invoice, cursor.fetchone()[0])


@twin_of(open_amount)
def open_amount_orm(invoice: Invoice) -> Decimal:
    return invoice.amount + (Balance.objects.filter(invoice_id=invoice.pk).aggregate(total=Sum("amount"))["total"] or Decimal("0"))


@cache
def _invoice_with_account_sql(vendor: str) -> str:
    lock = " FOR UPDATE OF i" if connection.features.has_select_for_update_of else ""
    return (f"SELECT {columns(Invoice, 'i')}, {columns(Account, 'a')} FROM {_table(Invoice)} i "  # noqa: S608 - model names
            f"JOIN {_table(Account)} a ON a.id = i.account_id WHERE i.id = %s{lock}")


def lock_invoice_with_open_amount(invoice_id: int) -> tuple[Invoice, Decimal] | None:
    """One invoice row-locked, with its account and its open amount, in one round trip (what booking a payment needs).

    On PostgreSQL the lock and the SUM travel as two statements of one query: the SUM starts after the lock is
    granted, with a snapshot of its own, so it counts every balance committed before (a SUM inside the locking
    SELECT would use the snapshot taken before waiting for the lock; tests/billing/test_ledger_locks.py shows it)."""
    postgresql = connection.vendor == "postgresql"
    with connection.cursor() as cursor:  # client-side binding: several statements in one query
        if postgresql:
            cursor.execute(f"{_invoice_with_account_sql(connection.vendor)}; {_open_sum_sql(connection.vendor)}", [invoice_id, invoice_id])
            row = cursor.fetchone()
            cursor.nextset()
            linked = cursor.fetchone()[0]
        else:
            cursor.execute(_invoice_with_account_sql(connection.vendor), [invoice_id])
            row = cursor.fetchone()
    if row is None:
        return None
    split = len(Invoice._meta.concrete_fields)
    invoice = from_row(Invoice, row[:split])
    invoice.account = from_row(Account, row[split:])
    return invoice, open_amount_from_sum(invoice, linked) if postgresql else open_amount(invoice)


@twin_of(lock_invoice_with_open_amount)
def lock_invoice_with_open_amount_orm(invoice_id: int) -> tuple[Invoice, Decimal] | None:
    invoice = Invoice.objects.select_related("account").select_for_update(of=("self",)).filter(pk=invoice_id).first()
    return None if invoice is None else (invoice, open_amount_orm(invoice))


@cache
def _invoice_with_parties_sql(vendor: str) -> str:
    from billing.models import BusinessEntity

    return (f"SELECT {columns(Invoice, 'i')}, {columns(Account, 'a')}, {columns(BusinessEntity, 'e')}, "  # noqa: S608 - model names
            f"(SELECT SUM(b.amount) FROM {_table(Balance)} b WHERE b.invoice_id = i.id) FROM {_table(Invoice)} i "
            f"JOIN {_table(Account)} a ON a.id = i.account_id JOIN {_table(BusinessEntity)} e ON e.id = i.business_entity_id "
            "WHERE i.id = %s")


def invoice_with_open_amount(invoice_id: int) -> tuple[Invoice, Decimal] | None:
    """An invoice with its account and business entity loaded, and its open amount, in one prepared statement (the
    payment page reads all of it on every view)."""
    from billing.models import BusinessEntity

    with prepared_cursor() as cursor:
        cursor.execute(_invoice_with_parties_sql(connection.vendor), [invoice_id])
        row = cursor.fetchone()
    if row is None:
        return None
    first, second = len(Invoice._meta.concrete_fields), len(Invoice._meta.concrete_fields) + len(Account._meta.concrete_fields)
    invoice = from_row(Invoice, row[:first])
    invoice.account, invoice.business_entity = from_row(Account, row[first:second]), from_row(BusinessEntity, row[second:-1])
    return invoice, open_amount_from_sum(invoice, row[-1])


@twin_of(invoice_with_open_amount)
def invoice_with_open_amount_orm(invoice_id: int) -> tuple[Invoice, Decimal] | None:
    invoice = Invoice.objects.select_related("account", "business_entity").filter(pk=invoice_id).first()
    return None if invoice is None else (invoice, open_amount_orm(invoice))


@cache
def _plan_balances_sql(vendor: str) -> str:
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""  # the demo's SQLite locks the database
    return (f"SELECT id, amount, invoice_id FROM {_table(Balance)} WHERE type = %s AND provider_setting_id = %s "  # noqa: S608
            f"AND transaction_number = %s AND NOT locked AND status = %s ORDER BY date, id{lock}")


def lock_available_payment_balances(*, setting_id: int, charge_id: str) -> list[tuple[int, Decimal, int | None]]:
    """(id, amount, invoice id) of the charge's available payment balances (unlocked, confirmed), oldest first,
    row-locked: what a refund plan needs, as one prepared statement (every refund applies it)."""
    with prepared_cursor() as cursor:
        cursor.execute(_plan_balances_sql(connection.vendor), [BalanceType.PAYMENT, setting_id, charge_id, BalanceStatus.CONFIRMED])
        return [(pk, converted(Balance, "amount", amount), invoice_id) for pk, amount, invoice_id in cursor.fetchall()]


@twin_of(lock_available_payment_balances)
def lock_available_payment_balances_orm(*, setting_id: int, charge_id: str) -> list[tuple[int, Decimal, int | None]]:
    return list(Balance.objects.select_for_update().filter(
        type=BalanceType.PAYMENT, provider_setting_id=setting_id, transaction_number=charge_id, locked=False,
        status=BalanceStatus.CONFIRMED).order_by("date", "id").values_list("id", "amount", "invoice_id"))


@cache
def _confirm_sql(vendor: str) -> str:
    return (f"UPDATE {_table(Balance)} SET status = %s WHERE type = %s AND provider_setting_id = %s "  # noqa: S608 - model names
            "AND transaction_number = %s AND status = %s")


@cache
def _confirm_entries_sql(vendor: str) -> str:
    return f"UPDATE {_table(PaymentEntry)} SET payment_status = %s WHERE transaction_number = %s AND payment_status = %s"  # noqa: S608


def confirm_pending_payments(*, setting_id: int, charge_id: str) -> None:
    """The money of a charge arrived: its pending payment balances, and entries holding its money, become confirmed.
    Every SEPA debit that succeeds: one round trip on PostgreSQL (two statements of one query)."""
    balance_params = [BalanceStatus.CONFIRMED, BalanceType.PAYMENT, setting_id, charge_id, BalanceStatus.PENDING]
    entry_params = [BalanceStatus.CONFIRMED, charge_id, BalanceStatus.PENDING]
    if connection.vendor != "postgresql":
        confirm_pending_payments_orm(setting_id=setting_id, charge_id=charge_id)
        return
    with connection.cursor() as cursor:  # client-side binding: two statements in one query
        cursor.execute(f"{_confirm_sql(connection.vendor)}; {_confirm_entries_sql(connection.vendor)}", balance_params + entry_params)


@twin_of(confirm_pending_payments)
def confirm_pending_payments_orm(*, setting_id: int, charge_id: str) -> None:
    Balance.objects.filter(type=BalanceType.PAYMENT, provider_setting_id=setting_id, transaction_number=charge_id,
                           status=BalanceStatus.PENDING).update(status=BalanceStatus.CONFIRMED)
    PaymentEntry.objects.filter(transaction_number=charge_id, payment_status=BalanceStatus.PENDING).update(
        payment_status=BalanceStatus.CONFIRMED)


def set_amount_returning(balance_id: int, amount: Decimal) -> Balance:
    """A split balance keeps `amount` (the part not split off); returns its row as updated. One UPDATE ... RETURNING
    instead of a read and a write; `amount` is computed in Python, exact on every database."""
    with prepared_cursor() as cursor:
        cursor.execute(f"UPDATE {_table(Balance)} SET amount = %s WHERE id = %s RETURNING {columns(Balance)}",  # noqa: S608
                       [Balance._meta.get_field("amount").get_db_prep_save(amount, connection), balance_id])
        return from_row(Balance, cursor.fetchone())


@twin_of(set_amount_returning)
def set_amount_returning_orm(balance_id: int, amount: Decimal) -> Balance:
    Balance.objects.filter(pk=balance_id).update(amount=amount)
    return Balance.objects.get(pk=balance_id)


def lock_with_reason(balance_ids: list[int], reason: str) -> int:
    """Lock the unlocked ones of these balances with `reason`: one UPDATE whatever the number (an IN list would bind
    one parameter per id). Returns how many were locked."""
    count = 0
    with connection.cursor() as cursor:
        for condition, params in id_batches(balance_ids):
            cursor.execute(f"UPDATE {_table(Balance)} SET locked = %s, lock_reason = %s WHERE NOT locked AND id {condition}",  # noqa: S608
                           [True, reason, *params])
            count += cursor.rowcount
    return count


@twin_of(lock_with_reason)
def lock_with_reason_orm(balance_ids: list[int], reason: str) -> int:
    return Balance.objects.filter(id__in=balance_ids, locked=False).update(locked=True, lock_reason=reason)


# A refund balance's column -> SQL over the refunded payment row `p`, or the name of a parameter.
_REFUND_BALANCE_COLUMNS = {
    "account_id": "p.account_id", "invoice_id": "NULL", "type": "type", "amount": "-p.amount", "currency": "p.currency",
    "date": "date", "transaction_number": "charge", "provider_setting_id": "setting", "locked": "TRUE",
    "lock_reason": "reason", "split_from_id": "NULL", "refunds_balance_id": "p.id", "stripe_refund_id": "refund",
    "is_overrefund": "FALSE", "status": "status", "note": "''", "created_at": "now", "dispute_id": "''",
    "adjusts_balance_id": "NULL",
}


def insert_refund_balances(payment_ids: list[int], *, date, charge_id: str, setting_id: int, refund_id: str, now) -> list[int]:
    """One INSERT ... SELECT: a locked refund balance mirroring each payment balance (SPEC §8 rules 2, 4, 5).
    Returns the new ids."""
    if not payment_ids:
        return []
    values = {"type": BalanceType.REFUND, "date": date, "charge": charge_id, "setting": setting_id, "reason": LockReason.REFUND,
              "refund": refund_id, "status": BalanceStatus.CONFIRMED, "now": now}
    names = [field.column for field in _insert_fields(Balance)]
    missing = set(names) - set(_REFUND_BALANCE_COLUMNS)
    if missing:  # a new column must be decided here, not silently defaulted
        raise RuntimeError(f"insert_refund_balances does not know the Balance columns {sorted(missing)}")
    selected, params = [], []
    for name in names:
        expression = _REFUND_BALANCE_COLUMNS[name]
        if expression in values:
            selected.append("%s")
            params.append(values[expression])
        else:
            selected.append(expression)
    head = (f"INSERT INTO {_table(Balance)} ({', '.join(_quote(name) for name in names)}) "  # noqa: S608 - model names
            f"SELECT {', '.join(selected)} FROM {_table(Balance)} p WHERE ")
    ids = []
    with connection.cursor() as cursor:
        for condition, batch in id_batches(payment_ids):
            cursor.execute(head + f"p.id {condition} ORDER BY p.id RETURNING id", [*params, *batch])
            ids.extend(row[0] for row in cursor.fetchall())
    return sorted(ids)


@twin_of(insert_refund_balances)
def insert_refund_balances_orm(payment_ids: list[int], *, date, charge_id: str, setting_id: int, refund_id: str, now) -> list[int]:
    refunds = [Balance(account_id=payment.account_id, invoice=None, type=BalanceType.REFUND, amount=-payment.amount,
                       currency=payment.currency, date=date, transaction_number=charge_id, provider_setting_id=setting_id,
                       locked=True, lock_reason=LockReason.REFUND, refunds_balance_id=payment.pk, stripe_refund_id=refund_id,
                       is_overrefund=False, status=BalanceStatus.CONFIRMED)
               for payment in Balance.objects.filter(id__in=payment_ids).order_by("id")]
    created = Balance.objects.bulk_create(refunds)
    Balance.objects.filter(id__in=[balance.pk for balance in created]).update(created_at=now)
    return sorted(balance.pk for balance in created)


@cache
def _failed_charge_sql(vendor: str) -> str:
    balance, invoice = _table(Balance), _table(Invoice)
    doomed = (f"SELECT id, invoice_id FROM {balance} WHERE type = '{BalanceType.PAYMENT}' AND provider_setting_id = %s "  # noqa: S608
              "AND transaction_number = %s AND NOT locked")
    return (f"SELECT {columns(Invoice)} FROM {invoice} WHERE id IN (SELECT invoice_id FROM ({doomed}) c) ORDER BY id FOR UPDATE; "  # noqa: S608
            f"{doomed} ORDER BY id FOR UPDATE")


def lock_unlocked_payments_of_charge(*, setting_id: int, charge_id: str) -> tuple[list[Invoice], list[tuple[int, int | None]]]:
    """The invoices of a charge's unlocked payment balances, then those balances as (id, invoice id), row-locked in
    that order (invoices before balances), in one round trip on PostgreSQL: the second statement starts after the
    invoice locks are granted and so sees every balance committed before. Inside a transaction."""
    params = [setting_id, charge_id]
    if connection.vendor != "postgresql":
        return lock_unlocked_payments_of_charge_orm(setting_id=setting_id, charge_id=charge_id)
    with connection.cursor() as cursor:  # client-side binding: two statements in one query
        cursor.execute(_failed_charge_sql(connection.vendor), params + params)
        invoices = [from_row(Invoice, row) for row in cursor.fetchall()]
        cursor.nextset()
        balances = [(pk, invoice_id) for pk, invoice_id in cursor.fetchall()]
    return invoices, balances


@twin_of(lock_unlocked_payments_of_charge)
def lock_unlocked_payments_of_charge_orm(*, setting_id: int, charge_id: str) -> tuple[list[Invoice], list[tuple[int, int | None]]]:
    candidates = Balance.objects.filter(type=BalanceType.PAYMENT, provider_setting_id=setting_id, transaction_number=charge_id,
                                        locked=False)
    invoices = list(Invoice.objects.select_for_update().filter(id__in=candidates.exclude(invoice=None).values("invoice_id"))
                    .order_by("id"))
    return invoices, list(candidates.select_for_update().order_by("id").values_list("id", "invoice_id"))


def delete_balances(balance_ids: list[int], *, then_sum_invoices: list[int] = ()) -> dict[int, Decimal]:
    """Delete balances, detaching what points at them first: rows of other models whose foreign key says SET_NULL
    forget them, and remaining rows split from them lose the link; then the open amounts of `then_sum_invoices` as
    they are without them. One round trip on PostgreSQL (several statements of one query). A PROTECTed reference that
    must not go (a refund balance of a payment) still makes the commit fail on the database's foreign key, as the ORM
    collector's ProtectedError would."""
    if connection.vendor != "postgresql":
        return delete_balances_orm(balance_ids, then_sum_invoices=then_sum_invoices)
    statements = [f"UPDATE {table} SET {column} = NULL WHERE {column} = ANY(%s)" for table, column in _detaching_references()]  # noqa: S608
    statements.append(f"DELETE FROM {_table(Balance)} WHERE id = ANY(%s)")  # noqa: S608 - model names
    params = [sorted(balance_ids)] * len(statements)
    if then_sum_invoices:
        statements.append(f"SELECT invoice_id, SUM(amount) FROM {_table(Balance)} WHERE invoice_id = ANY(%s) GROUP BY invoice_id")  # noqa: S608
        params.append(sorted(then_sum_invoices))
    with connection.cursor() as cursor:  # client-side binding: several statements in one query
        cursor.execute("; ".join(statements), params)
        if not then_sum_invoices:
            return {}
        while cursor.nextset():
            pass
        return {invoice_id: converted(Balance, "amount", total) for invoice_id, total in cursor.fetchall()}


@cache
def _detaching_references() -> list[tuple[str, str]]:
    """(table, column) of every foreign key to Balance that a deletion clears: SET_NULL ones, and split_from (the
    unrefunded part of a split keeps its money when the part it was split from goes)."""
    from django.db.models import SET_NULL

    references = [(_table(relation.related_model), _quote(relation.field.column)) for relation in Balance._meta.related_objects
                  if relation.on_delete is SET_NULL]
    return [(_table(Balance), _quote("split_from_id")), *references]


@twin_of(delete_balances)
def delete_balances_orm(balance_ids: list[int], *, then_sum_invoices: list[int] = ()) -> dict[int, Decimal]:
    Balance.objects.filter(split_from_id__in=balance_ids).update(split_from=None)
    Balance.objects.filter(id__in=balance_ids).delete()
    return {row["invoice_id"]: row["total"] for row in Balance.objects.filter(invoice_id__in=then_sum_invoices)
            .values("invoice_id").annotate(total=Sum("amount")).order_by()}


def void_open_money_entries(*, charge_id: str, reason: str, now) -> int:
    """Open entries holding a failed charge's money need no decision any more: the money never arrived."""
    with prepared_cursor() as cursor:
        cursor.execute(f"UPDATE {_table(PaymentEntry)} SET status = %s, resolved_at = %s, last_error = %s "  # noqa: S608
                       "WHERE transaction_number = %s AND stripe_refund_id IS NULL AND parent_id IS NULL AND amount < 0 "
                       "AND status = %s",
                       [PaymentEntryStatus.RESOLVED, now, reason, charge_id, PaymentEntryStatus.OPEN])
        return cursor.rowcount


@twin_of(void_open_money_entries)
def void_open_money_entries_orm(*, charge_id: str, reason: str, now) -> int:
    return PaymentEntry.objects.filter(transaction_number=charge_id, stripe_refund_id__isnull=True, parent__isnull=True,
                                       amount__lt=0, status=PaymentEntryStatus.OPEN).update(
        status=PaymentEntryStatus.RESOLVED, resolved_at=now, last_error=reason)


# --- Session settings -------------------------------------------------------------------------------


@contextmanager
def asynchronous_commits():
    """Commits inside the block do not wait for PostgreSQL's WAL flush (synchronous_commit = off for this session,
    reset afterwards). Only outside a transaction; a no-op on other databases. Why that is safe for event
    processing: webhooks.processing.replayable_commits."""
    from django.db import DatabaseError

    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        except DatabaseError:  # a broken connection: drop it, so no later work inherits the setting
            connection.close()


def commit_this_transaction_asynchronously() -> None:
    """Inside a transaction: its commit does not wait for the WAL flush (SET LOCAL synchronous_commit = off; it ends with
    the transaction). For webhook batches (webhooks.services.process_together says why that is safe)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO off")


def advisory_transaction_lock(key: str) -> None:
    """A PostgreSQL advisory lock held until the transaction ends (for serialising writes that have no row to lock
    yet); SQLite serialises writers anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])


def durable_atomic():
    """A transaction whose commit waits for the disk flush even where the session turned that off (webhook processing
    commits asynchronously, webhooks.services.replayable_commits). For writes that something outside the database
    relies on at once, e.g. a receipt number that is emailed right after the commit: a crash must not lose the row and
    hand the number out again."""
    from django.db import transaction

    @contextmanager
    def block():
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO on")
            yield

    return block()
