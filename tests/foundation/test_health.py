"""/healthz reports the database and the broker, and answers 503 when one is down."""

import pytest
from django.db import connection

from config.celery import app as celery_app

pytestmark = pytest.mark.django_db


@pytest.mark.services
def test_runs_on_postgresql():
    assert connection.vendor == "postgresql"


@pytest.mark.services
def test_healthz_reports_database_and_broker(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_in_process_mode_without_broker(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["broker"] == "in-process"


def test_healthz_answers_503_when_broker_is_down(client, settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    # A port nothing listens on: the check must fail fast and say so.
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:6399/0")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == "down"
    assert response.json()["database"] == "ok"


def test_healthz_is_get_only(client):
    assert client.post("/healthz").status_code == 405
