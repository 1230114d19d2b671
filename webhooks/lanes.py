"""Per-entity fairness in the queueing: each provider setting's events travel in one of WEBHOOK_LANES queues.

A provider setting belongs to one business entity. A month-end burst of one entity (20,000 events) fills its own
lane; a worker consumes every lane, and kombu's Redis transport moves the queue it just took a message from to the
end of its BRPOP list (`Channel._brpop_read` → `_queue_cycle.rotate`), so the next message comes from the next lane
that has one: another entity's event waits behind at most one task of the burst per worker thread, not behind the
burst. The lane is the setting id modulo the lane count: stable (a setting's events stay in arrival order in one queue)
and the first settings of a deployment never share one.
"""

from __future__ import annotations

from django.conf import settings


def lane_of(setting_id: int | None) -> int:
    return int(setting_id or 0) % settings.WEBHOOK_LANES


def lane_queue(setting_id: int | None) -> str:
    """The Celery queue (the Redis list) of the setting's events."""
    return f"{settings.WEBHOOK_LANE_PREFIX}{lane_of(setting_id)}"


def lane_queues() -> list[str]:
    return [f"{settings.WEBHOOK_LANE_PREFIX}{lane}" for lane in range(settings.WEBHOOK_LANES)]


def by_lane(events) -> dict[str, list[int]]:
    """(event id, setting id) pairs grouped by queue, in the given order within each queue (a batch stays in one lane)."""
    queues: dict[str, list[int]] = {}
    for event_id, setting_id in events:
        queues.setdefault(lane_queue(setting_id), []).append(event_id)
    return queues
