"""Fault injection with real processes (bounded): nothing answered 200 is lost, nothing is booked twice."""

import os

import pytest

from tests.reliability import harness

# About two minutes of real processes being killed: run by `make chaos` (RUN_CHAOS=1), not by every `make test`.
pytestmark = [pytest.mark.services, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("RUN_CHAOS") != "1", reason="fault injection runs with `make chaos` (RUN_CHAOS=1)")]


def check(report):
    table = harness.table([report])
    assert report.answered_200 >= 1, table
    assert report.stored >= report.answered_200, table
    assert report.processed == report.stored, table
    assert report.lost == 0 and report.doubled == 0, table


def test_redis_stopped_mid_burst():
    check(harness.redis_down_mid_burst(24))


def test_worker_killed_mid_batch():
    check(harness.worker_killed_mid_batch(30))


def test_postgres_unavailable_answers_503_then_recovers():
    report = harness.postgres_unavailable(12)
    check(report)
    assert report.answered_5xx >= 1  # never a 200 without the event stored
    assert "healthz while down: 503" in report.note and "healthz after: 200" in report.note
