"""timing.contention: the kernel's CPU-contention counters read over a window."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pytest_trt.timing import contention
from pytest_trt.timing.contention import Contention, between, read_counters

PRESSURE = "some avg10=8.57 avg60=7.43 avg300=7.59 total={stall}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
STAT = "cpu  {user} 0 100 5000 10 0 5 {steal} 0 0\ncpu0 1 0 1 1 0 0 0 0 0 0\nprocs_running {running}\nprocs_blocked 0\n"


def fake_host(monkeypatch, tmp_path, *, stall: int, user: int, steal: int, running: int) -> None:
    (tmp_path / "pressure").write_text(PRESSURE.format(stall=stall))
    (tmp_path / "stat").write_text(STAT.format(user=user, steal=steal, running=running))
    monkeypatch.setattr(contention, "PRESSURE_FILE", tmp_path / "pressure")
    monkeypatch.setattr(contention, "STAT_FILE", tmp_path / "stat")
    monkeypatch.setattr(contention, "_cpus", lambda: 2)


def test_a_busy_window_names_each_figure_past_its_limit(monkeypatch, tmp_path):
    fake_host(monkeypatch, tmp_path, stall=1_000_000, user=1000, steal=0, running=1)
    before = read_counters()
    fake_host(monkeypatch, tmp_path, stall=1_500_000, user=1800, steal=200, running=6)
    after = read_counters()
    window = between(replace(before, at=0.0), replace(after, at=1.0))
    assert window.pressure == pytest.approx(0.5)
    assert window.steal == pytest.approx(200 / 1000)
    assert window.runnable_per_cpu == pytest.approx(2.5)
    reasons = window.reasons()
    assert reasons == (
        "tasks waited for a CPU 50% of the time (/proc/pressure/cpu)",
        "the hypervisor took 20% of the CPU time (steal)",
        "2.5 other runnable tasks per CPU",
    )
    assert window.contended


def test_a_quiet_window_has_no_reason():
    quiet = Contention(1.0, pressure=0.01, steal=0.0, runnable_per_cpu=0.5)
    assert quiet.reasons() == () and not quiet.contended


def test_a_host_without_the_files_judges_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(contention, "PRESSURE_FILE", tmp_path / "missing")
    monkeypatch.setattr(contention, "STAT_FILE", tmp_path / "missing-too")
    window = between(read_counters(), read_counters())
    assert (window.pressure, window.steal, window.runnable_per_cpu) == (None, None, None)
    assert not window.contended
