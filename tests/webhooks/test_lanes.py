"""Per-entity fairness (webhooks.lanes): a burst of one business entity never holds up another entity's events.

The fairness test runs a REAL Celery worker (threads pool, as in production) on Redis and the test database: a burst
for entity A is stored and published through the webhook view's path (store_event, background publisher, fast Redis
writer), then one event for entity B, which must be booked within 2 s of its storage while A's backlog still drains.
Without lanes (WEBHOOK_LANES=1, every event in one queue) B waits behind the whole burst and the test fails:
`WEBHOOK_LANES=1 pytest tests/webhooks/test_lanes.py -k burst` shows it. The issue's month-end burst of 20,000:
`LANES_TEST_BURST=20000 pytest tests/webhooks/test_lanes.py -k burst -s` (it prints the delay).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from tests.factories import BusinessEntityFactory, ProviderSettingFactory
from tests.helpers import make_charge, make_event, stop_processes, wait_until
from webhooks import lanes, services
from webhooks.models import EventStatus, WebhookEvent

ROOT = Path(__file__).resolve().parents[2]
# The test run's own Redis database (make test runs one suite at a time on it; a shared fixed number could be flushed by
# another run in the middle of the burst).
BROKER = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
BURST = int(os.environ.get("LANES_TEST_BURST", "3000"))


def test_a_setting_always_has_the_same_lane_and_the_first_settings_have_their_own(settings):
    settings.WEBHOOK_LANES = 8
    assert [lanes.lane_queue(setting_id) for setting_id in (1, 2, 8, 9)] == ["webhooks.1", "webhooks.2", "webhooks.0", "webhooks.1"]
    assert len({lanes.lane_queue(setting_id) for setting_id in range(100, 108)}) == 8
    assert lanes.by_lane([(10, 1), (11, 2), (12, 9)]) == {"webhooks.1": [10, 12], "webhooks.2": [11]}


def test_every_lane_is_a_queue_a_worker_consumes_and_documents_stay_apart():
    from config.celery import app

    queues = set(app.amqp.queues)
    assert set(lanes.lane_queues()) <= queues
    assert {"celery", django_settings.DOCUMENTS_QUEUE} <= queues
    assert app.amqp.router.route({}, "receipts.tasks.sweep_receipts")["queue"].name == django_settings.DOCUMENTS_QUEUE
    compose = (ROOT / "docker-compose.yml").read_text()
    # The events worker takes every queue but documents; no command line lists the lanes (they follow WEBHOOK_LANES).
    assert "-X documents" in compose and "-Q documents" in compose and "webhooks.0" not in compose


@pytest.fixture
def background_publisher(settings, celery_conf):
    """The webhook view's publishing path on a real broker: a fresh background publisher for this broker."""
    import redis

    client = redis.Redis.from_url(BROKER)
    client.flushdb()
    settings.CELERY_BROKER_URL = BROKER
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.WEBHOOK_PUBLISH_IN_BACKGROUND = True
    celery_conf(task_always_eager=False, broker_url=BROKER)
    services._publisher = None  # the process-wide publisher writes to the broker it was made for
    yield
    services._publisher = None
    client.flushdb()


def start_worker() -> subprocess.Popen:
    database = connection.settings_dict
    env = {**os.environ, "REDIS_URL": BROKER, "CELERY_BROKER_URL": BROKER, "CELERY_TASK_ALWAYS_EAGER": "false",
           "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}",
           "WEBHOOK_LANES": str(django_settings.WEBHOOK_LANES)}
    if database.get("PASSWORD"):
        env["PGPASSWORD"] = database["PASSWORD"]
    # As in production (docker-compose.yml): one process, a pool of four threads, every queue but documents.
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=threads", "--concurrency=4",
                             "--loglevel=WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle", "-X", "documents",
                             "-n", f"lanes-{os.getpid()}@%h"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_one_entity_does_not_delay_another_entitys_event(fake_stripe, background_publisher):
    busy = ProviderSettingFactory(business_entities=[BusinessEntityFactory()])
    quiet = ProviderSettingFactory(business_entities=[BusinessEntityFactory()])
    assert lanes.lane_queue(busy.pk) != lanes.lane_queue(quiet.pk) or django_settings.WEBHOOK_LANES == 1
    # Month end for the busy entity: a burst of charges, stored and published as the webhook view does (before the worker
    # starts, so that the whole burst is queued when it does).
    for index in range(BURST):
        services.store_event(busy, make_event("charge.succeeded", make_charge(created=1_700_000_000 + index)))
    assert services._background_publisher().flush(timeout=30)
    worker = start_worker()
    try:
        burst = WebhookEvent.objects.filter(provider_setting=busy)
        wait_until(lambda: burst.filter(status=EventStatus.PROCESSED).exists(), 60, "the worker to start on the burst")

        left_when_stored = burst.filter(status=EventStatus.RECEIVED).count()
        event_id, created = services.store_event(quiet, make_event("charge.succeeded", make_charge()))
        assert created
        event = wait_until(lambda: WebhookEvent.objects.filter(pk=event_id, status=EventStatus.PROCESSED).first(), 120,
                           "the quiet entity's event to be processed")
        wait_until(lambda: not burst.filter(status=EventStatus.RECEIVED).exists(), 120,
                   f"the burst to drain ({burst.filter(status=EventStatus.RECEIVED).count()} left)")
    finally:
        stop_processes(worker)
    delay = (event.processed_at - event.received_at).total_seconds()
    print(f"\nburst of {BURST}: the other entity's event was booked {delay:.2f} s after it was stored, with {left_when_stored} "
          f"burst events still to do; {burst.filter(processed_at__gt=event.processed_at).count()} were booked after it")
    assert left_when_stored > BURST // 2, f"the burst was nearly drained ({left_when_stored} left) before the quiet event was stored"
    processed_after = burst.filter(processed_at__gt=event.processed_at).count()
    assert delay <= 2.0, f"the quiet entity's event waited {delay:.2f} s ({left_when_stored} burst events were still to do)"
    assert processed_after > BURST // 4  # it overtook most of the backlog
    assert burst.filter(status=EventStatus.PROCESSED).count() == BURST


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_that_is_behind_takes_the_waiting_tasks_of_a_lane_along(fake_stripe, background_publisher, settings):
    """Tasks of one event each (as the publisher's linger makes them at a low rate) pile up while no worker runs: the
    worker's batches grow with that backlog (webhooks.publisher.take_waiting_events) instead of paying a task per event."""
    settings.WEBHOOK_TASK_BATCH_SIZE = 1
    setting = ProviderSettingFactory(business_entities=[BusinessEntityFactory()])
    for index in range(200):
        services.store_event(setting, make_event("charge.succeeded", make_charge(created=1_700_000_000 + index)))
    assert services._background_publisher().flush(timeout=30)
    import redis

    assert redis.Redis.from_url(BROKER).llen(lanes.lane_queue(setting.pk)) == 200  # one task per event
    worker = start_worker()
    try:
        events = WebhookEvent.objects.filter(provider_setting=setting)
        wait_until(lambda: not events.exclude(status=EventStatus.PROCESSED).exists(), 60, "the backlog to drain")
    finally:
        stop_processes(worker)
    assert {event.attempts for event in events} == {1}
    # A batch records its outcomes in its own transaction: one processed_at per batch. Four threads, up to 50 events each.
    batches = len({event.processed_at for event in events})
    assert batches <= 200 // django_settings.WEBHOOK_TASK_MAX_EVENTS + 8, f"{batches} batches for 200 events"
