"""Publishing processing tasks off the request path.

Publishing a Celery task costs about half a millisecond of Python and two Redis round trips, as much
as everything else the webhook view does. The event is already durable in the inbox when the view
answers, so the publish may happen a moment later in a background thread of the same process: the
answer does not wait for Redis. Nothing depends on that thread for correctness: an id it never
publishes (the process died, Redis was down) leaves its event `received`, and Celery beat's
requeue_stale_events publishes it again; a double publish is harmless (processing is idempotent).

With a Redis broker the thread writes the Celery messages itself (RedisTaskWriter): Celery's own publish
builds a new Redis client and several layers of objects per message (about 0.5 ms of CPU, which a busy
web process cannot spare), while one LPUSH of ready-made messages costs a few microseconds
each. The message is exactly what Celery 5's protocol 2 puts on the queue (tests/foundation checks
that a real worker consumes it). Other brokers go through Celery's publish.

Each message carries up to WEBHOOK_TASK_BATCH_SIZE event ids (process_webhook_events): in a burst a
worker then pays Celery's per-task work once per batch instead of once per event, while a quiet endpoint
still gets one small task per linger window. The ids are (event id, setting id) pairs: each event goes to its
setting's lane (webhooks.lanes) and a batch never mixes lanes.

In-process (eager) Celery — tests and the demo without a broker — publishes synchronously instead.

The worker's side of the batching (take_waiting_events): a task also takes the tasks that wait behind it in its lane, so
when the worker falls behind, its batches grow with the backlog instead of staying as small as the linger made them.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from queue import Empty, SimpleQueue

logger = logging.getLogger(__name__)


TASK_NAME = "webhooks.tasks.process_webhook_events"
MAX_BATCH = 500


class RedisTaskWriter:
    """Celery protocol 2 messages for process_webhook_events(event_ids), pushed to the lane queue of each event's setting."""

    def __init__(self, broker_url: str, *, time_limits: tuple, batch_size: int = 1, origin: str | None = None):
        import redis

        self.client = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=3)
        self.time_limits = list(time_limits)
        self.batch_size = batch_size
        self.origin = origin or f"gen{os.getpid()}@{socket.gethostname()}"
        self._template = self._message_template()
        self._body_template = b'[[[%s]], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'

    def message(self, event_ids: list[int], queue: str) -> str:
        task_id = str(uuid.uuid4())
        ids = ", ".join(str(int(event_id)) for event_id in event_ids)
        body = base64.b64encode(self._body_template % ids.encode()).decode()
        return self._template.format(task_id=task_id, body=body, event_ids=ids, delivery_tag=uuid.uuid4(), queue=queue)

    def _message_template(self) -> str:
        """The JSON message with placeholders, built once (json.dumps per message costs more than the LPUSH)."""
        marker = "\x00{}\x00"
        task_id = marker.format("task_id")
        message = json.dumps({
            "body": marker.format("body"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"lang": "py", "task": TASK_NAME, "id": task_id, "shadow": None, "eta": None, "expires": None, "group": None,
                        "group_index": None, "retries": 0, "timelimit": self.time_limits, "root_id": task_id, "parent_id": None,
                        "argsrepr": f"([{marker.format('event_ids')}],)", "kwargsrepr": "{}", "origin": self.origin, "ignore_result": True,
                        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {}},
            "properties": {"correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                           "delivery_info": {"exchange": "", "routing_key": marker.format("queue")}, "priority": 0,
                           "body_encoding": "base64",
                           "delivery_tag": marker.format("delivery_tag")},
        })
        escaped = message.replace("{", "{{").replace("}", "}}")
        for name in ("task_id", "body", "event_ids", "delivery_tag", "queue"):
            escaped = escaped.replace(json.dumps(marker.format(name))[1:-1], "{" + name + "}")
        return escaped

    def publish(self, events: list[tuple[int, int]]) -> None:
        """(event id, setting id) pairs: one LPUSH per lane (the lanes of one linger window's webhooks, usually one or two;
        the round trips are this background thread's, not a request's); the worker pops from the other end, so each lane
        keeps its order."""
        from webhooks.lanes import by_lane

        for queue, event_ids in by_lane(events).items():
            batches = [event_ids[start:start + self.batch_size] for start in range(0, len(event_ids), self.batch_size)]
            self.client.lpush(queue, *[self.message(batch, queue) for batch in batches])


def event_ids_of_message(raw: bytes) -> list[int] | None:
    """The event ids of a queued process_webhook_events message due now (ours or Celery's own publish); None for any
    other message: another task, a retry waiting for its countdown (an ETA), a shape we do not know."""
    try:
        message = json.loads(raw)
        headers = message["headers"]
        if headers.get("task") != TASK_NAME or headers.get("eta") or headers.get("retries"):
            return None
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        event_ids = json.loads(body)[0][0]
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    if not isinstance(event_ids, list) or not all(type(event_id) is int for event_id in event_ids):
        return None
    return event_ids


_broker = threading.local()


def _broker_client():
    """A Redis client on the broker, one per worker thread (None when the broker is not Redis)."""
    from django.conf import settings

    url = settings.CELERY_BROKER_URL or ""
    if not url.startswith(("redis://", "rediss://")):
        return None
    clients = _broker.__dict__.setdefault("clients", {})
    if url not in clients:
        import redis

        clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return clients[url]


def take_waiting_events(queue: str, limit: int, *, round_trips: int = 3) -> list[int]:
    """Event ids of the process_webhook_events tasks waiting next in `queue` (a webhook lane), taken off the queue, until
    about `limit` events (messages are taken whole), in at most `round_trips` pops: one message first, then as many as
    the limit needs at the size seen so far.

    Why: the publisher's batches are as small as its linger makes them (one to five events at a paced few hundred
    events/s), and a task's fixed cost (Celery's delivery and acknowledgement, reading the events, the transaction, the
    outcomes, the receipts task) is then paid for every one or two events: a worker that falls behind stays behind.
    Taking the waiting tasks along makes a batch grow with the backlog (bench/time_to_books.py).

    Safe to take a message off Redis without Celery's acknowledgement: a message is only a wake-up call; the event is
    durable in the inbox, `received` until its processing commits. A worker that dies holding it leaves it `received`,
    and beat's requeue_stale_events publishes it again after a minute, as for a publish that never happened. A message
    that is not ours to take (another task, a retry with a countdown) goes back to the end of the queue it came from
    with those popped after it, in their order, where the workers' next pops find them. Redis unreachable: nothing
    more is taken (a message taken and not put back leaves its events `received`, for beat)."""
    import redis

    client = _broker_client()
    event_ids: list[int] = []
    if client is None:
        return event_ids
    messages = 0
    try:
        for _ in range(round_trips):
            wanted = limit - len(event_ids)
            if wanted <= 0:
                break
            count = max(1, wanted // max(1, len(event_ids) // messages)) if messages else 1
            popped = client.rpop(queue, count) or []  # oldest first
            for index, raw in enumerate(popped):
                taken = event_ids_of_message(raw)
                if taken is None:
                    client.rpush(queue, *reversed(popped[index:]))  # the last pushed is the next popped
                    return event_ids
                event_ids.extend(taken)
                messages += 1
            if len(popped) < count:
                break  # the lane is empty
    except redis.RedisError as exc:
        logger.warning("Could not take waiting webhook tasks from %s (%s: %s)", queue, type(exc).__name__, exc)
    return event_ids


def redis_writer_from_settings() -> RedisTaskWriter | None:
    """The fast writer when the broker is Redis; else None. Routes do not matter: the lane is the queue (webhooks.lanes)."""
    from django.conf import settings

    from config.celery import app

    url = settings.CELERY_BROKER_URL or ""
    if not url.startswith(("redis://", "rediss://")):
        return None
    return RedisTaskWriter(url, batch_size=settings.WEBHOOK_TASK_BATCH_SIZE,
                           time_limits=(app.conf.task_time_limit, app.conf.task_soft_time_limit))


class BackgroundPublisher:
    def __init__(self, publish: Callable[[list], object], writer_factory: Callable[[], RedisTaskWriter | None] | None = None,
                 linger: float = 0.0):
        self._publish = publish
        self._linger = linger
        self._writer_factory = writer_factory
        self._writer: RedisTaskWriter | None = None
        self._queue: SimpleQueue = SimpleQueue()
        self._pending = 0
        self._pid: int | None = None
        self._lock = threading.Lock()

    def submit(self, item) -> None:
        """`item`: what publish and the writer take a list of (an (event id, setting id) pair in the webhook view)."""
        self._ensure_thread()
        with self._lock:
            self._pending += 1
        self._queue.put(item)

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked worker process (threads do not survive fork)
                self._queue, self._pending = SimpleQueue(), 0
                threading.Thread(target=self._run, name="webhook-task-publisher", daemon=True).start()
                self._pid = os.getpid()

    def _run(self) -> None:
        if self._writer_factory is not None:
            try:
                self._writer = self._writer_factory()
            except Exception:
                logger.exception("No fast Redis writer; publishing through Celery")
        last_publish = 0.0
        while True:
            batch = [self._queue.get()]
            # At most one publish per `linger`: sleep what is left of it since the last publish (deaf to new ids, so
            # that each webhook does not wake this thread), then take everything that arrived: one round trip carries
            # several messages. A sync web process gets one webhook at a time, and a publish per webhook would cost
            # it as much CPU as the INSERT. An id arriving after a quiet `linger` goes at once: the wait is paid only
            # when there is something to share the round trip with (time to books at low and paced rates).
            wait = last_publish + self._linger - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except Empty:
                    break
            last_publish = time.monotonic()
            try:
                self._publish_batch(batch)
            except Exception:  # never let the thread die; beat re-enqueues what was not published
                logger.exception("Publishing the tasks of %s webhook events failed; beat will re-enqueue them", len(batch))
            finally:
                with self._lock:
                    self._pending -= len(batch)

    def _publish_batch(self, batch: list) -> None:
        if self._writer is not None:
            try:
                self._writer.publish(batch)
                return
            except Exception as exc:  # Redis down: the events stay `received`; beat re-enqueues them
                logger.warning("Could not enqueue %s webhook events (%s: %s); they will be re-enqueued.", len(batch),
                               type(exc).__name__, exc)
                return
        self._publish(batch)  # logs and swallows broker errors (see enqueue_events_now)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted was published (process exit, tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending <= 0 or self._pid != os.getpid():
                    return True
            time.sleep(0.005)
        return False


def _flush_at_exit(publisher: BackgroundPublisher) -> None:
    if not publisher.flush(timeout=3.0):
        logger.warning("Exiting with webhook tasks not yet published; Celery beat will re-enqueue their events.")


def make_publisher(publish: Callable[[list], object]) -> BackgroundPublisher:
    from django.conf import settings

    publisher = BackgroundPublisher(publish, writer_factory=redis_writer_from_settings,
                                    linger=settings.WEBHOOK_PUBLISH_LINGER_MS / 1000)
    atexit.register(_flush_at_exit, publisher)
    return publisher
