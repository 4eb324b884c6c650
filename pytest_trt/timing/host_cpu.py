"""Which CPU a probed measurement runs on, on many-core hosts where that decides its speed.

On a 16-vCPU cloud host, at any moment some of the virtual CPUs (from 3 to 15 of them in one
log) run 1.4-2x slower than the rest, which ones changing from one second to the next, and a
process tends to stay on the one it landed on (one pytest process timed every probe at 0.065 ms,
the next at 0.040 ms). The probe and the model do not slow down alike between vCPUs, so a
baseline recorded on a slow vCPU misjudges runs on fast ones. So before each probed measurement,
the probe is timed briefly on each CPU the process may use, and the measurement runs on the
fastest; pytest-xdist workers choose among disjoint shares of the CPUs, so that they never meet
on one. On hosts with fewer than ``MIN_CPUS`` the scheduler's choice is kept: pinned to one of
two cores, a measurement could not move away from a neighbour the scheduler would otherwise move
it from.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

from pytest_trt.timing.host_probe import HostProbe

MIN_CPUS = 4
PROBES_PER_CPU = 10  # about 0.5 ms per CPU: enough to tell a 1.5x slower one
MAX_SCANNED = 16  # CPUs timed per choice, drawn at random beyond that, to bound its cost


def worker_share(cpus: set[int], env: Mapping[str, str] = os.environ) -> list[int]:
    """The CPUs this process chooses among: all of them, or under pytest-xdist every n-th one
    from the worker's index (gw0, gw1, ...), so that workers' choices never coincide."""
    ordered = sorted(cpus)
    name, count = env.get("PYTEST_XDIST_WORKER", ""), env.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (name.startswith("gw") and name[2:].isdigit() and count.isdigit() and int(count) > 0):
        return ordered
    share = ordered[int(name[2:]) % int(count)::int(count)]
    return share or ordered


def fastest_cpu(cpus: list[int], probe: HostProbe) -> int | None:
    """The CPU among ``cpus`` on which the probe's floor is lowest, None if the thread could be
    moved to none of them (the calling thread's CPUs are restored afterwards)."""
    before = os.sched_getaffinity(0)
    floors = {}
    try:
        for cpu in cpus:
            try:
                os.sched_setaffinity(0, {cpu})
            except OSError:  # e.g. a CPU taken offline since the affinity was read
                continue
            floors[cpu] = min(probe.probe() for _ in range(PROBES_PER_CPU))
    finally:
        os.sched_setaffinity(0, before)
    return min(floors, key=floors.__getitem__) if floors else None


def measuring_cpu(probe: HostProbe) -> int | None:
    """The CPU a probed measurement starting now should run on; None where the platform cannot
    pin threads or the process may use fewer than MIN_CPUS CPUs."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else set()
    if len(allowed) < MIN_CPUS:
        return None
    share = worker_share(allowed)
    return fastest_cpu(random.sample(share, MAX_SCANNED) if len(share) > MAX_SCANNED else share, probe)


class PinnedThread:
    """Runs the calling thread on one CPU until ``release()``, then restores its CPUs."""

    def __init__(self, cpu: int) -> None:
        self._before = os.sched_getaffinity(0)
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:  # the CPU went away since it was chosen: measure where the thread is
            self._before = set()

    def release(self) -> None:
        if self._before:
            os.sched_setaffinity(0, self._before)
            self._before = set()
