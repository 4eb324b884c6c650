"""The choice of CPU for probed measurements on many-core hosts (host_cpu.py)."""

from __future__ import annotations

import os

import pytest

from pytest_trt.timing import host_cpu
from pytest_trt.timing.measure import HostTimedSession

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="this platform cannot pin threads")


class FakeAffinity:
    """os.sched_get/setaffinity over ``cpus``, remembering where the thread was sent."""

    def __init__(self, cpus: set[int]) -> None:
        self.current = set(cpus)
        self.moves: list[set[int]] = []

    def get(self, pid: int) -> set[int]:
        return set(self.current)

    def set(self, pid: int, cpus: set[int]) -> None:
        self.current = set(cpus)
        self.moves.append(set(cpus))


class ProbeBySpeed:
    """A probe whose time depends on the CPU the (fake) affinity pins the thread to."""

    def __init__(self, affinity: FakeAffinity, ms: dict[int, float]) -> None:
        self.affinity, self.ms = affinity, ms

    def probe(self) -> float:
        (cpu,) = self.affinity.current
        return self.ms[cpu]


@pytest.fixture
def affinity(monkeypatch: pytest.MonkeyPatch) -> FakeAffinity:
    fake = FakeAffinity(set(range(8)))
    # Under pytest-xdist this test's own worker would otherwise choose among its share only.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", fake.get)
    monkeypatch.setattr(os, "sched_setaffinity", fake.set)
    return fake


def test_each_xdist_worker_chooses_among_its_own_share_of_the_cpus():
    cpus = set(range(8))
    assert host_cpu.worker_share(cpus, {}) == list(range(8))
    shares = [host_cpu.worker_share(cpus, {"PYTEST_XDIST_WORKER": f"gw{i}", "PYTEST_XDIST_WORKER_COUNT": "3"})
              for i in range(3)]
    assert shares == [[0, 3, 6], [1, 4, 7], [2, 5]]
    # More workers than CPUs: a worker without a share chooses among all of them.
    assert host_cpu.worker_share({0, 1}, {"PYTEST_XDIST_WORKER": "gw2", "PYTEST_XDIST_WORKER_COUNT": "3"}) == [0, 1]
    assert host_cpu.worker_share(cpus, {"PYTEST_XDIST_WORKER": "master", "PYTEST_XDIST_WORKER_COUNT": "x"}) == list(range(8))


def test_the_fastest_cpu_is_chosen_and_the_thread_put_back(affinity: FakeAffinity):
    speeds = {cpu: 0.065 for cpu in range(8)} | {5: 0.040, 6: 0.041}
    assert host_cpu.fastest_cpu(list(range(8)), ProbeBySpeed(affinity, speeds)) == 5  # type: ignore[arg-type]
    assert affinity.moves[:8] == [{cpu} for cpu in range(8)]
    assert affinity.current == set(range(8))


def test_the_choice_is_made_again_for_each_measurement(affinity: FakeAffinity):
    # Which vCPUs run slow changes from one second to the next.
    probe = ProbeBySpeed(affinity, {cpu: 0.05 + cpu / 1000 for cpu in range(8)})
    assert host_cpu.measuring_cpu(probe) == 0  # type: ignore[arg-type]
    probe.ms = {cpu: 0.05 - cpu / 1000 for cpu in range(8)}
    assert host_cpu.measuring_cpu(probe) == 7  # type: ignore[arg-type]


def test_on_many_cpus_a_bounded_number_is_timed(affinity: FakeAffinity):
    affinity.current = set(range(64))
    probe = ProbeBySpeed(affinity, {cpu: 0.04 for cpu in range(64)})
    assert host_cpu.measuring_cpu(probe) in range(64)  # type: ignore[arg-type]
    assert len(affinity.moves) == host_cpu.MAX_SCANNED + 1  # each timed CPU, then back


def test_on_few_cpus_the_scheduler_keeps_its_choice(affinity: FakeAffinity):
    affinity.current = set(range(host_cpu.MIN_CPUS - 1))
    assert host_cpu.measuring_cpu(ProbeBySpeed(affinity, {})) is None  # type: ignore[arg-type]
    assert affinity.moves == []


def test_a_probed_session_runs_on_the_chosen_cpu_until_closed(monkeypatch: pytest.MonkeyPatch):
    # Real affinity of this thread: pinned to one of its CPUs while the session lives.
    before = os.sched_getaffinity(0)
    cpu = max(before)
    monkeypatch.setattr(host_cpu, "measuring_cpu", lambda probe: cpu)
    session = HostTimedSession(lambda: None, probe=True)
    try:
        assert os.sched_getaffinity(0) == {cpu}
        assert session.run(5).probe is not None
    finally:
        session.close()
    assert os.sched_getaffinity(0) == before
    # Unprobed sessions (multi-threaded or GPU backends) are never pinned.
    unprobed = HostTimedSession(lambda: None)
    assert os.sched_getaffinity(0) == before
    unprobed.close()
