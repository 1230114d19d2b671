"""Crash anywhere (issue 21 item 7) in `make bench`: `make chaos`'s mixed workload (payments, SEPA failures, our and
Dashboard refunds, disputes; about 2,000 events and their duplicates) while a random process — a web worker, a Celery
worker, PostgreSQL, Redis — is SIGKILLed ten times (tests/reliability/crash_anywhere.py, on a PostgreSQL cluster and a
Redis of its own). Target: 0 lost, 0 doubled, check_books clean.

It runs as its own process (`python -m tests.reliability crash_anywhere`, which writes bench/results/chaos.json) since
it starts and kills its own databases. Not in quick mode: CI's smoke run of the benchmarks stays short, and `make chaos`
runs every scenario.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.common import ROOT


def run(env: dict, *, quick: bool = False) -> dict:
    if quick:
        return {"run": False, "reason": "not in quick mode (make chaos runs it)"}
    child_env = {key: value for key, value in env.items() if key not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    written = ROOT / "bench" / "results" / "chaos.json"
    written.unlink(missing_ok=True)  # an earlier run's file must never be read as this run's
    output = subprocess.run([sys.executable, "-m", "tests.reliability", "crash_anywhere"], cwd=ROOT, env=child_env,
                            capture_output=True, text=True, timeout=1800)
    if not written.exists():
        raise RuntimeError(f"crash anywhere wrote no report (exit code {output.returncode}): {output.stderr[-2000:]}")
    reports = json.loads(written.read_text())
    report = reports[-1]
    details = report.get("details", {})
    return {"run": True, "exit_code": output.returncode, "scenario": report["scenario"], "sent": report.get("sent"),
            "stored": report.get("stored"), "processed": report.get("processed"), "lost": report["lost"], "doubled": report["doubled"],
            "violations": details.get("violations", []), "seed": details.get("seed"), "kills_by_target": details.get("kills_by_target"),
            "seconds_to_drained": details.get("seconds_to_drained"), "note": report.get("note", ""),
            "output_tail": output.stdout[-2000:] if output.returncode else ""}


def check(result: dict) -> list[str]:
    if not result["run"]:
        return []
    if result["lost"] or result["doubled"] or result["violations"] or result["exit_code"]:
        return [f"crash anywhere: {result['lost']} lost, {result['doubled']} doubled, books {result['violations'][:3] or 'clean'}"
                f" (exit code {result['exit_code']})"]
    return []


def table(result: dict) -> str:
    if not result["run"]:
        return f"Crash anywhere: {result['reason']}"
    met = "met" if not (result["lost"] or result["doubled"] or result["violations"]) else "MISSED"
    return "\n".join([
        "Crash anywhere (make chaos's mixed workload, 10 SIGKILLs of a web worker, a Celery worker, PostgreSQL or Redis)",
        f"{result['lost']} lost, {result['doubled']} doubled, check_books {'clean' if not result['violations'] else 'NOT clean'} "
        f"(target 0 / 0 / clean: {met}); {result['note']}",
    ])

