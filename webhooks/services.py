"""The webhook inbox: verify, store once, enqueue after commit; process with the handler of the type.

Storing decides the HTTP answer and is one short transaction with no Stripe call. Processing runs
in a Celery task; handlers are idempotent, so a redelivered task or a replayed event is harmless.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial

import orjson
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.audit import audit_entry, record_audits
from billing.constants import AuditAction
from billing.ledger import sql
from webhooks.models import EventStatus, WebhookEvent

logger = logging.getLogger(__name__)


class SignatureError(Exception):
    """The Stripe-Signature header is missing, malformed, wrong or too old."""


class InvalidEvent(Exception):
    """The body is not a Stripe event this endpoint accepts."""


def verify_signature(payload: bytes, header: str | None, secret: str, *, tolerance: int, now: float | None = None) -> None:
    """Stripe's scheme: HMAC-SHA256 over "{t}.{raw body}"; any of several v1 signatures; `tolerance` seconds."""
    verify_signature_with(payload, header, signing_key(secret), tolerance=tolerance, now=now)


def signing_key(secret: str):
    """The HMAC-SHA256 state keyed with `secret`, to be copied per message (keying once saves work per webhook)."""
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


# Per-process cache of keyed HMAC states by (setting, encrypted secret): the webhook view needs neither a Fernet
# decryption nor a key setup per request. A new secret has a new ciphertext, so it gets a new entry. The entries
# hold HMAC pad states, not the secret's text, and never appear in a repr or log.
_signing_keys: dict[tuple[int, str], object] = {}


def signing_key_for(setting):
    """The keyed HMAC of the setting's webhook secret, or None when it has none (decryption errors propagate)."""
    cache_key = (setting.pk, setting.webhook_secret_encrypted)
    key = _signing_keys.get(cache_key)
    if key is None:
        secret = setting.webhook_secret
        if not secret:
            return None
        if len(_signing_keys) > 256:  # settings are few; this only bounds memory after many rotations
            _signing_keys.clear()
        key = _signing_keys[cache_key] = signing_key(secret)
    return key


def verify_signature_with(payload: bytes, header: str | None, key, *, tolerance: int, now: float | None = None) -> None:
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamp, signatures = None, []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit():
        raise SignatureError("no timestamp in Stripe-Signature header")
    if not signatures:
        raise SignatureError("no v1 signature in Stripe-Signature header")
    mac = key.copy()
    mac.update(timestamp.encode() + b"." + payload)
    expected = mac.hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("signature does not match")
    if abs((now or time.time()) - int(timestamp)) > tolerance:
        raise SignatureError("timestamp outside the tolerance zone")


def parse_event(payload: bytes, *, setting) -> dict:
    # orjson: a strict RFC 8259 parser, several times faster than json on every webhook (bad UTF-8, NaN and the
    # like are refused as "not JSON").
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise InvalidEvent("body is not JSON") from None
    if not isinstance(event, dict) or event.get("object") != "event" or not isinstance(event.get("id"), str) \
            or not isinstance(event.get("type"), str) or not isinstance((event.get("data") or {}).get("object"), dict):
        raise InvalidEvent("body is not a Stripe event")
    if len(event["id"]) > 255 or len(event["type"]) > 100:
        raise InvalidEvent("event id or type too long")
    if bool(event.get("livemode")) != setting.livemode:
        raise InvalidEvent(f"livemode {bool(event.get('livemode'))} does not match this setting's {setting.mode} keys")
    return event


def stripe_created(event: dict) -> datetime | None:
    created = event.get("created")
    return datetime.fromtimestamp(created, tz=UTC) if isinstance(created, int) and created > 0 else None


def store_event(setting, event: dict, raw_body: bytes | str | None = None) -> tuple[int | None, bool]:
    """Insert the event once (unique per Stripe account and event id) and enqueue it after commit.

    One INSERT ... ON CONFLICT DO NOTHING: a duplicate (even a concurrent one) inserts nothing and
    returns (None, False). Outside a transaction the row is committed by that statement, so the
    task is published right after it; inside one, after its commit.
    """
    account_id = event.get("account") if isinstance(event.get("account"), str) else setting.stripe_account_id
    if raw_body is None:
        raw_body = json.dumps(event)
    elif isinstance(raw_body, bytes):
        raw_body = raw_body.decode("utf-8")
    stored = sql.insert(WebhookEvent(provider_setting_id=setting.pk, stripe_event_id=event["id"], stripe_account_id=account_id or "",
                                     type=event["type"], livemode=bool(event.get("livemode")),
                                     api_version=str(event.get("api_version") or "")[:50], stripe_created=stripe_created(event),
                                     payload=raw_body, status=EventStatus.RECEIVED), unless_conflict=True)
    if stored is None:
        return None, False
    transaction.on_commit(partial(enqueue_event, stored.pk, setting.pk))
    return stored.pk, True


def store_event_with_reconnect(setting, event: dict, body: bytes) -> tuple[int | None, bool]:
    """Store the event; if the connection had died (PostgreSQL restarted), once more on a new one. The insert is
    idempotent, so the retry is safe, and it replaces the health check Django would run before every request."""
    try:
        return store_event(setting, event, raw_body=body)
    except OperationalError:
        if connection.in_atomic_block:
            raise
        logger.info("Database connection lost while storing a webhook; retrying once on a new connection.")
        connection.close()
        return store_event(setting, event, raw_body=body)


def enqueue_event(event_id: int, setting_id: int) -> bool:
    """Publish the processing task to the setting's lane (webhooks.lanes): from a background thread with a real broker
    (webhooks/publisher.py), at once when Celery runs in-process. Runs after the commit that stored the event."""
    from django.conf import settings

    if settings.WEBHOOK_PUBLISH_IN_BACKGROUND and not settings.CELERY_TASK_ALWAYS_EAGER:
        _background_publisher().submit((event_id, setting_id))
        return True
    return enqueue_event_now(event_id, setting_id)


_publisher = None


def _background_publisher():
    global _publisher
    if _publisher is None:
        from webhooks.publisher import make_publisher

        _publisher = make_publisher(enqueue_events_now)
    return _publisher


def enqueue_event_now(event_id: int, setting_id: int) -> bool:
    """Publish the processing task; a broker outage is logged, the beat task re-enqueues later."""
    from webhooks.lanes import lane_queue
    from webhooks.tasks import process_webhook_event

    try:
        process_webhook_event.apply_async((event_id,), queue=lane_queue(setting_id))
    except Exception as exc:  # kombu/redis raise many types; the event is safe in the inbox either way
        logger.warning("Could not enqueue webhook event %s (%s: %s); it will be re-enqueued.", event_id, type(exc).__name__, exc)
        return False
    return True


def event_batches(event_ids: list[int]) -> list[list[int]]:
    from django.conf import settings

    size = settings.WEBHOOK_TASK_BATCH_SIZE
    return [event_ids[start:start + size] for start in range(0, len(event_ids), size)]


def enqueue_events_now(events: list[tuple[int, int]]) -> int:
    """Publish processing tasks of up to WEBHOOK_TASK_BATCH_SIZE events each, to the lane of each event's setting
    ((event id, setting id) pairs); returns how many events were enqueued (a broker outage is logged: the events stay
    `received` and beat re-enqueues them)."""
    from django.conf import settings

    from webhooks.lanes import by_lane
    from webhooks.tasks import process_webhook_events

    events = list(events)
    if settings.CELERY_TASK_ALWAYS_EAGER:  # in-process: each event with the single task's retries
        return sum(1 for event_id, setting_id in events if enqueue_event_now(event_id, setting_id))
    enqueued = 0
    for queue, event_ids in by_lane(events).items():
        for batch in event_batches(event_ids):
            try:
                process_webhook_events.apply_async((batch,), queue=queue)
            except Exception as exc:
                logger.warning("Could not enqueue %s webhook events (%s: %s); they will be re-enqueued.", len(batch),
                               type(exc).__name__, exc)
                return enqueued
            enqueued += len(batch)
    return enqueued


def requeue_stale_events(*, older_than: timedelta = timedelta(minutes=1), limit: int = 1000) -> int:
    """Re-enqueue events still `received` after `older_than` (the broker was down, or a worker died)."""
    cutoff = timezone.now() - older_than
    events = list(WebhookEvent.objects.filter(status=EventStatus.RECEIVED, received_at__lt=cutoff)
                  .order_by("received_at").values_list("id", "provider_setting_id")[:limit])
    return enqueue_events_now(events)


def replay_events(event_ids, *, user=None) -> int:
    """Admin replay: failed (or any) events go back to `received` and are enqueued after commit. One audit entry per
    event (its status before), written with the change; `user` None is the system."""
    ids = list(event_ids)
    with transaction.atomic():
        events = list(WebhookEvent.objects.filter(id__in=ids).only("id", "type", "stripe_event_id", "status", "provider_setting_id")
                      .order_by("id"))
        WebhookEvent.objects.filter(id__in=ids).update(status=EventStatus.RECEIVED, last_error="", processed_at=None)
        record_audits([audit_entry(AuditAction.EVENT_REPLAYED, obj=event, user=user, detail=f"Status was {event.status}.")
                       for event in events])
        for event in events:
            transaction.on_commit(partial(enqueue_event, event.pk, event.provider_setting_id))
    return len(events)


CLAIM_FIELDS = ("id", "provider_setting_id", "type", "status", "stripe_created", "payload")
DONE = (EventStatus.PROCESSED, EventStatus.IGNORED)


def claim_events(event_ids) -> list[WebhookEvent]:
    """The events among `event_ids` still to process, in arrival order, read in one statement (a redelivered
    task finds its events done and gets nothing). No write, no commit: handlers are idempotent, so two workers
    on one event are harmless, and each commit costs a WAL flush."""
    from providers.selectors import setting_by_id

    events = [event for event in sql.select_by_ids(WebhookEvent, event_ids, names=CLAIM_FIELDS) if event.status not in DONE]
    for event in events:
        event.provider_setting = setting_by_id(event.provider_setting_id)  # cached per process (saves a join per event)
    return events


def claim_event(event_id: int) -> WebhookEvent | None:
    """The event to process; None when it is already done (a redelivered task)."""
    events = claim_events([event_id])
    return events[0] if events else None


def finish_event(event_id: int, status: str, error: str = "") -> None:
    """Record the outcome of one attempt (the attempt is counted here)."""
    finish_events({event_id: (status, error)})


def finish_events(outcomes: dict[int, tuple[str, str]]) -> None:
    """Record the outcomes of a batch's attempts: one UPDATE per distinct outcome (nearly always one: processed)."""
    by_outcome: dict[tuple[str, str], list[int]] = {}
    for event_id, (status, error) in outcomes.items():
        by_outcome.setdefault((status, error[:4000]), []).append(event_id)
    now = timezone.now()
    for (status, error), ids in by_outcome.items():
        sql.update_by_ids(WebhookEvent, ids, values={"status": status, "last_error": error, "processed_at": now}, increment="attempts")


def record_event_error(event_id: int, error: str) -> None:
    WebhookEvent.objects.filter(pk=event_id).update(last_error=error[:4000], attempts=F("attempts") + 1)


def process_event(event_id: int) -> str | None:
    """Run the handler of the event's type and record the outcome. Raises on handler errors (the task retries)."""
    event = claim_event(event_id)
    if event is None:
        return None
    status, note = process_claimed_event(event)
    finish_event(event.pk, status, note)
    return status


@contextmanager
def replayable_commits():
    """Event processing commits without waiting for its WAL flush (PostgreSQL's synchronous_commit = off).

    Safe because processing can be replayed from the inbox: a crash of PostgreSQL can lose at most the last
    few hundred milliseconds of commits, and the WAL is flushed in order, so an event whose balances were lost
    also lost its later `processed` mark: it is still `received` and beat enqueues it again. Nothing durable
    can depend on a lost commit either: any synchronous commit (a refund by finance staff, a webhook stored
    by the view) first flushes all the WAL written before it. What the processing tells Stripe (source
    charges) carries idempotency keys, so a replay repeats nothing. Saves a disk flush per event.
    Only outside a transaction (the setting is the session's), and only while the block runs.
    """
    if not _may_commit_asynchronously():
        yield
        return
    with sql.asynchronous_commits():
        yield


def _may_commit_asynchronously() -> bool:
    """PostgreSQL, the setting on, and no caller's transaction (whose durability is the caller's)."""
    from django.conf import settings

    return connection.vendor == "postgresql" and settings.WEBHOOK_ASYNC_COMMIT and not connection.in_atomic_block


def process_claimed_event(event: WebhookEvent) -> tuple[str, str]:
    """Run the handler of a claimed event; its outcome (processed, or ignored with the reason) is for the caller to
    record."""
    from webhooks.handlers import Ignored, handler_for

    handler = handler_for(event.type)
    if handler is None:
        return EventStatus.IGNORED, "No handler for this event type."
    outcome = handler(event.provider_setting, event.event["data"]["object"], event)
    if isinstance(outcome, Ignored):
        return EventStatus.IGNORED, outcome.reason
    return EventStatus.PROCESSED, ""


def process_together(events: list[WebhookEvent]) -> dict[int, tuple[str, str]] | None:
    """A batch's events in ONE transaction (ordered by charge, see below), their outcomes recorded in it too: the
    outcomes, or None when any of them raised or would have called Stripe (then nothing of the batch is kept, and the
    caller processes them one by one as before). The transaction commits asynchronously (replayable_commits says why
    that is safe; here SET LOCAL, one statement instead of a SET and a RESET around it), and its outcomes commit with
    the books they describe.

    Why (bench/cpu_per_event.py, profile in README "Performance"): an event's own transaction costs two round trips
    of its seven (BEGIN and COMMIT) and Django's transaction bookkeeping; a worker process is bound by its Python time
    per event, and that is where it goes. The result is the same as one transaction per event: the same handlers run
    the same statements and see their own writes; what differs is that the batch's row locks are
    held until its commit (milliseconds) and that an error undoes the whole batch, which is then redone event by
    event, so a bad event is failed or retried alone as before. A handler that needs Stripe (a refund list, a fetched
    charge, a source to charge) must not call it with the batch's locks held: `calls_refused` stops the call before
    anything is sent, and the event-by-event path makes it outside any lock.

    Batches run side by side (the worker's threads) and a charge's events can fall into two of them. Every handler
    locks its charge's payment first, so the batch takes its charges in one global order (by charge id; a charge's
    own events keep their order, and events of different charges commute: processing is order-independent), and two
    batches wait for each other's commit at most, never in a circle. A deadlock left (two charges of one invoice in
    two batches) is an error like any other: PostgreSQL ends one batch after deadlock_timeout, and it is redone
    event by event. (Measured before this order: 27 deadlocks in a 3,000-event burst sent by 16 connections.)"""
    from providers.stripe.gateway import calls_refused

    outcomes: dict[int, tuple[str, str]] = {}
    try:
        replayable = _may_commit_asynchronously()
        with calls_refused("a batch of webhook events holds its row locks"), transaction.atomic():
            if replayable:
                sql.commit_this_transaction_asynchronously()
            for event in sorted(events, key=charge_of):  # stable: a charge's events stay in arrival order
                outcomes[event.pk] = process_claimed_event(event)
            finish_events(outcomes)
    except Exception as exc:  # noqa: BLE001 - any error: the batch is redone event by event, where it is handled
        logger.info("Webhook batch of %s events redone one by one: %s: %s", len(events), type(exc).__name__, exc)
        return None
    return outcomes


def charge_of(event: WebhookEvent) -> str:
    """The id of the charge whose payment the event's handler locks first ("" for events about no charge)."""
    found = event.event["data"]["object"]
    if found.get("object") != "charge":
        found = found.get("charge") or found.get("latest_charge") or ""
    if isinstance(found, dict):
        found = found.get("id") or ""
    return found if isinstance(found, str) else ""


def ingest_fetched_event(setting, event: dict) -> bool:
    """An event fetched from Stripe's Events API goes through the same inbox (duplicates are skipped)."""
    if bool(event.get("livemode")) != setting.livemode:
        return False
    _, created = store_event(setting, event)
    return created


# --- Retention ------------------------------------------------------------------------------------------------------
# Deleting a thousand rows is a few milliseconds of row locks on rows nobody else touches: ingest (INSERTs) and
# processing (rows still `received`) never wait on it, and each batch commits on its own.
PURGE_BATCH_SIZE = 1000


def purgeable_events(*, now: datetime | None = None):
    """Processed and ignored events finished more than WEBHOOK_RETENTION_DAYS ago. Failed events (to replay after a fix)
    and unprocessed ones are never purgeable, however old."""
    from django.conf import settings

    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    return WebhookEvent.objects.filter(status__in=DONE, processed_at__lt=cutoff)


def purge_old_events(*, budget_seconds: float = 300.0, batch_size: int = PURGE_BATCH_SIZE, now: datetime | None = None) -> int:
    """Purgeable events go, oldest first, `batch_size` per statement and transaction (on the webhook_event_done index),
    until none is left or `budget_seconds` have passed; returns how many were deleted. The next run goes on where this one
    stopped. The conditions are repeated outside the id subquery so that PostgreSQL checks them again on a row an admin
    replay changed meanwhile (it is then kept)."""
    from django.db.models import Subquery

    deadline = time.monotonic() + budget_seconds
    purgeable = purgeable_events(now=now)
    deleted = 0
    while True:
        batch = Subquery(purgeable.order_by("processed_at").values("pk")[:batch_size])
        with transaction.atomic():
            count, _ = purgeable.filter(pk__in=batch).delete()
        deleted += count
        if count < batch_size or time.monotonic() >= deadline:
            break
    if deleted:
        logger.info("Retention: %s webhook events processed more than the retention period ago were deleted.", deleted)
    return deleted
