"""/healthz: is the database reachable, is the broker reachable."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from config.celery import app as celery_app


def database_status() -> str:
    """A round trip to the database (Django's own liveness probe of a connection)."""
    try:
        connection.ensure_connection()
        usable = connection.is_usable()
    except Exception:  # any driver error means "down"; the reason is not for the public
        return "down"
    if not usable:
        connection.close()  # the next request gets a new connection
        return "down"
    return "ok"


def broker_status() -> str:
    if celery_app.conf.task_always_eager:
        return "in-process"
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception:
        return "down"
    return "ok"


@require_GET
def healthz(request):
    checks = {"database": database_status(), "broker": broker_status()}
    healthy = all(value != "down" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "down", **checks}, status=200 if healthy else 503)
