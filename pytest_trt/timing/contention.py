"""How contended the host's CPUs were while something was timed: the kernel's own accounting.

A measurement taken while other work competed for the CPUs cannot tell a slower model from a busy
host. Linux says how much of the time runnable tasks waited for a CPU (pressure stall information,
``/proc/pressure/cpu``, "some"), how much a hypervisor took away (steal time, ``/proc/stat``) and
how many tasks were runnable (``procs_running``). Counters are read before and after a window;
``between`` turns the two readings into shares of that window. Where a file is missing (not Linux,
PSI off, a container that hides it) its figure is None and judges nothing. ``wait_for_quiet``
waits, a bounded time, for a window with none of it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PRESSURE_FILE = Path("/proc/pressure/cpu")
STAT_FILE = Path("/proc/stat")

# A window is contended past these (docs/regression.md, "Busy hosts", says how they were chosen).
MAX_PRESSURE = 0.10  # share of the window some runnable task waited for a CPU
MAX_STEAL = 0.05  # share of the CPUs' time a hypervisor gave to other guests
MAX_RUNNABLE_PER_CPU = 1.0  # runnable tasks beyond our own, per CPU, at either end of the window
QUIET_WINDOW_S = 0.25  # a window this long with no contention is quiet


@dataclass(frozen=True)
class CpuCounters:
    """One reading of the kernel's counters; None where the host does not expose one."""

    at: float  # time.monotonic()
    stall_us: int | None  # cumulative microseconds some task waited for a CPU
    steal_ticks: int | None  # cumulative clock ticks stolen, all CPUs
    total_ticks: int | None  # cumulative clock ticks, all CPUs, all states
    runnable: int | None  # tasks runnable now (this one included)
    own_running: int = 1  # of those, threads of this process (onnxruntime's pool spins between runs)


@dataclass(frozen=True)
class Contention:
    """Shares of one window: how much of it the CPUs were contended."""

    seconds: float
    pressure: float | None  # 0..1: share of the window some task waited for a CPU
    steal: float | None  # 0..1: share of CPU time stolen
    runnable_per_cpu: float | None  # other runnable tasks per CPU, the larger of the two ends

    def reasons(self) -> tuple[str, ...]:
        """Why this window cannot be judged, one phrase a figure past its limit; () when quiet."""
        found = []
        if self.pressure is not None and self.pressure > MAX_PRESSURE:
            found.append(f"tasks waited for a CPU {self.pressure:.0%} of the time (/proc/pressure/cpu)")
        if self.steal is not None and self.steal > MAX_STEAL:
            found.append(f"the hypervisor took {self.steal:.0%} of the CPU time (steal)")
        if self.runnable_per_cpu is not None and self.runnable_per_cpu > MAX_RUNNABLE_PER_CPU:
            found.append(f"{self.runnable_per_cpu:.1f} other runnable tasks per CPU")
        return tuple(found)

    @property
    def contended(self) -> bool:
        return bool(self.reasons())


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _stall_us(text: str | None) -> int | None:
    for line in (text or "").splitlines():
        if line.startswith("some "):
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "total" and value.isdigit():
                    return int(value)
    return None


def _stat_counters(text: str | None) -> tuple[int | None, int | None, int | None]:
    """(steal ticks, total ticks, runnable tasks) from /proc/stat."""
    steal = total = runnable = None
    for line in (text or "").splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu" and len(fields) > 8:
            ticks = [int(v) for v in fields[1:] if v.isdigit()]
            # guest time is already counted in user time: only the first eight fields add up
            total, steal = sum(ticks[:8]), ticks[7]
        elif fields and fields[0] == "procs_running" and len(fields) == 2 and fields[1].isdigit():
            runnable = int(fields[1])
    return steal, total, runnable


def _own_running() -> int:
    """Threads of this process in state R (running or runnable), at least this one."""
    count = 0
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return 1
    for task in tasks:
        stat = _read_text(task / "stat") or ""
        # the state follows the command name, which is in parentheses and may hold spaces
        if stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] == "R":
            count += 1
    return max(count, 1)


def read_counters() -> CpuCounters:
    steal, total, runnable = _stat_counters(_read_text(STAT_FILE))
    stall = _stall_us(_read_text(PRESSURE_FILE))
    return CpuCounters(time.monotonic(), stall, steal, total, runnable, _own_running())


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def between(before: CpuCounters, after: CpuCounters) -> Contention:
    """The window from ``before`` to ``after``."""
    seconds = max(after.at - before.at, 1e-9)
    pressure = None
    if before.stall_us is not None and after.stall_us is not None:
        pressure = min(1.0, max(0.0, (after.stall_us - before.stall_us) / 1e6 / seconds))
    steal = None
    if None not in (before.steal_ticks, after.steal_ticks, before.total_ticks, after.total_ticks):
        elapsed = (after.total_ticks or 0) - (before.total_ticks or 0)
        stolen = (after.steal_ticks or 0) - (before.steal_ticks or 0)
        steal = stolen / elapsed if elapsed > 0 else 0.0
    runnable = None
    others = [c.runnable - c.own_running for c in (before, after) if c.runnable is not None]
    if others:
        runnable = max(0, *others) / _cpus()
    return Contention(seconds, pressure, steal, runnable)


def wait_for_quiet(limit_s: float) -> bool:
    """Wait up to ``limit_s`` for a QUIET_WINDOW_S window with no contention; True once quiet."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = read_counters()
        time.sleep(QUIET_WINDOW_S)
        if not between(before, read_counters()).contended:
            return True
    return False
