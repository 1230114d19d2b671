"""Running on several machines (README, Scaling): prepared statements can be turned off for PgBouncer in transaction
mode, and `docker compose up --scale worker=3` has nothing that only one container may have."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import django, json
django.setup()
from django.conf import settings
from django.db import connection
from billing.ledger import sql
from tests.factories import ProviderSettingFactory
from tests.helpers import make_event
from webhooks.services import store_event
connection.ensure_connection()
with connection.cursor() as cursor:
    cursor.execute("DEALLOCATE ALL")
import uuid
suffix = uuid.uuid4().hex[:12]
setting = ProviderSettingFactory(name=f"probe {suffix}", stripe_account_id=f"acct_probe{suffix}")
for _ in range(7):  # more than psycopg's default threshold of five executions
    store_event(setting, make_event("customer.created", {"id": "cus_probe", "object": "customer"}))
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM pg_prepared_statements")
    prepared = cursor.fetchone()[0]
print(json.dumps({"option": settings.DATABASES["default"]["OPTIONS"].get("prepare_threshold", "unset"),
                  "threshold": connection.connection.prepare_threshold, "prepared": prepared}))
"""


def probe(database_url: str, prepared: str) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "DB_PREPARED_STATEMENTS": prepared, "DJANGO_SETTINGS_MODULE": "config.settings",
           "CELERY_TASK_ALWAYS_EAGER": "true", "WEBHOOK_PUBLISH_IN_BACKGROUND": "false", "CELERY_BROKER_URL": "memory://"}
    output = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert output.returncode == 0, output.stderr[-3000:]
    return json.loads(output.stdout.strip().splitlines()[-1])


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_db_prepared_statements_false_turns_every_prepared_statement_off():
    """With the switch off (PgBouncer in transaction mode) no statement is prepared on the server, not even by psycopg's
    own threshold; on, the webhook insert is."""
    from django.db import connection

    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"
    off = probe(url, "false")
    assert off == {"option": None, "threshold": None, "prepared": 0}
    on = probe(url, "true")
    assert on["option"] == 0 and on["threshold"] == 0 and on["prepared"] >= 1


def test_the_worker_service_can_be_scaled():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    worker = compose["services"]["worker"]
    # A fixed container name or host port would make the second and third replica fail to start.
    assert "container_name" not in worker and "ports" not in worker and "hostname" not in worker
    # Each replica names itself after its container (%h, Celery's default), all share Redis and PostgreSQL.
    assert "-n " not in worker["command"]
    assert "redis:6379" in compose["x-app"]["environment"]["REDIS_URL"]
    assert "@db:5432/" in compose["x-app"]["environment"]["DATABASE_URL"]
