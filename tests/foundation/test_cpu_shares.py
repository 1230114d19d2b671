"""bench/cpu_shares.py: the CPU printed beside time to books goes to the process group that spent it."""

import subprocess
import sys

from bench.cpu_shares import CpuShares


def test_a_busy_process_in_its_own_session_shows_in_its_group_and_in_the_machine_total():
    burner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end: pass"],
                              start_new_session=True)
    with CpuShares({"burner": burner.pid}) as cpu:
        burner.wait(timeout=30)
    result = cpu.result()
    # It ended inside the block: its CPU is "other" then, read from the machine total. Keep one alive to see its group.
    assert result["busy_cores"] >= 0.3
    assert result["other_cores"] >= 0.3 and result["burner_cores"] == 0
    assert set(result) == {"cores", "busy_cores", "burner_cores", "postgres_cores", "redis_cores", "other_cores", "interrupt_cores", "stolen_cores"}
    assert 0 <= result["interrupt_cores"] + result["stolen_cores"] <= result["busy_cores"]


def test_a_running_group_is_counted_as_its_own():
    burner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.monotonic() + 10\nwhile time.monotonic() < end: pass"],
                              start_new_session=True)
    try:
        with CpuShares({"burner": burner.pid}) as cpu:
            subprocess.run([sys.executable, "-c", "import time; time.sleep(1.0)"], check=True)
        result = cpu.result()
    finally:
        burner.kill()
        burner.wait()
    assert result["burner_cores"] >= 0.3  # a busy loop takes most of a core, even on a shared machine
    assert result["busy_cores"] + 0.1 >= result["burner_cores"]


def test_a_child_that_ended_counts_in_its_parents_group():
    """A PostgreSQL backend that closes or a gunicorn worker that is replaced during the run: reaped by its parent, its
    CPU shows in the parent's group, not in "other"."""
    child = "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass"
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time\ntime.sleep(0.3)\n"
                               f"subprocess.run([sys.executable, '-c', {child!r}])\ntime.sleep(10)"], start_new_session=True)
    try:
        with CpuShares({"server": parent.pid}) as cpu:
            subprocess.run([sys.executable, "-c", "import time; time.sleep(2.5)"], check=True)
        result = cpu.result()
    finally:
        parent.kill()
        parent.wait()
    assert result["server_cores"] >= 0.25  # about 1 s of CPU in 2.5 s, whatever else the machine does
