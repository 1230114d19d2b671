"""No tenant waits on another (issue 21 item 4): a month-end burst of one business entity's events is stored and queued,
a real worker (threads pool, 4 threads, as docker-compose.yml runs it) starts on it, then one event of another entity
arrives. Target: that event booked within 2 s of its storage. The same scenario as
`tests/webhooks/test_lanes.py::test_a_burst_of_one_entity_does_not_delay_another_entitys_event`, at the issue's size.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from bench.common import flush_broker, start_celery_worker, stop_process

TARGET_SECONDS = 2.0


def _two_entities_in_different_lanes():
    """Two settings created one after the other: their lanes differ (the lane is the setting id modulo the lane count)
    unless there is a single lane, where the target fails as it should."""
    from tests.factories import BusinessEntityFactory, ProviderSettingFactory

    return (ProviderSettingFactory(business_entities=[BusinessEntityFactory()]),
            ProviderSettingFactory(business_entities=[BusinessEntityFactory()]))


def run(env: dict, *, quick: bool = False) -> dict:
    from tests.helpers import make_charge, make_event, wait_until
    from webhooks import services
    from webhooks.models import EventStatus, WebhookEvent

    burst = 300 if quick else int(os.environ.get("BENCH_FAIRNESS_BURST", "20000"))
    flush_broker(env)
    busy, quiet = _two_entities_in_different_lanes()
    started = time.perf_counter()
    for index in range(burst):
        services.store_event(busy, make_event("charge.succeeded", make_charge(created=1_700_000_000 + index)))
    if not services._background_publisher().flush(timeout=120):
        raise RuntimeError("the burst's tasks were not published")
    stored_seconds = time.perf_counter() - started

    burst_events = WebhookEvent.objects.filter(provider_setting=busy)
    worker = start_celery_worker(env, concurrency=4, name="bench-fairness")
    try:
        wait_until(lambda: burst_events.filter(status=EventStatus.PROCESSED).exists(), 120, "the worker to start on the burst")
        left_when_stored = burst_events.filter(status=EventStatus.RECEIVED).count()
        event_id, _ = services.store_event(quiet, make_event("charge.succeeded", make_charge()))
        event = wait_until(lambda: WebhookEvent.objects.filter(pk=event_id, status=EventStatus.PROCESSED).first(), 60,
                      "the other entity's event to be booked")
        drain_started = time.perf_counter()
        wait_until(lambda: not burst_events.filter(status=EventStatus.RECEIVED).exists(), 600, "the burst to drain")
        drain_seconds = time.perf_counter() - drain_started
    finally:
        stop_process(worker)
    delay = (event.processed_at - event.received_at).total_seconds()
    return {"measured_at": datetime.now(UTC).isoformat(), "burst": burst, "burst_stored_seconds": round(stored_seconds, 1),
            "burst_left_when_other_stored": left_when_stored, "other_entity_delay_seconds": round(delay, 3),
            "burst_booked_after_it": burst_events.filter(processed_at__gt=event.processed_at).count(),
            "burst_processed": burst_events.filter(status=EventStatus.PROCESSED).count(),
            "rest_of_burst_drained_in_seconds": round(drain_seconds, 1), "target_seconds": TARGET_SECONDS}


def check(result: dict) -> list[str]:
    if result["burst_processed"] != result["burst"]:
        return [f"fairness: {result['burst_processed']} of the burst's {result['burst']} events booked"]
    return []


def table(result: dict) -> str:
    met = "met" if result["other_entity_delay_seconds"] <= TARGET_SECONDS else "MISSED"
    return "\n".join([
        "No tenant waits on another (a real worker, 4 threads; one entity's burst queued, then one event of another entity)",
        f"burst of {result['burst']} events (stored and queued in {result['burst_stored_seconds']} s); the other entity's event "
        f"stored with {result['burst_left_when_other_stored']} of them still to do: booked "
        f"{result['other_entity_delay_seconds']:.2f} s after its storage (target <= {TARGET_SECONDS:.0f} s: {met}); "
        f"{result['burst_booked_after_it']} of the burst booked after it, the rest drained in "
        f"{result['rest_of_burst_drained_in_seconds']} s",
    ])
