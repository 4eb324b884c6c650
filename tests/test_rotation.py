"""Sessions timed in turns over one window (timing/rotation.py), driven by scripted sessions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_measure import FakeRunner, ScriptedSession, constant, settings

from pytest_trt.backends.base import IterationTimes
from pytest_trt.timing import rotation
from pytest_trt.timing.rotation import SHARE, TURN_MS, measure_rotation

FEED = {"x": np.zeros(1)}


class LoggedSession(ScriptedSession):
    """A scripted session that writes its name in a shared log at every chunk."""

    def __init__(self, name: str, log: list[str], ms: float, **kw: Any) -> None:
        super().__init__(constant(ms), **kw)
        self.name, self.log = name, log

    def run(self, iterations: int) -> IterationTimes:
        self.log.append(self.name)
        return super().run(iterations)


def sessions(log: list[str], *pace_ms: float, clock: str = "host") -> list[LoggedSession]:
    return [LoggedSession(str(i), log, ms, clock=clock) for i, ms in enumerate(pace_ms)]


def test_sessions_take_turns_over_the_whole_window():
    log: list[str] = []
    made = sessions(log, 0.1, 0.1, 0.1)
    timed = measure_rotation([FakeRunner(s) for s in made], FEED, settings(min_iterations=20, min_duration_ms=40.0))
    # One chunk each to read its pace (no warm-up asked), then turns in order until each is done.
    assert log[:3] == ["0", "1", "2"]
    turns = log[3:]
    assert turns == ["0", "1", "2"] * (len(turns) // 3) and len(turns) >= 3 * 2
    for session, result in zip(made, timed, strict=True):
        # What the turns timed, the pace chunk left out; each got its share of the window.
        assert result.samples_ms == session.produced[1:]
        assert sum(result.samples_ms) >= 40.0 * SHARE and len(result.samples_ms) >= 20
        assert session.closed


def test_a_turn_is_a_few_iterations_of_a_fast_model_and_one_of_a_slow_one():
    log: list[str] = []
    fast, slow = sessions(log, 0.1, 20.0)
    measure_rotation([FakeRunner(fast), FakeRunner(slow)], FEED, settings(min_iterations=20))
    assert set(fast.chunks[1:]) == {round(TURN_MS / 0.1)} and set(slow.chunks[1:]) == {1}
    # The slow one takes turns until it has its iterations too; the fast one keeps turning beside it.
    assert len(slow.produced) - 1 >= 20 and len(fast.chunks) == len(slow.chunks)


def test_the_rotation_stops_at_its_share_of_max_duration():
    log: list[str] = []
    made = sessions(log, 10.0, 10.0)
    timed = measure_rotation([FakeRunner(s) for s in made], FEED,
                             settings(min_iterations=1000, min_duration_ms=10_000.0, max_duration_ms=200.0))
    assert all(sum(t.samples_ms) <= 200.0 * SHARE + 10.0 for t in timed)
    assert all(len(t.samples_ms) < 1000 for t in timed)


def test_the_sessions_share_one_window_and_the_probe_does_not_run():
    log: list[str] = []
    runners = [FakeRunner(s) for s in sessions(log, 0.2, 0.2)]
    timed = measure_rotation(runners, FEED, settings(min_iterations=5, host_probe=True))
    assert all(r.settings is not None and not r.settings.host_probe for r in runners)
    assert timed[0].contention is timed[1].contention and all(t.probe_ms is None for t in timed)


def test_warm_up_is_a_share_of_the_settings_and_left_out():
    log: list[str] = []
    made = sessions(log, 1.0, 1.0)
    timed = measure_rotation([FakeRunner(s) for s in made], FEED, settings(warmup_ms=20.0, min_iterations=5))
    for session, result in zip(made, timed, strict=True):
        warmed = len(session.produced) - len(result.samples_ms)
        assert warmed * 1.0 >= 20.0 * SHARE and warmed * 1.0 < 20.0


def test_every_session_is_closed_when_one_fails():
    class Failing(ScriptedSession):
        def run(self, iterations: int) -> IterationTimes:
            raise RuntimeError("device lost")

    log: list[str] = []
    good = sessions(log, 0.1)[0]
    with pytest.raises(RuntimeError, match="device lost"):
        measure_rotation([FakeRunner(good), FakeRunner(Failing(constant(0.1), clock="host"))], FEED, settings())
    assert good.closed


def test_no_runners_is_an_error():
    with pytest.raises(ValueError, match="at least one runner"):
        measure_rotation([], FEED, settings())


def test_expected_seconds_follow_the_share():
    assert rotation.expected_s(settings(warmup_ms=100.0, min_duration_ms=300.0), 6) == pytest.approx(6 * 0.4 * SHARE)


def test_a_zero_max_duration_still_takes_one_turn_each():
    log: list[str] = []
    timed = measure_rotation([FakeRunner(s) for s in sessions(log, 1.0, 1.0)], FEED, settings(max_duration_ms=0.0))
    assert [len(t.samples_ms) for t in timed] == [1, 1]
