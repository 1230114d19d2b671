"""Time to books near saturation: from an event's storage to its processing committed (its balance booked), p50 and p99,
under a paced (open-loop) load of the processing mix with matched invoices, two web processes and one worker process.

First the worker's drain capacity is measured (a burst faster than it can drain); then a sweep of paced loads (a share
of that capacity, a short run each) finds the load at which p99 first exceeds 100 ms; then the main run: 60 s at 90 %.
Target: p99 <= 50 ms at 90 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

from bench.common import ROOT, flush_broker, mix_events, percentile, start_celery_worker, start_gunicorn, stop_process, wait_http
from bench.cpu_shares import CpuShares

SWEEP = (0.5, 0.7, 0.9, 1.0, 1.1)


def _invoices(count: int) -> list[int]:
    """`count` open invoices of 100.00 EUR, created in bulk (a 60 s run needs thousands)."""
    from decimal import Decimal

    from billing.models import Account, BusinessEntity, Invoice

    entity = BusinessEntity.objects.create(name=f"ttb {uuid.uuid4().hex[:8]}", slug=f"ttb-{uuid.uuid4().hex[:12]}")
    accounts = Account.objects.bulk_create([Account(business_entity=entity, name=f"ttb {i}") for i in range(max(1, count // 100))])
    tag = uuid.uuid4().hex[:8]
    invoices = Invoice.objects.bulk_create([
        Invoice(number=f"TTB-{tag}-{i}", account=accounts[i % len(accounts)], business_entity=entity, amount=Decimal("100.00"),
                currency="EUR", payment_reference=f"Invoice TTB {i}", status="open") for i in range(count)])
    return [invoice.pk for invoice in invoices]


def _send(url: str, events: list[dict], rate: float, seconds: float) -> dict:
    from tests.factories import TEST_WEBHOOK_SECRET
    from tests.stripe_fake.signing import sign_payload

    items = []
    for event in events:
        body = json.dumps(event)
        items.append({"url": url, "body": body, "headers": {"Content-Type": "application/json",
                                                            "Stripe-Signature": sign_payload(body.encode(), TEST_WEBHOOK_SECRET)}})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(items, handle)
    try:
        output = subprocess.run([sys.executable, "-m", "bench.paced", handle.name, str(rate), str(seconds)], cwd=ROOT,
                                capture_output=True, text=True, check=True)
    finally:
        os.unlink(handle.name)
    return json.loads(output.stdout.strip().splitlines()[-1])


def _drained(event_ids: list[str], timeout: float = 300) -> list:
    """Waits until every stored event of the run is done; returns their (received_at, processed_at)."""
    from webhooks.models import EventStatus, WebhookEvent

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = WebhookEvent.objects.filter(stripe_event_id__in=event_ids)
        if not rows.filter(status=EventStatus.RECEIVED).exists():
            return list(rows.exclude(processed_at=None).values_list("received_at", "processed_at"))
        time.sleep(0.5)
    raise RuntimeError("the worker did not drain the run's events in time")


def _latencies_ms(rows) -> list[float]:
    return sorted((processed - received).total_seconds() * 1000 for received, processed in rows)


def _paced_run(url: str, rate: float, seconds: float, cpu_of: dict | None = None) -> dict:
    """With cpu_of (process sessions by group name), also where the CPU went while the load was sent."""
    count = int(rate * seconds) + 1
    payments = count // 2 + 1  # about two events per payment in the mix
    events = mix_events(_invoices(payments))[:count]
    with CpuShares(cpu_of or {}) as cpu:
        sent = _send(url, events, rate, seconds)
    latencies = _latencies_ms(_drained(list({event["id"] for event in events})))
    extra = {"cpu": {**cpu.result(), "load_generator_cores": round(sent["cpu_seconds"] / cpu.wall, 2)}} if cpu_of else {}
    return {**extra,
            "rate": round(rate, 1), "seconds": seconds, "sent": sent["sent"], "errors": sent["errors"],
            "sender_late_ms_p99": sent["late_ms_p99"], "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1), "processed": len(latencies)}


def _capacity(url: str, events: int) -> float:
    """Events/s one worker process drains: a burst sent faster than it can drain, timed from first stored to last done."""
    burst = mix_events(_invoices(events // 2 + 1))[:events]
    _send(url, burst, rate=2000, seconds=events / 2000 + 5)
    rows = _drained(list({event["id"] for event in burst}))
    first, last = min(received for received, _ in rows), max(processed for _, processed in rows)
    return len(rows) / max((last - first).total_seconds(), 0.001)


def run(env: dict, *, quick: bool = False) -> dict:
    import django

    os.environ.update(env)
    django.setup()
    from django.db import connection

    from tests.factories import ProviderSettingFactory

    setting = ProviderSettingFactory(name=f"bench-ttb-{uuid.uuid4().hex[:8]}")
    connection.close()
    flush_broker(env)
    port = 19000 + os.getpid() % 1000
    server = start_gunicorn(port, env)
    worker = start_celery_worker(env, concurrency=int(os.environ.get("BENCH_CONCURRENCY", "4")), name="bench-ttb")
    url = f"http://127.0.0.1:{port}/webhooks/stripe/{setting.webhook_id}/"
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        time.sleep(2)  # the worker's start-up
        capacity = _capacity(url, 200 if quick else 3000)
        sweep = [{"share": share, **_paced_run(url, capacity * share, 2 if quick else 15)} for share in (SWEEP[:2] if quick else SWEEP)]
        main = _paced_run(url, capacity * 0.9, 4 if quick else 60, cpu_of={"web": server.pid, "worker": worker.pid})
    finally:
        stop_process(worker)
        stop_process(server)
    over = next((row["share"] for row in sweep if row["p99_ms"] > 100), None)
    return {"measured_at": datetime.now(UTC).isoformat(), "capacity_events_per_second": round(capacity, 1), "main": main,
            "sweep": sweep, "first_share_with_p99_over_100ms": over}


def check(result: dict) -> list[str]:
    main = result["main"]
    return [f"time to books: {main['processed']} of {main['sent']} events processed"] if main["processed"] < main["sent"] else []


def table(result: dict) -> str:
    main = result["main"]
    met = "met" if main["p99_ms"] <= 50 else "MISSED"
    lines = [
        "Time to books (storage -> processing committed; 2 web processes, 1 worker process, paced open-loop load of the mix)",
        f"worker drain capacity: {result['capacity_events_per_second']} events/s",
        f"at 90 % ({main['rate']} events/s for {main['seconds']} s): p50 {main['p50_ms']} ms, p99 {main['p99_ms']} ms "
        f"(target p99 <= 50 ms: {met}); {main['processed']} events, sender p99 lateness {main['sender_late_ms_p99']} ms",
        *([_cpu_line(main["cpu"])] if main.get("cpu") else []),
        "load sweep (share of capacity: p99): " + ", ".join(f"{row['share']:.0%}: {row['p99_ms']} ms" for row in result["sweep"]),
        f"first load with p99 over 100 ms: {'none of the sweep' if result['first_share_with_p99_over_100ms'] is None else format(result['first_share_with_p99_over_100ms'], '.0%')}",
    ]
    return "\n".join(lines)


def _cpu_line(cpu: dict) -> str:
    """Why p99 is what it is: when the cores are full, events wait for a core, not for the code."""
    return (f"machine while the 90 % load was sent: {cpu['busy_cores']} of {cpu['cores']} cores busy (web processes {cpu['web_cores']}, "
            f"worker {cpu['worker_cores']}, PostgreSQL {cpu['postgres_cores']}, Redis {cpu.get('redis_cores', '?')}, "
            f"other {cpu['other_cores']}: the load generator "
            f"{cpu.get('load_generator_cores', '?')}, interrupts (loopback TCP) {cpu.get('interrupt_cores', '?')}, "
            f"stolen by other guests {cpu.get('stolen_cores', '?')})")
