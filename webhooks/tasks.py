"""Celery tasks of the webhook inbox: thin, they load ids and call services."""

import logging

from celery import shared_task

from providers.stripe.gateway import StripeRequestRefused
from webhooks import services
from webhooks.models import EventStatus

logger = logging.getLogger(__name__)

MAX_RETRIES = 6


# Retrying cannot help these: the payload is malformed or Stripe refused the request for good. The event
# is marked failed at once (and can be replayed from the admin after a fix) instead of looping.
PERMANENT_ERRORS = (StripeRequestRefused, ValueError, KeyError, TypeError, AttributeError)


@shared_task(bind=True, name="webhooks.tasks.process_webhook_event", max_retries=MAX_RETRIES, acks_late=True)
def process_webhook_event(self, event_id: int):
    try:
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


@shared_task(name="webhooks.tasks.requeue_stale_events")
def requeue_stale_events():
    return services.requeue_stale_events()
