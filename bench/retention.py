"""An inbox that stays small: do months of old processed events slow ingest or processing, and how fast does retention
delete them?

A-B-A in one run: (A) ingest and processing with no old events; (B) the same after filling the inbox with N processed
events 60-120 days old (full: 5,000,000, one INSERT ... SELECT generate_series, then VACUUM ANALYZE as autovacuum would);
then retention (webhooks.services.purge_old_events, batches of 1,000) deletes them all, timed, and VACUUM; (A) again.
Reports B against the mean of the two A measurements (target: within 10 %): indexes suffice, or the table would need
partitioning by month. Ingest: the real endpoint under gunicorn (2 sync workers, concurrency 16; per web process);
processing: one worker process draining the bench's matched mix (bench.processing.drain_once).
"""

from __future__ import annotations

import os
import statistics
import time

FULL_ROWS = 5_000_000
QUICK_ROWS = 20_000


def run(env: dict, *, quick: bool = False) -> dict:
    import django

    os.environ.update(env)
    django.setup()

    rows = QUICK_ROWS if quick else int(os.environ.get("BENCH_RETENTION_ROWS", FULL_ROWS))
    payments = 20 if quick else int(os.environ.get("BENCH_PAYMENTS", "300"))
    probes = 1 if quick else 5
    seconds = 1.0 if quick else 3.0
    result: dict = {"old_events": rows}
    result["empty_before"] = measure(env, payments, probes, seconds)
    result["fill_seconds"] = fill(rows)
    result["table_mb_full"] = table_mb()
    result["full"] = measure(env, payments, probes, seconds)
    result["purge"] = purge()
    result["empty_after"] = measure(env, payments, probes, seconds)
    for key in ("ingest_per_web_process", "processing_events_per_second"):
        empty = statistics.mean([result["empty_before"][key], result["empty_after"][key]])
        result[f"{key}_ratio"] = round(result["full"][key] / empty, 3) if empty else 0.0
    result["within_10_percent"] = all(result[f"{key}_ratio"] >= 0.9 for key in ("ingest_per_web_process", "processing_events_per_second"))
    return result


def measure(env: dict, payments: int, probes: int, seconds: float) -> dict:
    from bench.processing import IngestProbe, drain_once

    with IngestProbe(env) as probe:
        ingest = [probe.per_web_process(seconds=seconds) for _ in range(probes)]
    # A drain lasts about a second and single drains of the same code differ by 20 % on this machine (bench/processing.py
    # rounds): the median of several, like ingest's probes.
    drains = [drain_once(env, payments) for _ in range(max(1, probes - 2))]
    rates = [drained["events_per_second_per_worker"] for drained in drains]
    return {"ingest_per_web_process": round(statistics.median(ingest), 1), "ingest_rounds": [round(rate, 1) for rate in ingest],
            "processing_events_per_second": statistics.median(rates), "processing_rounds": rates,
            "processed": sum(drained["processed"] for drained in drains), "events": sum(drained["events"] for drained in drains),
            "inbox_rows": inbox_rows()}


def fill(rows: int) -> float:
    """N processed events of a realistic size (the fixture's charge as payload), 60-120 days old, in one statement."""
    import json

    from django.db import connection

    from bench.common import ROOT
    from tests.factories import ProviderSettingFactory
    from webhooks.models import WebhookEvent

    with open(ROOT / "tests" / "fixtures" / "stripe" / "objects.json") as handle:
        charge = json.load(handle)["resources"]["charge"]
    payload = json.dumps({"id": "evt_old", "object": "event", "type": "charge.succeeded", "api_version": "2026-10-28.endive",
                          "livemode": False, "data": {"object": charge}})
    setting = ProviderSettingFactory(name=f"bench-retention-{time.time_ns()}")
    table = WebhookEvent._meta.db_table
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout TO 0")  # one statement of minutes (the settings bound statements to 30 s)
        cursor.execute(
            f"INSERT INTO {table} (provider_setting_id, stripe_event_id, stripe_account_id, type, livemode, api_version, "  # noqa: S608
            "stripe_created, received_at, payload, status, attempts, last_error, processed_at) "
            "SELECT %s, 'evt_old' || g, %s, 'charge.succeeded', false, '2026-10-28.endive', "
            "now() - interval '120 days' + g * (interval '60 days' / %s), now() - interval '120 days' + g * (interval '60 days' / %s), "
            "replace(%s, 'evt_old', 'evt_old' || g), 'processed', 1, '', "
            "now() - interval '120 days' + g * (interval '60 days' / %s) + interval '50 milliseconds' "
            "FROM generate_series(1, %s) AS g",
            [setting.pk, setting.stripe_account_id, rows, rows, payload, rows, rows])
        cursor.execute(f"VACUUM ANALYZE {table}")
        # Gigabytes of dirty pages would otherwise be written back during the next measurement (checkpoints, the OS).
        cursor.execute("CHECKPOINT")
    return round(time.perf_counter() - started, 1)


def purge() -> dict:
    from webhooks.models import WebhookEvent
    from webhooks.services import purge_old_events, purgeable_events

    before = purgeable_events().count()
    started = time.perf_counter()
    deleted = purge_old_events(budget_seconds=3600)
    elapsed = time.perf_counter() - started
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout TO 0")
        cursor.execute(f"VACUUM ANALYZE {WebhookEvent._meta.db_table}")
        cursor.execute("CHECKPOINT")
    return {"purgeable": before, "deleted": deleted, "seconds": round(elapsed, 1),
            "events_per_second": round(deleted / elapsed) if elapsed else 0, "table_mb_after": table_mb()}


def inbox_rows() -> int:
    from webhooks.models import WebhookEvent

    return WebhookEvent.objects.count()


def table_mb() -> int:
    from django.db import connection

    from webhooks.models import WebhookEvent

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s)", [WebhookEvent._meta.db_table])
        return round(cursor.fetchone()[0] / 2**20)


def check(result: dict) -> list[str]:
    problems = []
    if result["purge"]["deleted"] != result["purge"]["purgeable"]:
        problems.append(f"retention: {result['purge']['purgeable'] - result['purge']['deleted']} old events not deleted")
    for phase in ("empty_before", "full", "empty_after"):
        if result[phase]["processed"] != result[phase]["events"]:
            problems.append(f"retention: {phase}: {result[phase]['events'] - result[phase]['processed']} events not processed")
    return problems


def table(result: dict) -> str:
    before, full, after, purged = result["empty_before"], result["full"], result["empty_after"], result["purge"]
    verdict = "met: indexes suffice, no partitioning" if result["within_10_percent"] else "MISSED"
    return "\n".join([
        f"Inbox retention ({result['old_events']:,} processed events 60-120 days old; ingest per web process at concurrency 16, "
        "processing by 1 worker process)",
        f"ingest events/s: empty {before['ingest_per_web_process']} / with old events {full['ingest_per_web_process']} / empty again "
        f"{after['ingest_per_web_process']}: ratio {result['ingest_per_web_process_ratio']}",
        f"processing events/s: empty {before['processing_events_per_second']} / with old events {full['processing_events_per_second']} / "
        f"empty again {after['processing_events_per_second']}: ratio {result['processing_events_per_second_ratio']}",
        f"within 10 % of the empty inbox (target): {verdict}",
        f"fill {result['fill_seconds']} s, inbox {result['table_mb_full']} MB; retention deleted {purged['deleted']:,} in {purged['seconds']} s "
        f"({purged['events_per_second']:,} events/s, batches of 1,000), inbox {purged['table_mb_after']} MB after VACUUM",
    ])
