"""PostgreSQL crashes right after asynchronously committed event processing: nothing is lost or doubled.

Event processing commits with synchronous_commit = off (webhooks.services.replayable_commits). This test
makes that bite: a private PostgreSQL cluster whose WAL writer flushes only every 10 s processes a burst of
payment events, is killed (pg_ctl stop -m immediate, no shutdown checkpoint) and restarted; crash recovery
drops the commits that were not flushed. Then the books must still agree with the inbox (an event marked
processed has its balances; one whose processing was lost is `received` again), and processing what is left
(what beat's requeue does) must give exactly the expected books.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.harness import PrivateCluster, pg_bin

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.services, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("RUN_CHAOS") != "1", reason="fault injection runs with `make chaos` (RUN_CHAOS=1)")]


BURST = """
import json
from decimal import Decimal
from tests.factories import InvoiceFactory, ProviderSettingFactory
from tests.helpers import make_charge, make_event
from webhooks import services, tasks

setting = ProviderSettingFactory()
event_ids, expected = [], {}
for index in range(COUNT):
    invoice = InvoiceFactory(amount=Decimal("100.00"), currency="EUR")
    charge = make_charge(metadata={"invoice_id": str(invoice.pk)}, created=1_700_000_000 + index)
    fails = index % 3 == 2
    for event in (make_event("charge.pending", {**charge, "status": "pending"}),
                  make_event("charge.failed" if fails else "charge.succeeded", {**charge, "status": "failed" if fails else "succeeded"})):
        event_ids.append(services.store_event(setting, event)[0])  # stored like the view does: synchronous commits
    expected[invoice.pk] = "0.00" if fails else "-100.00"
print(json.dumps({"expected": {str(k): v for k, v in expected.items()}}))
"""

STATE = """
import json
from decimal import Decimal
from django.db.models import Sum
from billing.models import Balance, Invoice
from payments.models import PaymentTransaction
from webhooks.models import WebhookEvent
events = {e.pk: (e.status, e.event["data"]["object"]["id"], e.type) for e in WebhookEvent.objects.all()}
transactions = dict(PaymentTransaction.objects.values_list("charge_id", "status"))
balances = {}
for b in Balance.objects.all():
    balances.setdefault(b.transaction_number, []).append(f"{b.amount:.2f}")
linked = {str(i.pk): f'{Balance.objects.filter(invoice=i).aggregate(t=Sum("amount"))["t"] or 0:.2f}' for i in Invoice.objects.all()}
print(json.dumps({"events": {str(k): v for k, v in events.items()}, "transactions": transactions, "balances": balances,
                  "linked": linked}))
"""

PROCESS = """
import json
from webhooks import tasks
from webhooks.models import WebhookEvent
todo = list(WebhookEvent.objects.filter(status="received").order_by("id").values_list("id", flat=True))
for start in range(0, len(todo), 20):
    tasks.process_webhook_events.apply(args=[todo[start:start + 20]])  # the worker's task, asynchronous commits
    print(json.dumps(todo[start:start + 20]), flush=True)  # committed, as far as this worker knows
"""

FINISH = """
from webhooks import tasks
from webhooks.models import WebhookEvent
todo = list(WebhookEvent.objects.filter(status="received").values_list("id", flat=True))
for start in range(0, len(todo), 20):
    tasks.process_webhook_events.apply(args=[todo[start:start + 20]])
print("{}")
"""


def script_env(url: str) -> dict:
    # No broker: stored events wait in the inbox (their publish fails in the background) until a script processes them.
    return {**os.environ, "DATABASE_URL": url, "CELERY_TASK_ALWAYS_EAGER": "false", "CELERY_BROKER_URL": "redis://127.0.0.1:6390/0",
            "WEBHOOK_ASYNC_COMMIT": "true", "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_LEVEL": "ERROR"}


def django_script(url: str, script: str, **values) -> dict:
    for name, value in values.items():
        script = script.replace(name, repr(value))
    output = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=script_env(url), capture_output=True,
                            text=True, timeout=300, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def wait_until_processed(cluster: PrivateCluster, at_least: int, timeout: float = 120) -> None:
    import time

    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres", autocommit=True) as conn:
        while time.monotonic() < deadline:
            done = conn.execute("SELECT count(*) FROM webhooks_webhookevent WHERE status = 'processed'").fetchone()[0]
            if done >= at_least:
                return
            time.sleep(0.02)
    raise AssertionError(f"fewer than {at_least} events processed within {timeout} s")


def consistent(state: dict) -> list[str]:
    """The books agree with the inbox: a charge whose last event is processed has its outcome booked."""
    problems = []
    for status, charge_id, event_type in state["events"].values():
        if status != "processed":
            continue
        booked = state["balances"].get(charge_id, [])
        if event_type == "charge.succeeded" and (booked != ["-100.00"] or state["transactions"].get(charge_id) != "succeeded"):
            problems.append(f"{charge_id}: succeeded event processed but books say {booked} / {state['transactions'].get(charge_id)}")
        if event_type == "charge.failed" and (booked or state["transactions"].get(charge_id) != "failed"):
            problems.append(f"{charge_id}: failed event processed but books say {booked} / {state['transactions'].get(charge_id)}")
    return problems


def test_a_postgresql_crash_after_asynchronous_commits_loses_and_doubles_nothing():
    bin_dir = pg_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    cluster = PrivateCluster(bin_dir)
    try:
        cluster.start()
        env = {**os.environ, "DATABASE_URL": cluster.url}
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
        expected = django_script(cluster.url, BURST, COUNT=150)["expected"]
        processing = subprocess.Popen([sys.executable, "manage.py", "shell", "-c", PROCESS], cwd=ROOT, env=script_env(cluster.url),
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            wait_until_processed(cluster, at_least=60)
            cluster.crash()  # mid-burst: commits the WAL writer had not flushed yet are gone after recovery
        finally:
            reported, _ = processing.communicate(timeout=60)  # it fails on the lost connection, as a worker would
        believed_done = {str(event_id) for line in reported.splitlines() if line.startswith("[") for event_id in json.loads(line)}
        cluster.start()
        after_crash = django_script(cluster.url, STATE)
        assert consistent(after_crash) == []
        undone = sorted(event_id for event_id in believed_done if after_crash["events"][event_id][0] == "received")
        print(f"events processed before the crash: {len(believed_done)} reported by the worker; undone by the crash: {len(undone)}")
        assert undone, "the crash undid no processing: this run did not exercise the lost-commit case"
        django_script(cluster.url, FINISH)  # what beat's requeue does
        final = django_script(cluster.url, STATE)
        assert {status for status, _, _ in final["events"].values()} == {"processed"}
        assert consistent(final) == []
        assert final["linked"] == expected
    finally:
        cluster.destroy()
