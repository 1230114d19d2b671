"""Payout reconciliation at scale: a payout of 10,000 balance transactions against one of 100.

Each round books N charges (the way the webhook path leaves them), has the fake Stripe (127.0.0.1, an HTTP round
trip per page like the real thing) pay them out, then reconciles: the payout and its lines are fetched page by page,
stored, matched to the books and given a status. Reported per size: the whole reconciliation's time, its database
part (storing and matching, Stripe's answers already in hand), SQL queries and Stripe calls; then the ratio of the
largest size to the smallest, median of paired rounds (sizes interleave, the machine's speed drifts).
"""

from __future__ import annotations

import os
import statistics
import time

from bench.common import QueryCounter


def run(env: dict, *, quick: bool = False) -> dict:
    import django

    os.environ.update(env)
    django.setup()
    from django.conf import settings
    from django.db import connection

    from payments.constants import PayoutStatus
    from payments.models import PayoutLine
    from payments.services import payouts
    from providers.stripe import gateway
    from tests.factories import ProviderSettingFactory
    from tests.helpers import booked_charges
    from tests.stripe_fake import FakeStripeServer

    server = FakeStripeServer().start()
    settings.STRIPE_API_BASE = server.url
    sizes = (10, 100) if quick else (100, 10_000)
    rounds = 1 if quick else int(os.environ.get("BENCH_PAYOUT_ROUNDS", "3"))
    samples: dict[int, list[dict]] = {n: [] for n in sizes}

    def reconcile_once(n: int) -> dict:
        setting = ProviderSettingFactory(name=f"bench-payouts-{n}-{time.time_ns()}")
        booked_charges(server, setting, n)
        stripe_payout = server.run_payout()
        calls_before = len(server.requests)
        queries = QueryCounter()
        with connection.execute_wrapper(queries):
            began = time.perf_counter()
            payout = payouts.fetch_and_reconcile(setting, stripe_payout["id"])
            total = time.perf_counter() - began
        stripe_calls = len(server.requests) - calls_before
        # The database part alone: the same balance transactions again, already fetched.
        lines = gateway.list_payout_balance_transactions(setting, payout_id=stripe_payout["id"])
        stored = QueryCounter()
        with connection.execute_wrapper(stored):
            began = time.perf_counter()
            again = payouts.reconcile_payout(payout, balance_transactions=lines)
            database = time.perf_counter() - began
        return {"seconds": total, "database_seconds": database, "queries": len(queries), "database_queries": len(stored),
                "stripe_calls": stripe_calls, "status": again.status, "lines": PayoutLine.objects.filter(payout=payout).count()}

    try:
        reconcile_once(sizes[0])  # warm-up: connections, compiled queries, the Stripe client
        for _ in range(rounds):
            for n in sizes:
                samples[n].append(reconcile_once(n))
    finally:
        server.stop()

    rows = {}
    for n, runs in samples.items():
        rows[n] = {key: round(statistics.median(run[key] for run in runs), 4) for key in ("seconds", "database_seconds")}
        for key in ("queries", "database_queries", "stripe_calls", "lines"):
            values = sorted({run[key] for run in runs})
            rows[n][key] = values[0] if len(values) == 1 else values
        rows[n]["statuses"] = sorted({run["status"] for run in runs})
        rows[n]["reconciled"] = rows[n]["statuses"] == [PayoutStatus.RECONCILED]
    small, large = sizes
    paired = [big["seconds"] / little["seconds"] for big, little in zip(samples[large], samples[small], strict=True)]
    paired_db = [big["database_seconds"] / little["database_seconds"] for big, little in zip(samples[large], samples[small], strict=True)]
    query_ratio = max(run["queries"] for run in samples[large]) / min(run["queries"] for run in samples[small])
    return {"rows": rows, "sizes": sizes, "rounds": rounds, "time_ratio": round(statistics.median(paired), 1),
            "database_time_ratio": round(statistics.median(paired_db), 1), "query_ratio": round(query_ratio, 2)}


def check(result: dict) -> list[str]:
    problems = []
    for n, row in result["rows"].items():
        if not row["reconciled"] or row["lines"] != int(n) + 1:
            problems.append(f"payouts: N={n} ended {row['statuses']} with {row['lines']} lines (expected reconciled, {int(n) + 1})")
        pages = -(-(int(n) + 1) // 100)
        if row["stripe_calls"] != 1 + pages:
            problems.append(f"payouts: N={n} made {row['stripe_calls']} Stripe calls (expected 1 + {pages} pages)")
    if result["query_ratio"] != 1:
        problems.append(f"payouts: the query count grows with the lines (x{result['query_ratio']})")
    return problems


def table(result: dict) -> str:
    small, large = result["sizes"]
    lines = ["Payout reconciliation (fetch page by page, store, match to the books)",
             f"{'lines':>7} {'seconds':>9} {'db secs':>9} {'queries':>8} {'db qs':>6} {'Stripe calls':>13}"]
    for n, row in result["rows"].items():
        lines.append(f"{n:>7} {row['seconds']:>9.3f} {row['database_seconds']:>9.3f} {row['queries']!s:>8} "
                     f"{row['database_queries']!s:>6} {row['stripe_calls']!s:>13}")
    lines.append(f"{large} vs {small} lines: time x{result['time_ratio']} (database part x{result['database_time_ratio']}; "
                 f"{large // small} times the lines), queries x{result['query_ratio']} (target 1), median of {result['rounds']} "
                 "paired rounds")
    return "\n".join(lines)
