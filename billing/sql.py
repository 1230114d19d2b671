"""Plain-SQL helpers for the bulk statements of the hot paths (refunds of thousands of balances, failed charges)."""

from __future__ import annotations

from django.db import connection

SQLITE_CHUNK = 500  # below SQLite's limit on parameters per statement


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
