"""Shared plumbing of the benchmarks: processes, ports, percentiles, the benchmark database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from devtools.production_env import local_production_env

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/billing_bench"
BENCH_REDIS_URL = "redis://127.0.0.1:6379/12"


def bench_env() -> dict:
    """Environment of every process of a benchmark run: its own database and Redis db."""
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", BENCH_DATABASE_URL),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", BENCH_REDIS_URL),
        "CELERY_BROKER_URL": os.environ.get("BENCH_REDIS_URL", BENCH_REDIS_URL),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING",
        **local_production_env(),
    })
    return env


def prepare_database(env: dict) -> None:
    """A fresh benchmark database for every run (runs must not see each other's rows), migrated."""
    import psycopg

    name = env["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    flush_broker(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)


def start_gunicorn(port: int, env: dict, workers: int = 2) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--worker-class", "sync", "--log-level", "warning", "--timeout", "60"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )


def flush_broker(env: dict) -> None:
    """Start from an empty queue: the ingest benchmark leaves its events queued (no worker runs there)."""
    import redis

    redis.Redis.from_url(env["REDIS_URL"]).flushdb()


def start_celery_worker(env: dict, *, concurrency: int = 1, name: str = "bench") -> subprocess.Popen:
    log = open(ROOT / "bench" / "results" / f"worker-{name}.log", "w")  # noqa: SIM115 - lives as long as the worker
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=WARNING", f"--concurrency={concurrency}",
         *([f"--pool={os.environ['BENCH_POOL']}"] if os.environ.get("BENCH_POOL") else []),
         "--without-gossip", "--without-mingle", "-X", "documents", "-n", f"{name}-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


class QueryCounter(list):
    """A database execute wrapper that records the statements (cheaply: no formatting)."""

    def __call__(self, execute, sql, params, many, context):
        self.append(sql)
        return execute(sql, params, many, context)


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def mix_events(invoice_ids: list[int]) -> list[dict]:
    """The processing benchmark's mix (card, SEPA ok, SEPA failed, card + Dashboard refund), in sending order."""
    from tests.helpers import make_charge, make_event

    events = []
    for index, invoice_id in enumerate(invoice_ids):
        charge = make_charge(metadata={"invoice_id": str(invoice_id)}, status="succeeded", created=1_700_000_000 + index)
        kind = index % 4
        if kind == 0:
            events.append(make_event("charge.succeeded", charge))
        elif kind in (1, 2):
            events += [make_event("charge.pending", {**charge, "status": "pending"}),
                       make_event("charge.failed" if kind == 2 else "charge.succeeded", {**charge, "status": "failed" if kind == 2 else "succeeded"})]
        else:
            refund = {"id": f"re_mix{uuid.uuid4().hex[:16]}", "object": "refund", "amount": 2500, "currency": "eur", "charge": charge["id"],
                      "status": "succeeded", "created": 1_700_000_500 + index, "metadata": {}}
            events += [make_event("charge.succeeded", charge),
                       make_event("charge.refunded", {**charge, "refunds": {"object": "list", "data": [refund], "has_more": False}},
                                  api_version="2019-02-19")]
    return events
