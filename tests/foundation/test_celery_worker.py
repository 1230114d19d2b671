"""A task round trip through a real Celery worker process on Redis."""

import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from celery import Celery

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/9"


@pytest.mark.services
@pytest.mark.slow
def test_task_round_trip_through_a_real_worker(tmp_path):
    env = {**os.environ, "REDIS_URL": BROKER, "CELERY_BROKER_URL": BROKER, "CELERY_RESULT_BACKEND": BROKER,
           "CELERY_TASK_ALWAYS_EAGER": "false"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=WARNING",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", f"roundtrip-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    client = Celery("roundtrip-client", broker=BROKER, backend=BROKER)
    try:
        result = client.send_task("config.ping", args=["hello"])
        assert result.get(timeout=60) == "hello"
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        client.close()
    # The worker shut down cleanly on SIGTERM (warm shutdown).
    assert worker.returncode in (0, -15)


@pytest.mark.services
@pytest.mark.slow
def test_a_real_worker_redacts_secrets_in_its_logs():
    """Celery replaces the root logger's handlers unless setup_logging is connected: the worker must log through
    Django's LOGGING, whose filter masks Stripe secrets (providers.logging). The worker logs a task's return value."""
    secret = "sk_test_" + secrets.token_hex(12)
    env = {**os.environ, "REDIS_URL": BROKER, "CELERY_BROKER_URL": BROKER, "CELERY_RESULT_BACKEND": BROKER,
           "CELERY_TASK_ALWAYS_EAGER": "false", "LOG_LEVEL": "INFO"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", f"redaction-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(worker.stdout.readline, "")), daemon=True)
    reader.start()
    client = Celery("redaction-client", broker=BROKER, backend=BROKER)
    try:
        assert client.send_task("config.ping", args=[secret]).get(timeout=60) == secret
        deadline = time.monotonic() + 30  # the worker logs the value just after storing the result
        while not any("config.ping" in line and "succeeded" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        reader.join(timeout=10)
        client.close()
    output = "".join(lines)
    assert any("config.ping" in line and "succeeded" in line for line in lines), output[-3000:]
    assert secret not in output and "sk_***" in output, output[-3000:]


def test_celery_configuration_for_payments_work():
    from config.celery import app

    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit and conf.task_soft_time_limit
    assert time.time()  # beat schedule names real task paths
    for entry in conf.beat_schedule.values():
        assert entry["task"].count(".") >= 2
