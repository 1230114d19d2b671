"""bench/cpu_shares.py: the CPU printed beside time to books goes to the process group that spent it."""

import subprocess
import sys
import time

from bench.cpu_shares import CpuShares


def busy_loop(seconds: float) -> str:
    return f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"


def shares_while(code: str, group: str, block_seconds: float) -> dict:
    """CpuShares of a block of `block_seconds` while `code` runs as the leader of its own session, named `group`."""
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        with CpuShares({group: process.pid}) as cpu:
            time.sleep(block_seconds)
        return cpu.result()
    finally:
        process.kill()
        process.wait()


def test_a_busy_process_in_its_own_session_shows_in_its_group_and_in_the_machine_total():
    burner = subprocess.Popen([sys.executable, "-c", busy_loop(1.5)], start_new_session=True)
    with CpuShares({"burner": burner.pid}) as cpu:
        burner.wait(timeout=30)
    result = cpu.result()
    # It ended inside the block and was reaped by this process (no group): its CPU is "other", from the machine total.
    assert result["busy_cores"] >= 0.3
    assert result["other_cores"] >= 0.3 and result["burner_cores"] == 0
    assert set(result) == {"cores", "busy_cores", "burner_cores", "postgres_cores", "redis_cores", "other_cores", "interrupt_cores", "stolen_cores"}
    assert 0 <= result["interrupt_cores"] + result["stolen_cores"] <= result["busy_cores"]


def test_a_running_group_is_counted_as_its_own():
    result = shares_while(busy_loop(10), "burner", 1.0)
    assert result["burner_cores"] >= 0.3  # a busy loop takes most of a core, even on a shared machine
    assert result["busy_cores"] + 0.1 >= result["burner_cores"]


def test_a_child_that_ended_counts_in_its_parents_group():
    """A PostgreSQL backend that closes or a gunicorn worker that is replaced during the run: reaped by its parent, its
    CPU shows in the parent's group, not in "other"."""
    parent = f"import subprocess, sys, time\ntime.sleep(0.3)\nsubprocess.run([sys.executable, '-c', {busy_loop(1.0)!r}])\ntime.sleep(10)"
    result = shares_while(parent, "server", 2.5)
    assert result["server_cores"] >= 0.25  # about 1 s of CPU in 2.5 s, whatever else the machine does
