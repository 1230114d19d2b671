"""Plain-SQL helpers for the hot paths: bulk statements (refunds of thousands of balances, failed charges) and
the few statements every webhook event runs, where compiling an ORM query costs more than the round trip.

Table and column names always come from the models and every value is a parameter.
"""

from __future__ import annotations

from functools import cache

from django.db import connection
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

SQLITE_CHUNK = 500  # below SQLite's limit on parameters per statement


class _PreparedExecute:
    def _execute(self, sql, params, *ignored_wrapper_args):
        self.db.validate_no_broken_transaction()
        with self.db.wrap_database_errors:
            return self.cursor.execute(sql, params, prepare=True)


class _PreparedCursor(_PreparedExecute, CursorWrapper):
    pass


class _PreparedDebugCursor(_PreparedExecute, CursorDebugWrapper):
    pass


def prepared_cursor():
    """A Django cursor (error translation, execute wrappers, query logging) whose statements PostgreSQL binds and
    keeps prepared on the connection: a webhook's 4 KB payload is not quoted into the SQL text in Python, and the
    server does not parse and plan the same statement for every webhook. For the few statements every webhook
    runs. Django's own cursor elsewhere: other databases, or DB_PREPARED_STATEMENTS=false (a pooler in transaction
    mode without prepared-statement support).

    Without Django's per-request health check (a `SELECT 1` round trip, as long as the insert it protects):
    a connection that died fails the statement instead, and the callers recover — the webhook view retries
    its idempotent insert once on a new connection, and tasks are retried."""
    from django.conf import settings

    if connection.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS:
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        raw = ServerBindingCursor(connection.connection)
    return (_PreparedDebugCursor if connection.queries_logged else _PreparedCursor)(raw, connection)


def id_batches(ids: list[int]) -> list[tuple[str, list]]:
    """`id` conditions with their parameters, e.g. `("= ANY(%s)", [[1, 2, 3]])`: one array on PostgreSQL whatever
    the count (one statement, one parameter), chunks of an IN list on the demo's SQLite (no arrays)."""
    ids = list(ids)
    if not ids:
        return []
    if connection.vendor == "postgresql":
        return [("= ANY(%s)", [ids])]
    chunks = (ids[start:start + SQLITE_CHUNK] for start in range(0, len(ids), SQLITE_CHUNK))
    return [(f"IN ({', '.join(['%s'] * len(chunk))})", chunk) for chunk in chunks]


def update_fields(instance, names) -> None:
    """Write the named fields of one row with a plain UPDATE (auto_now fields named here get the time).

    What Model.save(update_fields=...) writes, without compiling a query per call: on the webhook hot path
    the ORM's compile and checks cost more than the round trip. No signals are sent (none are used here).
    """
    meta = type(instance)._meta
    fields = [meta.get_field(name) for name in names]
    if not fields:
        return
    values = [field.get_db_prep_save(field.pre_save(instance, add=False), connection) for field in fields]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    with prepared_cursor() as cursor:  # names from the model, values are parameters
        cursor.execute(f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s",  # noqa: S608
                       [*values, meta.pk.get_db_prep_value(instance.pk, connection)])


def insert(instance, *, unless_conflict: bool = False):
    """INSERT one new instance (what Model.save() does for a new row, without compiling a query); sets its pk.

    With unless_conflict, a row that would break a unique constraint is not written and None is returned
    (ON CONFLICT DO NOTHING: no error, so the caller's transaction goes on).
    """
    meta = type(instance)._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields]
    quote = connection.ops.quote_name
    conflict = " ON CONFLICT DO NOTHING" if unless_conflict else ""
    with prepared_cursor() as cursor:  # names from the model, values are parameters
        cursor.execute(f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "  # noqa: S608
                       f"VALUES ({', '.join(['%s'] * len(values))}){conflict} RETURNING {quote(meta.pk.column)}", values)
        row = cursor.fetchone()
    if row is None:
        return None
    instance.pk = row[0]
    instance._state.adding, instance._state.db = False, connection.alias
    return instance


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


def changed_fields(instance, snapshot: dict) -> list[str]:
    """Names of the concrete fields whose value differs from `snapshot` (see field_values)."""
    return [name for name, value in field_values(instance).items() if snapshot[name] != value]


def field_values(instance) -> dict:
    """The instance's concrete field values by field name (foreign keys by their id)."""
    return {field.name: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields if not field.primary_key}


def columns(model, alias: str = "", names: tuple[str, ...] | None = None) -> str:
    """The model's concrete columns (or the named fields'), in the model's field order, for a SELECT or RETURNING
    whose rows go to from_row() with the same names."""
    return _columns(model, alias, names, connection.vendor)


@cache
def _columns(model, alias: str, names: tuple[str, ...] | None, vendor: str) -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + connection.ops.quote_name(field.column) for field in _fields(model, names))


def from_row(model, values, names: tuple[str, ...] | None = None):
    """A model instance from a row of columns(model, names=names), with the converters the ORM would apply
    (datetimes and decimals on the demo's SQLite; nearly none on PostgreSQL). Fields not named are deferred."""
    values = list(values)
    fields = _fields(model, names)
    for index, converters in _converters(model, names, connection.vendor):
        for converter in converters:
            values[index] = converter(values[index], fields[index].cached_col, connection)
    return model.from_db(connection.alias, None if names is None else [field.attname for field in fields], values)


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


def durable_atomic():
    """A transaction whose commit waits for the disk flush even where the session turned that off (webhook
    processing commits asynchronously, webhooks.services.replayable_commits). For writes that something outside
    the database relies on at once, e.g. a receipt number that is emailed right after the commit: a crash must
    not lose the row and hand the number out again."""
    from contextlib import contextmanager

    from django.db import transaction

    @contextmanager
    def block():
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO on")
            yield

    return block()
