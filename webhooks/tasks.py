"""Celery tasks of the webhook inbox: thin, they load ids and call services."""

import logging
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import DatabaseError

from providers.stripe.gateway import StripeRequestRefused
from receipts.tasks import in_one_task as receipts_in_one_task
from webhooks import services
from webhooks.lanes import lane_queue
from webhooks.models import EventStatus
from webhooks.publisher import take_waiting_events

logger = logging.getLogger(__name__)

MAX_RETRIES = 6


# Retrying cannot help these: the payload is malformed or Stripe refused the request for good. The event
# is marked failed at once (and can be replayed from the admin after a fix) instead of looping.
PERMANENT_ERRORS = (StripeRequestRefused, ValueError, KeyError, TypeError, AttributeError)


@shared_task(bind=True, name="webhooks.tasks.process_webhook_event", max_retries=MAX_RETRIES, acks_late=True)
def process_webhook_event(self, event_id: int):
    try:
        with services.replayable_commits():
            return services.process_event(event_id)
    except PERMANENT_ERRORS as exc:
        logger.error("Webhook event %s cannot be processed: %s: %s", event_id, type(exc).__name__, exc)
        services.finish_event(event_id, EventStatus.FAILED, f"{type(exc).__name__}: {exc}")
        return EventStatus.FAILED
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        if self.request.retries >= self.max_retries:
            logger.error("Webhook event %s failed after %s attempts: %s", event_id, self.request.retries + 1, message)
            services.finish_event(event_id, EventStatus.FAILED, message)  # counts this last attempt
            return EventStatus.FAILED
        services.record_event_error(event_id, message)
        # Exponential backoff: 2, 4, 8, ... seconds (capped), so a transient outage heals by itself.
        raise self.retry(exc=exc, countdown=min(2 ** (self.request.retries + 1), 600))


# A batch hands what is left to a new task after this long, well inside the soft time limit (90 s), even when
# Stripe fetches are slow: a time limit would otherwise kill the batch and redo its events.
BATCH_BUDGET_SECONDS = 30


@shared_task(bind=True, name="webhooks.tasks.process_webhook_events", max_retries=MAX_RETRIES, acks_late=True)
def process_webhook_events(self, event_ids: list[int]):
    """Several events in one task (webhooks/publisher.py groups a burst), with the tasks waiting behind it in its lane
    when the worker is behind (take_waiting_events). The batch runs in one transaction with its outcomes
    (services.process_together); when it cannot, each event has its own transaction and outcome, recorded together at
    the end (a crash before that only makes the events run again, which handlers make harmless). An event that fails
    for a passing reason continues alone in process_webhook_event with its backoff, so one bad event never holds up or
    repeats the others."""
    event_ids = list(event_ids) + _waiting_in_lane(self.request, len(event_ids))
    try:
        events = services.claim_events(event_ids)
    except DatabaseError as exc:  # the retry carries the events taken from the lane too
        raise self.retry(args=(event_ids,), exc=exc, countdown=min(2 ** (self.request.retries + 1), 600)) from exc
    if not events:
        return 0
    deadline = time.monotonic() + BATCH_BUDGET_SECONDS
    outcomes: dict[int, tuple[str, str]] = {}
    with receipts_in_one_task():
        _process_batch(events, outcomes, deadline)
    return len(outcomes)


def _waiting_in_lane(request, have: int) -> list[int]:
    """Event ids of the tasks waiting next in this task's lane, up to WEBHOOK_TASK_MAX_EVENTS in all (none in-process)."""
    from django.conf import settings

    queue = (request.delivery_info or {}).get("routing_key") or ""
    if request.is_eager or not queue.startswith(settings.WEBHOOK_LANE_PREFIX) or have >= settings.WEBHOOK_TASK_MAX_EVENTS:
        return []
    return take_waiting_events(queue, settings.WEBHOOK_TASK_MAX_EVENTS - have)


def _process_batch(events, outcomes: dict[int, tuple[str, str]], deadline: float) -> None:
    # The whole batch in one transaction with its outcomes when it can be (services.process_together)...
    together = services.process_together(events) if time.monotonic() <= deadline else None
    if together is not None:
        outcomes.update(together)
        return
    # ... else event by event, each in its own transaction, the outcomes recorded together at the end.
    with services.replayable_commits():
        _process_one_by_one(events, outcomes, deadline)


def _process_one_by_one(events, outcomes: dict[int, tuple[str, str]], deadline: float) -> None:
    try:
        for index, event in enumerate(events):
            if time.monotonic() > deadline:
                services.enqueue_events_now([(later.pk, later.provider_setting_id) for later in events[index:]])
                break
            try:
                outcomes[event.pk] = services.process_claimed_event(event)
            except SoftTimeLimitExceeded:
                # The task's time is up (a database or Stripe that hangs): this event and the rest go to new tasks now,
                # before the hard limit kills the process and the outcomes recorded so far with it.
                logger.warning("Webhook batch out of time at event %s; %s events handed to new tasks.", event.pk, len(events) - index)
                services.enqueue_events_now([(later.pk, later.provider_setting_id) for later in events[index:]])
                break
            except PERMANENT_ERRORS as exc:
                logger.error("Webhook event %s cannot be processed: %s: %s", event.pk, type(exc).__name__, exc)
                outcomes[event.pk] = (EventStatus.FAILED, f"{type(exc).__name__}: {exc}")
            except Exception as exc:
                _retry_alone(event.pk, event.provider_setting_id, f"{type(exc).__name__}: {exc}")
    finally:
        services.finish_events(outcomes)


def _retry_alone(event_id: int, setting_id: int, message: str) -> None:
    """The first attempt failed inside a batch: record it and schedule the second with the single task's backoff, in the
    same lane (a retry of a delayed task is published again to the queue it came from: Task.retry keeps delivery_info)."""
    try:
        services.record_event_error(event_id, message)
        process_webhook_event.apply_async((event_id,), countdown=2, retries=1, queue=lane_queue(setting_id))
    except Exception as exc:  # database or broker down: the event stays `received` and beat re-enqueues it
        logger.warning("Could not schedule a retry of webhook event %s (%s: %s); beat will re-enqueue it.", event_id,
                       type(exc).__name__, exc)


@shared_task(name="webhooks.tasks.requeue_stale_events")
def requeue_stale_events():
    return services.requeue_stale_events()


@shared_task(name="webhooks.tasks.purge_old_events", soft_time_limit=360, time_limit=420)
def purge_old_events(budget_seconds: float = 300.0):
    """Daily (beat): processed events past the retention period, in small batches, for at most `budget_seconds`."""
    return services.purge_old_events(budget_seconds=budget_seconds)
