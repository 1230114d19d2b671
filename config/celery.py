"""The Celery app: JSON only, late acks, one task prefetched at a time, tasks discovered per app."""

import os

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("billing_provider")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Celery's Django fixup closes every database connection before and after every task unless
# CELERY_DB_REUSE_MAX is set: a new PostgreSQL connection per task (several ms, most of an event's cost).
# Reuse connections like Django's request cycle does instead: CONN_MAX_AGE, health checks, and a
# connection that saw an error is dropped (close_old_connections, below).
app.conf.CELERY_DB_REUSE_MAX = 10_000


@setup_logging.connect
def logging_from_django_settings(loglevel=None, **kwargs):
    """Configure the worker's (and beat's) logging from Django's LOGGING. Without a receiver for this signal Celery
    replaces the root logger's handlers with its own, dropping the filter that masks Stripe secrets
    (providers.logging.RedactSecretsFilter). The worker's --loglevel still sets the level."""
    import copy
    from logging.config import dictConfig

    from django.conf import settings

    config = copy.deepcopy(settings.LOGGING)
    if loglevel:
        config["root"]["level"] = loglevel
    dictConfig(config)


@worker_init.connect
def no_health_check_per_task(**kwargs):
    """Django's health check would cost every task a `SELECT 1` round trip (it re-arms after each task). A worker
    does without: a connection that broke (PostgreSQL restarted) fails its task, which is retried, and
    close_old_connections below drops the connection that saw the error."""
    from django.db import connections

    for connection in connections.all(initialized_only=False):
        connection.settings_dict["CONN_HEALTH_CHECKS"] = False


@task_prerun.connect
@task_postrun.connect
def recycle_database_connections(task=None, **kwargs):
    if task is not None and getattr(task.request, "is_eager", False):
        return  # in-process (tests, the demo): the caller owns the connection and may be inside a transaction
    from django.db import close_old_connections

    close_old_connections()


@app.task(name="config.ping", ignore_result=False)
def ping(value: str = "pong") -> str:
    """Round-trip check used by the health tests."""
    return value
