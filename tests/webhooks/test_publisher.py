"""The background task publisher of the webhook view (webhooks/publisher.py)."""

import base64
import json

import pytest
from django.conf import settings

from webhooks.lanes import lane_queue
from webhooks.publisher import BackgroundPublisher, RedisTaskWriter, event_ids_of_message, take_waiting_events


class RecordingWriter:
    def __init__(self, fail_first: bool = False):
        self.batches, self.fail_first = [], fail_first

    def publish(self, ids):
        if self.fail_first and not self.batches:
            self.batches.append(None)
            raise ConnectionError("redis down")
        self.batches.append(list(ids))


def test_every_submitted_event_is_published_once_in_batches():
    writer = RecordingWriter()
    publisher = BackgroundPublisher(lambda event_id: None, writer_factory=lambda: writer)
    for event_id in range(1, 1001):
        publisher.submit(event_id)
    assert publisher.flush(timeout=10)
    published = [event_id for batch in writer.batches for event_id in batch]
    assert sorted(published) == list(range(1, 1001))


def test_with_a_linger_webhooks_arriving_one_by_one_share_a_round_trip_and_one_after_a_quiet_spell_goes_at_once():
    """A sync web process submits one id per request; lingering puts those of several requests in one LPUSH, at most one
    publish per linger. The first id after a quiet linger has nothing to wait for: it is published at once."""
    import time

    writer = RecordingWriter()
    publisher = BackgroundPublisher(lambda event_id: None, writer_factory=lambda: writer, linger=0.5)
    started = time.monotonic()
    for event_id in range(1, 6):
        publisher.submit(event_id)
        time.sleep(0.01)  # requests a few milliseconds apart, all well inside the linger
    assert publisher.flush(timeout=5)
    assert writer.batches == [[1], [2, 3, 4, 5]]
    assert time.monotonic() - started >= 0.5  # the second publish waited for the linger
    time.sleep(0.6)  # quiet
    published_at = time.monotonic()
    publisher.submit(6)
    assert publisher.flush(timeout=5)
    assert writer.batches[-1] == [6] and time.monotonic() - published_at < 0.25


def test_a_broker_error_loses_the_thread_nothing():
    writer = RecordingWriter(fail_first=True)
    publisher = BackgroundPublisher(lambda event_id: None, writer_factory=lambda: writer)
    publisher.submit(1)
    assert publisher.flush(timeout=5)
    publisher.submit(2)  # the thread is still alive; event 1 stays `received` for beat's requeue
    assert publisher.flush(timeout=5)
    assert writer.batches[-1] == [2]


def test_without_a_redis_broker_it_publishes_through_celery():
    seen = []
    publisher = BackgroundPublisher(seen.append, writer_factory=lambda: None)
    publisher.submit(7)
    assert publisher.flush(timeout=5) and seen == [[7]]


@pytest.mark.services
def test_the_message_is_the_one_celery_writes():
    """Same protocol-2 message as Celery's own publish (a real worker consumes it: tests/e2e, tests/foundation)."""
    import redis

    from config.celery import app

    url = "redis://127.0.0.1:6379/14"
    client = redis.Redis.from_url(url)
    client.flushdb()
    with app.connection_for_write(url) as connection:
        app.send_task("webhooks.tasks.process_webhook_events", args=([42, 43],), connection=connection, queue=lane_queue(3),
                      time_limit=settings.CELERY_TASK_TIME_LIMIT, soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT, ignore_result=True)
    theirs = json.loads(client.rpop(lane_queue(3)))
    RedisTaskWriter(url, time_limits=(settings.CELERY_TASK_TIME_LIMIT, settings.CELERY_TASK_SOFT_TIME_LIMIT),
                    batch_size=2).publish([(42, 3), (43, 3)])
    ours = json.loads(client.rpop(lane_queue(3)))
    assert client.llen(lane_queue(3)) == 0  # two ids of one setting, one message in its lane
    client.flushdb()
    assert ours.keys() == theirs.keys()
    assert ours["headers"].keys() == theirs["headers"].keys() and ours["properties"].keys() == theirs["properties"].keys()
    for key in ("task", "timelimit", "retries", "argsrepr", "kwargsrepr", "ignore_result", "lang"):
        assert ours["headers"][key] == theirs["headers"][key], key
    for key in ("delivery_mode", "priority", "body_encoding"):
        assert ours["properties"][key] == theirs["properties"][key], key
    # Celery names its exchange, we push to the list directly (the anonymous exchange): the same queue either way, and a
    # retry (Task.signature_from_request) goes back to it.
    assert ours["properties"]["delivery_info"] == {"exchange": "", "routing_key": lane_queue(3)}
    assert theirs["properties"]["delivery_info"]["routing_key"] == lane_queue(3)
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(base64.b64decode(theirs["body"]))
    assert ours["content-type"] == theirs["content-type"] and ours["content-encoding"] == theirs["content-encoding"]


class RecordingClient:
    def __init__(self):
        self.pushed: dict[str, list[str]] = {}
        self.round_trips = 0

    def lpush(self, queue, *messages):
        self.round_trips += 1
        self.pushed.setdefault(queue, []).extend(messages)


def test_the_writer_puts_up_to_batch_size_ids_of_one_lane_in_each_message():
    writer = RedisTaskWriter("redis://127.0.0.1:6379/14", time_limits=(120, 90), batch_size=3)
    writer.client = RecordingClient()
    writer.publish([(event_id, 1) for event_id in range(1, 8)] + [(8, 2), (9, 1 + settings.WEBHOOK_LANES)])
    assert writer.client.round_trips == 2  # one LPUSH per lane
    bodies = {queue: [json.loads(base64.b64decode(json.loads(message)["body"]))[0][0] for message in messages]
              for queue, messages in writer.client.pushed.items()}
    argsreprs = [json.loads(message)["headers"]["argsrepr"] for message in writer.client.pushed[lane_queue(1)]]
    # Setting 1 + lanes shares setting 1's lane; batches never mix lanes.
    assert bodies == {lane_queue(1): [[1, 2, 3], [4, 5, 6], [7, 9]], lane_queue(2): [[8]]}
    assert argsreprs == ["([1, 2, 3],)", "([4, 5, 6],)", "([7, 9],)"]


# --- The worker's side: a task takes the tasks waiting behind it in its lane (take_waiting_events) -------------------


@pytest.fixture
def lane_broker(settings):
    import redis

    url = "redis://127.0.0.1:6379/14"
    settings.CELERY_BROKER_URL = url
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield client
    client.flushdb()


def queued(client, queue) -> list:
    """The lane's messages, next to be consumed first (workers pop from the right)."""
    return [json.loads(message) for message in reversed(client.lrange(queue, 0, -1))]


@pytest.mark.services
def test_a_task_takes_the_waiting_tasks_of_its_lane_oldest_first_up_to_the_limit(lane_broker):
    writer = RedisTaskWriter(settings.CELERY_BROKER_URL, time_limits=(120, 90), batch_size=2)
    writer.publish([(event_id, 3) for event_id in range(1, 9)])  # four messages of two events in lane 3
    writer.publish([(100, 4)])  # another lane: never taken by lane 3's task

    assert take_waiting_events(lane_queue(3), limit=3) == [1, 2, 3, 4]  # whole messages, until the limit is reached
    assert take_waiting_events(lane_queue(3), limit=50) == [5, 6, 7, 8]
    assert take_waiting_events(lane_queue(3), limit=50) == []

    writer.batch_size = 1
    writer.publish([(event_id, 3) for event_id in range(10, 110)])  # a hundred tasks of one event
    assert take_waiting_events(lane_queue(3), limit=50) == list(range(10, 60))  # in three pops: 1, then 49
    assert lane_broker.llen(lane_queue(3)) == 50
    assert [message["headers"]["argsrepr"] for message in queued(lane_broker, lane_queue(4))] == ["([100],)"]


@pytest.mark.services
def test_a_retry_waiting_for_its_countdown_or_another_task_is_put_back_in_its_place(lane_broker):
    from config.celery import app

    writer = RedisTaskWriter(settings.CELERY_BROKER_URL, time_limits=(120, 90), batch_size=5)
    writer.publish([(1, 3), (2, 3)])
    with app.connection_for_write(settings.CELERY_BROKER_URL) as connection:
        app.send_task("webhooks.tasks.process_webhook_event", args=(7,), connection=connection, queue=lane_queue(3), countdown=60)
        app.send_task("webhooks.tasks.process_webhook_events", args=([8],), connection=connection, queue=lane_queue(3), countdown=60)
    writer.publish([(9, 3)])
    writer.publish([(10, 3)])

    assert take_waiting_events(lane_queue(3), limit=50) == [1, 2]  # stops at the retry, which keeps its countdown
    left = queued(lane_broker, lane_queue(3))
    assert [message["headers"]["task"] for message in left] == ["webhooks.tasks.process_webhook_event",
                                                                "webhooks.tasks.process_webhook_events",
                                                                "webhooks.tasks.process_webhook_events",
                                                                "webhooks.tasks.process_webhook_events"]
    assert left[0]["headers"]["eta"] and left[1]["headers"]["eta"] and not left[2]["headers"]["eta"]
    assert [message["headers"]["argsrepr"] for message in left[2:]] == ["([9],)", "([10],)"]  # in their order


def test_only_a_due_batch_message_of_known_shape_gives_event_ids():
    writer = RedisTaskWriter("redis://127.0.0.1:6379/14", time_limits=(120, 90), batch_size=5)
    message = json.loads(writer.message([4, 5], lane_queue(1)))
    assert event_ids_of_message(json.dumps(message).encode()) == [4, 5]
    for broken in (b"not json", b"{}", json.dumps({**message, "headers": {**message["headers"], "task": "other.task"}}).encode(),
                   json.dumps({**message, "body": base64.b64encode(b'[["x"], {}, {}]').decode()}).encode(),
                   json.dumps({**message, "headers": {**message["headers"], "retries": 1}}).encode()):
        assert event_ids_of_message(broken) is None


def test_with_redis_down_nothing_is_taken_and_nothing_raises(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    assert take_waiting_events(lane_queue(1), limit=50) == []
