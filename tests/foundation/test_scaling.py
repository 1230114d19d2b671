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


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_three_workers_like_the_scaled_service_share_the_events_and_book_each_once(fake_stripe, settings, celery_conf):
    """What `docker compose up --scale worker=3` starts (`make scale-check` runs it with Docker), without Docker: the
    worker service's command three times, each with its own node name as its container's hostname would give it, on
    one Redis and one PostgreSQL. Events of several settings stored and published as the webhook view does: every one
    booked exactly once, and each worker took a share."""
    import shlex
    import tempfile

    import redis
    from django.db import connection

    from billing.models import Balance
    from tests.factories import InvoiceFactory, ProviderSettingFactory
    from tests.helpers import make_charge, make_event, stop_processes, wait_until
    from webhooks import services
    from webhooks.models import EventStatus, WebhookEvent

    broker = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    redis.Redis.from_url(broker).flushdb()
    settings.CELERY_BROKER_URL, settings.CELERY_TASK_ALWAYS_EAGER, settings.WEBHOOK_PUBLISH_IN_BACKGROUND = broker, False, True
    celery_conf(task_always_eager=False, broker_url=broker)
    services._publisher = None
    database = connection.settings_dict
    env = {**os.environ, "REDIS_URL": broker, "CELERY_BROKER_URL": broker, "CELERY_TASK_ALWAYS_EAGER": "false",
           "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"}
    command = shlex.split(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]["command"])
    assert command[:4] == ["celery", "-A", "config", "worker"]
    logs = [tempfile.NamedTemporaryFile("w+", suffix=f"-worker{index}.log") for index in range(3)]  # noqa: SIM115
    workers = [subprocess.Popen([sys.executable, "-m", *command, "--without-gossip", "--without-mingle", "-n", f"worker{index}@replica{index}"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT) for index, log in enumerate(logs)]
    try:
        wait_until(lambda: all("ready" in open(log.name).read() for log in logs), 60, "the three workers to start")  # noqa: SIM115
        invoices = [InvoiceFactory(amount="100.00", currency="EUR") for _ in range(300)]
        setting_list = [ProviderSettingFactory() for _ in range(3)]
        for index, invoice in enumerate(invoices):
            services.store_event(setting_list[index % 3], make_event(
                "charge.succeeded", make_charge(metadata={"invoice_id": str(invoice.pk)}, created=1_700_000_000 + index)))
        assert services._background_publisher().flush(timeout=30)
        events = WebhookEvent.objects.all()
        wait_until(lambda: not events.exclude(status=EventStatus.PROCESSED).exists(), 180, "the workers to drain the events")
    finally:
        stop_processes(*workers)
        services._publisher = None
        redis.Redis.from_url(broker).flushdb()
    assert {event.attempts for event in events} == {1}
    assert Balance.objects.count() == 300 and Balance.objects.values("invoice").distinct().count() == 300
    shares = [open(log.name).read().count("process_webhook_events[") // 2 for log in logs]  # noqa: SIM115 - received, succeeded
    print(f"\ntasks run per replica: {shares}")
    assert all(share > 0 for share in shares), f"tasks run per worker: {shares}"


def test_the_overrides_cover_every_service_they_must():
    """deploy/: the PgBouncer override sends every app process through PgBouncer in transaction mode with nothing the
    pooler would break (prepared statements, session settings); the local-images override replaces every image taken
    from Docker Hub. A service added to docker-compose.yml without its override entry fails here, not in a deployment."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    app_services = {name for name, service in compose["services"].items() if "build" in service}
    hub_images = {name for name, service in compose["services"].items() if "build" not in service}
    assert app_services == {"web", "worker", "documents", "beat"} and hub_images == {"db", "redis"}

    pooled = yaml.safe_load((ROOT / "deploy" / "docker-compose.pgbouncer.yml").read_text())
    for name in app_services:
        environment = pooled["services"][name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://") and "@pgbouncer:6432/" in environment["DATABASE_URL"]
        assert environment["DB_PREPARED_STATEMENTS"] == "false" and environment["WEBHOOK_ASYNC_COMMIT"] == "false"
        assert pooled["services"][name]["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
    bouncer = (ROOT / "deploy" / "local-images" / "pgbouncer-entrypoint.sh").read_text()
    assert "pool_mode = transaction" in bouncer and "ignore_startup_parameters = options" in bouncer
    role = (ROOT / "deploy" / "pgbouncer-role-timeouts.sql").read_text()
    # The same limits as the startup option PgBouncer drops (config/settings.py's defaults).
    assert "statement_timeout = '30s'" in role and "lock_timeout = '10s'" in role

    local = yaml.safe_load((ROOT / "deploy" / "local-images" / "docker-compose.local-images.yml").read_text())
    assert {name for name in local["services"] if "image" in local["services"][name]} == hub_images
    assert all(local["services"][name]["build"]["args"]["PYTHON_IMAGE"] for name in app_services)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in (ROOT / "Dockerfile").read_text()
