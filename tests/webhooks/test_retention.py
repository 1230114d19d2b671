"""Inbox retention: processed events older than WEBHOOK_RETENTION_DAYS go, in batches; failed and unprocessed stay."""

import os
from datetime import timedelta
from io import StringIO

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.helpers import make_charge, make_event
from webhooks import services, tasks
from webhooks.checks import retention_check
from webhooks.models import EventStatus, WebhookEvent

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def event_of(setting, status: str, *, processed_days_ago: float | None, received_days_ago: float = 60) -> int:
    event_id, created = services.store_event(setting, make_event("charge.succeeded", make_charge()))
    assert created
    processed_at = NOW - timedelta(days=processed_days_ago) if processed_days_ago is not None else None
    WebhookEvent.objects.filter(pk=event_id).update(status=status, processed_at=processed_at,
                                                    received_at=NOW - timedelta(days=received_days_ago))
    return event_id


def remaining() -> set[int]:
    return set(WebhookEvent.objects.values_list("id", flat=True))


def test_processed_and_ignored_events_past_the_retention_go_the_rest_stays(setting, settings):
    settings.WEBHOOK_RETENTION_DAYS = 45
    old_processed = event_of(setting, EventStatus.PROCESSED, processed_days_ago=46)
    old_ignored = event_of(setting, EventStatus.IGNORED, processed_days_ago=100)
    just_past = event_of(setting, EventStatus.PROCESSED, processed_days_ago=45 + 1 / 86400)
    kept = {
        event_of(setting, EventStatus.PROCESSED, processed_days_ago=45 - 1 / 86400),  # a second inside the period
        event_of(setting, EventStatus.PROCESSED, processed_days_ago=1),
        event_of(setting, EventStatus.FAILED, processed_days_ago=400, received_days_ago=400),  # failed: kept to replay
        event_of(setting, EventStatus.RECEIVED, processed_days_ago=None, received_days_ago=400),  # never processed
        event_of(setting, EventStatus.RECEIVED, processed_days_ago=400, received_days_ago=400),  # replayed: to do again
    }
    assert services.purgeable_events(now=NOW).count() == 3
    assert services.purge_old_events(now=NOW) == 3
    assert remaining() == kept
    assert not remaining() & {old_processed, old_ignored, just_past}
    assert services.purge_old_events(now=NOW) == 0


def test_a_longer_retention_keeps_more(setting, settings):
    settings.WEBHOOK_RETENTION_DAYS = 90
    event_of(setting, EventStatus.PROCESSED, processed_days_ago=91)
    kept = event_of(setting, EventStatus.PROCESSED, processed_days_ago=89)
    assert services.purge_old_events(now=NOW) == 1
    assert remaining() == {kept}


def test_deletes_in_batches_of_one_statement_each_oldest_first(setting):
    ids = [event_of(setting, EventStatus.PROCESSED, processed_days_ago=200 - n) for n in range(7)]
    with CaptureQueriesContext(connection) as queries:
        assert services.purge_old_events(batch_size=3, now=NOW) == 7
    deletes = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 3 + 3 + 1: the short batch ends the run
    assert all("LIMIT 3" in sql for sql in deletes)
    assert not remaining() & set(ids)


def test_the_time_budget_stops_the_run_and_the_next_run_goes_on(setting):
    ids = [event_of(setting, EventStatus.PROCESSED, processed_days_ago=200 - n) for n in range(5)]
    assert services.purge_old_events(batch_size=2, budget_seconds=0, now=NOW) == 2  # one batch, then out of time
    assert remaining() == set(ids[2:])  # the oldest went first
    assert services.purge_old_events(batch_size=2, now=NOW) == 3


def test_the_beat_task_and_the_command(setting, settings):
    assert settings.CELERY_BEAT_SCHEDULE["webhooks-purge-old-events"]["task"] == tasks.purge_old_events.name
    old = event_of(setting, EventStatus.PROCESSED, processed_days_ago=50)
    young = event_of(setting, EventStatus.PROCESSED, processed_days_ago=10)
    out = StringIO()
    call_command("purge_webhook_events", "--dry-run", stdout=out)
    assert "1 event(s) processed more than 45 days ago would be deleted (dry run)." in out.getvalue()
    assert remaining() == {old, young}
    assert tasks.purge_old_events.delay().get() == 1
    assert remaining() == {young}
    event_of(setting, EventStatus.IGNORED, processed_days_ago=50)
    out = StringIO()
    call_command("purge_webhook_events", stdout=out)
    assert "1 event(s) processed more than 45 days ago deleted." in out.getvalue()
    assert remaining() == {young}


def test_the_default_is_45_days_and_30_or_less_is_refused(settings):
    from config import settings as project_settings

    assert project_settings.WEBHOOK_RETENTION_DAYS == 45 or "WEBHOOK_RETENTION_DAYS" in os.environ
    settings.WEBHOOK_RETENTION_DAYS = 45
    assert retention_check(None) == []
    for days in (30, 7, 0):
        settings.WEBHOOK_RETENTION_DAYS = days
        errors = retention_check(None)
        assert [error.id for error in errors] == ["webhooks.E001"]
        assert "must be more than 30" in errors[0].msg
    settings.WEBHOOK_RETENTION_DAYS = 31
    assert "webhooks.E001" not in {error.id for error in run_checks()}
    settings.WEBHOOK_RETENTION_DAYS = 30
    assert "webhooks.E001" in {error.id for error in run_checks()}
