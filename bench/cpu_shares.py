"""Where the machine's CPU went during a measurement: cores busy in all, and the shares of process groups (the web
server's session, the worker's, PostgreSQL's processes), read from /proc before and after. Printed beside a latency
figure, it tells a slow code path from a machine that is simply full (issue 21: each figure with what explains it)."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
# Servers the benchmarks share with the app, by process name.
BY_NAME = {"postgres": "postgres", "redis-server": "redis"}


def _machine_seconds() -> tuple[float, float, float]:
    """(busy, of which interrupts, of which stolen) CPU seconds of the machine since boot. Interrupt time (irq and
    softirq: much of it the kernel's loopback TCP) belongs to no process; stolen time is the hypervisor's other guests."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]] + [0] * 8
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICKS, (irq + softirq) / TICKS, steal / TICKS


def _process_seconds() -> dict[int, tuple[str, int, float]]:
    """pid -> (command name, session id, CPU seconds) of every process still running. The seconds include those of its
    children that ended and were reaped (cutime, cstime): PostgreSQL backends that closed and gunicorn workers that were
    replaced show up in their parent's figure."""
    processes = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name, rest = raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()
        processes[int(entry.name)] = (name, int(rest[3]), sum(int(value) for value in rest[11:15]) / TICKS)
    return processes


class CpuShares:
    """`with CpuShares({"web": server.pid, "worker": worker.pid}) as cpu: ...`, then `cpu.result()`: cores busy during
    the block, in all and per group; a group is a session (processes started with start_new_session=True), plus
    "postgres" and "redis" (every process of that name) and "other" (the rest: other processes, interrupt time and
    stolen time, which are also given on their own). A process that ended in the block counts in its parent's group
    (a closed PostgreSQL backend in "postgres"); one whose parent is in another group, in that one."""

    def __init__(self, sessions: dict[str, int]):
        self.sessions = sessions

    def _group(self, name: str, session: int) -> str:
        if name in BY_NAME:
            return BY_NAME[name]
        return next((group for group, leader in self.sessions.items() if session == leader), "other")

    def __enter__(self):
        self.started, self.machine_before, self.before = time.monotonic(), _machine_seconds(), _process_seconds()
        return self

    def __exit__(self, *exc):
        self.wall, self.machine_after, self.after = time.monotonic() - self.started, _machine_seconds(), _process_seconds()
        return False

    def result(self) -> dict:
        busy, interrupts, stolen = ((after - before) / self.wall for after, before in zip(self.machine_after, self.machine_before, strict=True))
        spent: dict[str, float] = defaultdict(float)
        for pid, (name, session, seconds) in self.after.items():
            previous = self.before.get(pid)
            spent[self._group(name, session)] += seconds - previous[2] if previous and previous[0] == name else seconds
        # A process that ended meanwhile reaches its parent's figure whole, including what it spent before the block.
        for pid, (name, session, seconds) in self.before.items():
            if pid not in self.after or self.after[pid][0] != name:
                spent[self._group(name, session)] -= seconds
        # "other" is what the machine was busy with beyond the named groups, interrupts and stolen time included.
        groups = {group: max(spent[group], 0.0) / self.wall for group in (*self.sessions, *BY_NAME.values())}
        shares = {group: round(cores, 2) for group, cores in groups.items()}
        shares["other"] = round(max(busy - sum(groups.values()), 0.0), 2)
        return {"cores": os.cpu_count(), "busy_cores": round(busy, 2), **{f"{group}_cores": cores for group, cores in shares.items()},
                "interrupt_cores": round(interrupts, 2), "stolen_cores": round(stolen, 2)}
