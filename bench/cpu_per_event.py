"""CPU per webhook event, in-process: what one worker process and its PostgreSQL backend spend per event of the
processing benchmark's mix (card, SEPA ok, SEPA failed, refund), with no broker and no Celery.

Far steadier than throughput on a shared machine (another session's load slows the wall clock, not the CPU seconds a
statement costs), so two versions of the hot path compare by running this on each:

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/billing_cpu python -m bench.cpu_per_event [payments] [rounds]

Prints per round: wall ms/event, worker CPU ms/event, PostgreSQL backend CPU ms/event, statements/event.
"""

from __future__ import annotations

import os
import sys
import time

from bench.common import bench_env, mix_events, prepare_database


def backend_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def events_of_the_mix(payments: int) -> list[dict]:
    from decimal import Decimal

    from tests.factories import InvoiceFactory

    return mix_events([InvoiceFactory(amount=Decimal("100.00")).pk for _ in range(payments)])


def one_round(payments: int) -> dict:
    from django.db import connection

    from tests.factories import ProviderSettingFactory
    from webhooks import services

    setting = ProviderSettingFactory(name=f"cpu-{time.time_ns()}")
    events = events_of_the_mix(payments)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    stored_db = backend_cpu_seconds(backend)  # the webhook view's insert, for the database's ceiling (README, Scaling)
    ids = [services.store_event(setting, event)[0] for event in events]
    ingest_db_cpu_ms = (backend_cpu_seconds(backend) - stored_db) * 1000 / len(ids)
    statements = [0]

    def count(execute, sql, params, many, context):
        statements[0] += 1
        return execute(sql, params, many, context)

    try:  # the batch task's receipts, published once per batch (absent in older versions)
        from receipts.tasks import in_one_task
    except ImportError:
        from contextlib import nullcontext as in_one_task
    wall, cpu, db = time.perf_counter(), time.process_time(), backend_cpu_seconds(backend)
    with connection.execute_wrapper(count), services.replayable_commits():
        for start in range(0, len(ids), 20):  # the batch task's shape: claim 20, process each, record outcomes
            with in_one_task():
                events = services.claim_events(ids[start:start + 20])
                # The batch in one transaction, as the task does (absent in older versions: event by event).
                outcomes = getattr(services, "process_together", lambda _: None)(events)
                if outcomes is None:
                    outcomes = {}
                    for event in events:
                        outcome = services.process_claimed_event(event)
                        outcomes[event.pk] = outcome if isinstance(outcome, tuple) else (outcome, "")
                services.finish_events(outcomes)
    n = len(ids)
    return {"events": n, "wall_ms": (time.perf_counter() - wall) * 1000 / n, "worker_cpu_ms": (time.process_time() - cpu) * 1000 / n,
            "db_cpu_ms": (backend_cpu_seconds(backend) - db) * 1000 / n, "statements": statements[0] / n,
            "ingest_db_cpu_ms": ingest_db_cpu_ms}


def main(argv: list[str]) -> int:
    payments = int(argv[0]) if argv else 200
    rounds = int(argv[1]) if len(argv) > 1 else 3
    env = bench_env()
    # Stored events are published to an in-memory broker nobody consumes: this process handles them itself.
    env.update({"CELERY_BROKER_URL": "memory://", "CELERY_TASK_ALWAYS_EAGER": "false", "WEBHOOK_PUBLISH_IN_BACKGROUND": "false"})
    os.environ.update(env)
    prepare_database(env)
    import django

    django.setup()
    for _ in range(rounds):
        row = one_round(payments)
        print(f"{row['events']} events: wall {row['wall_ms']:.2f} ms, worker CPU {row['worker_cpu_ms']:.2f} ms, "
              f"PostgreSQL CPU {row['db_cpu_ms']:.2f} ms, {row['statements']:.1f} statements per event; storing it: "
              f"PostgreSQL CPU {row['ingest_db_cpu_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
