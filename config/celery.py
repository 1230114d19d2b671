"""The Celery app: JSON only, late acks, one task prefetched at a time, tasks discovered per app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("billing_provider")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="config.ping", ignore_result=False)
def ping(value: str = "pong") -> str:
    """Round-trip check used by the health tests."""
    return value
