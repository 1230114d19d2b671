"""The benchmarks still work (smoke mode, tiny sizes): CI runs them, their numbers are not judged here."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.services
@pytest.mark.slow
def test_benchmarks_run_in_quick_mode():
    result = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for heading in ("Webhook ingest", "Event processing", "Time to books", "machine while the 90 % load was sent", "No tenant waits on another",
                    "Refund of a payment split",
                    "Payment page", "Payout reconciliation", "Finance dashboard", "Inbox retention", "Crash anywhere"):
        assert heading in result.stdout
