"""Webhook ingest benchmark: the real endpoint against a one-INSERT baseline, in the same server and run.

The service runs under gunicorn (2 sync workers) on 127.0.0.1 with PostgreSQL and Redis; a separate
load process posts correctly signed events (a realistic mix with 10% duplicates) at fixed
concurrency levels. Runs are interleaved in pairs of alternating order (baseline-service, service-baseline, ...) and the
medians and paired ratios are reported, because absolute figures drift on shared machines.
"""

from __future__ import annotations

import copy
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from bench.common import ROOT, flush_broker, percentile, start_gunicorn, stop_process, wait_http
from tests.stripe_fake.signing import sign_payload

EVENT_MIX = [
    ("payment_intent.succeeded", 0.25),
    ("charge.succeeded", 0.25),
    ("charge.pending", 0.15),
    ("payment_intent.processing", 0.10),
    ("charge.refunded", 0.05),
    ("customer.created", 0.10),  # not handled: stored as ignored
    ("charge.failed", 0.10),
]


def _templates() -> dict:
    with open(ROOT / "tests" / "fixtures" / "stripe" / "objects.json") as handle:
        resources = json.load(handle)["resources"]
    return {"charge": resources["charge"], "payment_intent": resources["payment_intent"], "customer": resources["customer"]}


def build_events(count: int, *, duplicate_share: float = 0.10, seed: int = 7) -> list[dict]:
    """`count` events of EVENT_MIX, of which `duplicate_share` are re-deliveries of earlier ones."""
    rng = random.Random(seed)
    templates = _templates()
    types, weights = zip(*EVENT_MIX, strict=True)
    events: list[dict] = []
    now = int(time.time())
    for index in range(count):
        if events and rng.random() < duplicate_share:
            events.append(rng.choice(events))
            continue
        event_type = rng.choices(types, weights)[0]
        kind = event_type.split(".")[0]
        obj = copy.deepcopy(templates.get(kind, templates["customer"]))
        suffix = uuid.uuid4().hex[:16]
        if kind == "charge":
            obj.update(id=f"ch_bench{suffix}", amount=1000 + index, currency="eur", livemode=False, metadata={},
                       status={"charge.failed": "failed", "charge.pending": "pending"}.get(event_type, "succeeded"),
                       payment_intent=None, created=now)
        elif kind == "payment_intent":
            obj.update(id=f"pi_bench{suffix}", amount=1000 + index, currency="eur", livemode=False, metadata={},
                       latest_charge=None, status="succeeded" if event_type.endswith("succeeded") else "processing")
        else:
            obj.update(id=f"cus_bench{suffix}", livemode=False)
        events.append({"id": f"evt_bench{suffix}", "object": "event", "type": event_type, "api_version": "2026-10-28.endive",
                       "created": now, "livemode": False, "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
                       "data": {"object": obj}})
    return events


def _requests_file(url: str, events: list[dict], secret: str | None) -> str:
    items = []
    timestamp = int(time.time())
    for event in events:
        body = json.dumps(event)
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["Stripe-Signature"] = sign_payload(body.encode(), secret, timestamp=timestamp)
        items.append({"url": url, "body": body, "headers": headers})
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(items, handle)
    handle.close()
    return handle.name


def _load(requests_path: str, concurrency: int, seconds: float) -> dict:
    output = subprocess.run([sys.executable, "-m", "bench.load", requests_path, str(concurrency), str(seconds)],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(output.stdout.strip().splitlines()[-1])
    latencies = sorted(result.pop("latencies_ms"))
    result["latencies_ms"] = latencies  # pooled per level by summarize(), then dropped
    result["rps"] = result["count"] / result["elapsed"] if result["elapsed"] else 0.0
    result["p50_ms"] = percentile(latencies, 50)
    result["p95_ms"] = percentile(latencies, 95)
    result["p99_ms"] = percentile(latencies, 99)
    return result


def run(env: dict, *, quick: bool = False) -> dict:
    """Returns {"levels": {c: {...}}, "stored_exactly_once": bool, ...}."""
    import django

    # Many short rounds, each a baseline/service pair in alternating order (ABBA), so that the machine's drift
    # (its speed changes within minutes here) cancels out of the median of the paired ratios.
    levels, seconds, rounds, events_per_run = ((1, 16), 1.0, 1, 400) if quick else ((1, 16, 64), 2.5, 9, 4000)
    if os.environ.get("BENCH_INGEST_LEVELS"):  # for focused experiments, e.g. "16"
        levels = tuple(int(level) for level in os.environ["BENCH_INGEST_LEVELS"].split(","))
    os.environ.update(env)
    django.setup()
    from django.db import connection

    from bench.baseline import TABLE_SQL
    from tests.factories import TEST_WEBHOOK_SECRET, ProviderSettingFactory
    from webhooks.models import WebhookEvent

    with connection.cursor() as cursor:
        cursor.execute(TABLE_SQL)
        cursor.execute("TRUNCATE bench_baseline_event")
    WebhookEvent.objects.all().delete()
    setting = ProviderSettingFactory(name=f"bench-{uuid.uuid4().hex[:8]}")
    connection.close()

    port = 18000 + os.getpid() % 1000
    server = start_gunicorn(port, {**env, "BENCH_BASELINE": "1"})
    results: dict = {"levels": {}}
    sent_event_ids: set[str] = set()
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        for concurrency in levels:
            level = {"baseline": [], "service": []}
            for round_index in range(rounds):
                for target in ("baseline", "service") if round_index % 2 == 0 else ("service", "baseline"):
                    events = build_events(events_per_run)
                    if target == "service":
                        sent_event_ids.update(event["id"] for event in events)
                        url = f"http://127.0.0.1:{port}/webhooks/stripe/{setting.webhook_id}/"
                        path = _requests_file(url, events, TEST_WEBHOOK_SECRET)
                    else:
                        path = _requests_file(f"http://127.0.0.1:{port}/bench/baseline/", events, None)
                    try:
                        level[target].append(_load(path, concurrency, seconds))
                    finally:
                        os.unlink(path)
            results["levels"][concurrency] = summarize(level)
    finally:
        stop_process(server)
        flush_broker(env)  # nothing processes these here; the processing benchmark brings its own

    # Only events actually sent count; the load loop stops at a deadline, so compare with what was stored.
    stored = list(WebhookEvent.objects.filter(provider_setting=setting).values_list("stripe_event_id", flat=True))
    results["events_stored"] = len(stored)
    results["stored_exactly_once"] = len(stored) == len(set(stored)) and set(stored) <= sent_event_ids
    return results


def summarize(level: dict) -> dict:
    def median(target: str, key: str) -> float:
        return statistics.median(run[key] for run in level[target])

    ratios = [service["rps"] / baseline["rps"] for baseline, service in zip(level["baseline"], level["service"], strict=True)
              if baseline["rps"]]
    p99_ratios = [service["p99_ms"] / baseline["p99_ms"] for baseline, service in zip(level["baseline"], level["service"], strict=True)
                  if baseline["p99_ms"]]
    non_2xx = sum(count for run in level["service"] for status, count in run["statuses"].items() if not status.startswith("2"))
    # The p99 of every request of all rounds: a single stall of the machine (hundreds of ms, in either target's
    # rounds: see rounds_p99_ms) decides a 2.5-s round's own p99, but is one of many stalls in the pooled tail.
    pooled = {target: sorted(latency for run in level[target] for latency in run.pop("latencies_ms")) for target in ("baseline", "service")}
    pooled_p99 = {target: percentile(values, 99) for target, values in pooled.items()}
    return {
        "baseline_rps": median("baseline", "rps"),
        "service_rps": median("service", "rps"),
        "throughput_ratio": statistics.median(ratios) if ratios else 0.0,
        "baseline_p50_ms": median("baseline", "p50_ms"), "service_p50_ms": median("service", "p50_ms"),
        "baseline_p95_ms": median("baseline", "p95_ms"), "service_p95_ms": median("service", "p95_ms"),
        "baseline_p99_ms": median("baseline", "p99_ms"), "service_p99_ms": median("service", "p99_ms"),
        "p99_ratio_of_rounds": statistics.median(p99_ratios) if p99_ratios else 0.0,
        "baseline_pooled_p99_ms": pooled_p99["baseline"], "service_pooled_p99_ms": pooled_p99["service"],
        "p99_ratio": pooled_p99["service"] / pooled_p99["baseline"] if pooled_p99["baseline"] else 0.0,
        "rounds_rps": [[round(baseline["rps"]), round(service["rps"])] for baseline, service in zip(level["baseline"], level["service"], strict=True)],
        "rounds_p99_ms": [[round(baseline["p99_ms"], 1), round(service["p99_ms"], 1)]
                          for baseline, service in zip(level["baseline"], level["service"], strict=True)],
        "service_non_2xx": non_2xx,
        "service_errors": sum(run["errors"] for run in level["service"]),
    }


def check(result: dict) -> list[str]:
    """Correctness (never a matter of speed): every distinct event stored once, no error answers."""
    problems = []
    if not result["stored_exactly_once"]:
        problems.append("ingest: some event was stored twice or an unknown event was stored")
    for concurrency, level in result["levels"].items():
        if level["service_non_2xx"] or level["service_errors"]:
            problems.append(f"ingest: {level['service_non_2xx']} non-2xx answers and {level['service_errors']} errors at concurrency {concurrency}")
    return problems


def table(result: dict) -> str:
    lines = ["Webhook ingest (gunicorn, 2 sync workers; medians of interleaved runs; ratio = service / baseline)",
             "(p99 = over all requests of all rounds; 'rounds' = median of the rounds' own p99 ratios, swayed by single stalls)",
             f"{'conc':>4} {'base rps':>9} {'svc rps':>9} {'ratio':>6} {'base p50':>9} {'svc p50':>8} {'base p99':>9} {'svc p99':>8} {'p99 ratio':>9}"
             f" {'rounds':>6}  target"]
    for concurrency, level in result["levels"].items():
        ok = level["throughput_ratio"] >= 0.8 and level["p99_ratio"] <= 1.5
        lines.append(
            f"{concurrency:>4} {level['baseline_rps']:>9.0f} {level['service_rps']:>9.0f} {level['throughput_ratio']:>6.2f} "
            f"{level['baseline_p50_ms']:>8.1f}ms {level['service_p50_ms']:>6.1f}ms {level['baseline_pooled_p99_ms']:>8.1f}ms "
            f"{level['service_pooled_p99_ms']:>6.1f}ms {level['p99_ratio']:>9.2f} {level['p99_ratio_of_rounds']:>6.2f}  "
            f"{'met' if ok else 'MISSED'} (>=0.8x, p99<=1.5x)"
        )
    lines.append(f"events stored: {result['events_stored']}, each distinct event exactly once: {result['stored_exactly_once']}")
    return "\n".join(lines)
