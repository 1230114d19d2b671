"""Event processing: N events already in the inbox, drained by one real Celery worker process on Redis.

Reports events/s per worker process and checks the end state against the expected balances.
The worker runs as production configures it (config/settings.py: a pool of 4 threads in one process);
BENCH_POOL=prefork BENCH_CONCURRENCY=1 measures one prefork child instead (the comparison in README "Performance").
"""

from __future__ import annotations

import os
import statistics
import time
from decimal import Decimal

from bench.common import flush_broker, start_celery_worker, stop_process
from tests.helpers import make_charge, make_event

SCALE_REFERENCE = 25  # events/s of a library that processes charge.succeeded synchronously, refetching from Stripe


def run(env: dict, *, quick: bool = False) -> dict:
    """Several rounds (a fresh inbox and a fresh worker each): the machine's speed drifts, the median is reported."""
    import django

    os.environ.update(env)
    django.setup()
    from django.conf import settings

    rounds = 1 if quick else int(os.environ.get("BENCH_PROCESSING_ROUNDS", "5"))
    payments = 20 if quick else int(os.environ.get("BENCH_PAYMENTS", "400"))
    # The target compares with one web process's ingest rate. The machine's speed drifts within minutes, so each
    # drain is paired with an ingest measurement taken right after it (the ingest benchmark's service endpoint,
    # concurrency 16, 2 gunicorn workers: half of it is one web process), and the median paired ratio is reported.
    results, web_rates = [], []
    with IngestProbe(env) as probe:
        for _ in range(rounds):
            results.append(drain_once(env, payments))
            web_rates.append(probe.per_web_process(seconds=1.0 if quick else 3.0))
    rates = [result["events_per_second_per_worker"] for result in results]
    paired = [rate / web for rate, web in zip(rates, web_rates, strict=True) if web]
    return {"events": sum(r["events"] for r in results), "processed": sum(r["processed"] for r in results),
            "failed": sum(r["failed"] for r in results), "seconds": round(sum(r["seconds"] for r in results), 2),
            "balance_mismatches": sum(r["balance_mismatches"] for r in results), "rounds": results,
            "events_per_second_per_worker": statistics.median(rates), "rounds_events_per_second": rates,
            "rounds_web_process_ingest_per_second": [round(rate, 1) for rate in web_rates],
            "vs_one_web_process_paired": round(statistics.median(paired), 2) if paired else 0.0,
            "reference_events_per_second": SCALE_REFERENCE, "batch_size": settings.WEBHOOK_TASK_BATCH_SIZE}


class IngestProbe:
    """gunicorn (2 sync workers) serving the webhook endpoint, to measure one web process's ingest rate on demand."""

    def __init__(self, env: dict):
        self.env = env

    def __enter__(self):
        from bench.common import start_gunicorn, wait_http
        from tests.factories import ProviderSettingFactory

        self.setting = ProviderSettingFactory(name=f"bench-probe-{time.time_ns()}")
        self.port = 19000 + os.getpid() % 1000
        self.server = start_gunicorn(self.port, self.env)
        wait_http(f"http://127.0.0.1:{self.port}/healthz")
        return self

    def per_web_process(self, *, seconds: float) -> float:
        from bench.ingest import _load, _requests_file, build_events
        from tests.factories import TEST_WEBHOOK_SECRET

        url = f"http://127.0.0.1:{self.port}/webhooks/stripe/{self.setting.webhook_id}/"
        path = _requests_file(url, build_events(3000), TEST_WEBHOOK_SECRET)
        try:
            result = _load(path, 16, seconds)
        finally:
            os.unlink(path)
        time.sleep(0.5)  # the web processes' publishers finish before the next drain empties the queue
        return result["rps"] / 2

    def __exit__(self, *exc):
        stop_process(self.server)


def drain_once(env: dict, payments: int) -> dict:
    import django
    from django.db import connection
    from django.db.models import Max, Min

    from billing.models import Balance, Invoice
    from payments.models import PaymentTransaction
    from tests.factories import InvoiceFactory, ProviderSettingFactory
    from webhooks.models import EventStatus, WebhookEvent
    from webhooks.services import store_event

    flush_broker(env)
    setting = ProviderSettingFactory(name=f"bench-processing-{time.time_ns()}")
    expected: dict[int, Decimal] = {}
    expected_status: dict[str, str] = {}  # charge id -> the transaction's end status
    events = []
    for index in range(payments):
        invoice = InvoiceFactory(amount=Decimal("100.00"))
        kind = ("card", "sepa_ok", "sepa_fail", "refund")[index % 4]
        metadata = {"invoice_id": str(invoice.pk)}
        charge = make_charge(metadata=metadata, status="succeeded", created=1_700_000_000 + index)
        expected_status[charge["id"]] = "failed" if kind == "sepa_fail" else "succeeded"
        if kind == "card":
            events.append(make_event("charge.succeeded", charge))
            expected[invoice.pk] = Decimal("-100")
        elif kind == "sepa_ok":
            events += [make_event("charge.pending", {**charge, "status": "pending"}), make_event("charge.succeeded", charge)]
            expected[invoice.pk] = Decimal("-100")
        elif kind == "sepa_fail":
            events += [make_event("charge.pending", {**charge, "status": "pending"}), make_event("charge.failed", {**charge, "status": "failed"})]
            expected[invoice.pk] = Decimal("0")
        else:
            refund = {"id": f"re_bench{time.time_ns()}", "object": "refund", "amount": 2500, "currency": "eur", "charge": charge["id"],
                      "status": "succeeded", "created": 1_700_000_500 + index, "metadata": {}}
            events += [make_event("charge.succeeded", charge),
                       make_event("charge.refunded", {**charge, "refunds": {"object": "list", "data": [refund], "has_more": False}},
                                  api_version="2019-02-19")]
            expected[invoice.pk] = Decimal("-100")  # the refund splits but keeps both payment parts on the invoice
    from config.celery import app

    app.conf.update(task_always_eager=False)
    for event in events:
        store_event(setting, event)  # enqueued at once; no worker runs yet
    connection.close()

    # One worker process, as configured for production (a pool of threads: config/settings.py CELERY_WORKER_POOL).
    worker = start_celery_worker(env, concurrency=int(os.environ.get("BENCH_CONCURRENCY", "4")), name="bench-processing")
    started = time.perf_counter()
    deadline = started + 600
    try:
        while time.perf_counter() < deadline:
            left = WebhookEvent.objects.filter(provider_setting=setting, status=EventStatus.RECEIVED).count()
            if left == 0:
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    finally:
        stop_process(worker)
    statuses = dict(WebhookEvent.objects.filter(provider_setting=setting).values_list("status").annotate(n=django.db.models.Count("id")))
    mismatches = 0
    for invoice in Invoice.objects.filter(pk__in=expected):
        linked = sum((b.amount for b in Balance.objects.filter(invoice=invoice)), Decimal("0"))
        mismatches += linked != expected[invoice.pk]
    transactions = dict(PaymentTransaction.objects.filter(provider_setting=setting).values_list("charge_id", "status"))
    mismatches += sum(1 for charge_id, status in expected_status.items() if transactions.get(charge_id) != status)
    processed = statuses.get(EventStatus.PROCESSED, 0)
    # Worker start-up is not processing: the events finished after the first finish instant, over the time since
    # (a task records its batch's outcomes together, so all of the first batch share that instant).
    ours = WebhookEvent.objects.filter(provider_setting=setting)
    span = ours.aggregate(first=Min("processed_at"), last=Max("processed_at"))
    busy = (span["last"] - span["first"]).total_seconds() if span["first"] and span["last"] else 0.0
    after_first = ours.filter(processed_at__gt=span["first"]).count() if span["first"] else 0
    return {"events": len(events), "processed": processed, "failed": statuses.get(EventStatus.FAILED, 0), "seconds": round(elapsed, 2),
            "busy_seconds": round(busy, 2),
            "events_per_second_per_worker": round(after_first / busy, 1) if busy else 0.0, "balance_mismatches": mismatches}


def check(result: dict) -> list[str]:
    problems = []
    if result["processed"] != result["events"]:
        problems.append(f"processing: {result['events'] - result['processed']} events not processed")
    if result["balance_mismatches"]:
        problems.append(f"processing: {result['balance_mismatches']} invoices or transactions not in the expected end state")
    return problems


def table(result: dict) -> str:
    ratio = result["events_per_second_per_worker"] / SCALE_REFERENCE
    return "\n".join([
        f"Event processing (1 Celery worker process, pool {os.environ.get('BENCH_POOL') or 'as configured (threads)'}, concurrency "
        f"{os.environ.get('BENCH_CONCURRENCY', '4')}, Redis broker, PostgreSQL, tasks of up to "
        f"{result.get('batch_size', 1)} events)",
        f"events {result['events']} in {len(result.get('rounds', [1]))} rounds, processed {result['processed']}, failed {result['failed']}, "
        f"in {result['seconds']} s",
        f"events/s per worker process: {result['events_per_second_per_worker']} (median; rounds {result.get('rounds_events_per_second')}) "
        f"({ratio:.1f}x the 25 events/s of a synchronous refetching handler; target >= 5x)",
        f"one web process ingests {result.get('rounds_web_process_ingest_per_second')} events/s right after each drain: "
        f"median paired ratio {result.get('vs_one_web_process_paired')} (target >= 1.0: "
        f"{'met' if (result.get('vs_one_web_process_paired') or 0) >= 1.0 else 'MISSED'}; events/s on wall time from the first batch "
        "finished to the last, worker start-up excluded)",
        f"invoices or charge transactions that differ from the expected end state: {result['balance_mismatches']}",
    ])
