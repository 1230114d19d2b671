"""/healthz reports the database and the broker, and answers 503 when one is down."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


@pytest.mark.services
def test_runs_on_postgresql():
    assert connection.vendor == "postgresql"


@pytest.mark.services
def test_healthz_reports_database_and_broker(client, celery_conf):
    celery_conf(task_always_eager=False)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_in_process_mode_without_broker(client, celery_conf):
    celery_conf(task_always_eager=True)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["broker"] == "in-process"


def test_healthz_answers_503_when_broker_is_down(client, celery_conf):
    # A port nothing listens on: the check must fail fast and say so.
    celery_conf(task_always_eager=False, broker_url="redis://127.0.0.1:6399/0")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == "down"
    assert response.json()["database"] == "ok"


def test_healthz_is_get_only(client):
    assert client.post("/healthz").status_code == 405
