"""billing.sql.id_batches: one array parameter on PostgreSQL, IN-list chunks under SQLite's parameter limit."""

from unittest import mock

from django.db import connection

from billing.sql import SQLITE_CHUNK, id_batches


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
