"""Sessions timed in turns over one window: each runs a short chunk, then the next.

A shared host's speed moves in steps that last from a tenth of a second to seconds (on the 2-core
VM the example MLP's floor sits at levels about 3.5% apart). Sessions timed one after another
each catch their own stretch of it, so their floors differ by the host's moment as much as by the
sessions. Timed in turns of about ``TURN_MS``, every session samples the whole window, and what
still differs between their floors is their own. The interleaved A/B (baselines/interleaved.py)
times the baseline's model and the new one this way; bench/ab_interleaved.py --rotation measured
it beside sessions timed one after another.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pytest_trt.backends.base import Runner, TimedSession
from pytest_trt.measure_defaults import GPU_WARMUP_MAX_MS
from pytest_trt.specs import MeasureSettings
from pytest_trt.timing import contention, gpu_clock
from pytest_trt.timing import lock as measure_lock
from pytest_trt.timing.contention import Contention
from pytest_trt.timing.gpu_clock import WarmUp
from pytest_trt.timing.measure import (
    GPU_CLOCK,
    contention_since,
    run_checked,
    timed_session,
    wanted_iterations,
    warm_up,
)

TURN_MS = 0.5  # one session's turn: a few iterations of a fast model, one of a slow model
SHARE = 0.5  # of the settings' warm-up and window, for each session: each only adds a floor


@dataclass(frozen=True)
class RotatedSession:
    """One session's iterations from a rotation (a ``regression.Timed``); ``contention`` is the
    whole window's, which every session shares."""

    samples_ms: list[float]
    contention: Contention | None
    lock_wait_s: float = 0.0
    probe_ms: None = None  # the host probe does not run: the sessions share the host's moments

    @property
    def floor_ms(self) -> float:
        return min(self.samples_ms)


@dataclass
class _Turns:
    """One session in the rotation and what it has timed so far."""

    session: TimedSession
    chunk: int  # iterations per turn
    samples_ms: list[float] = dataclasses.field(default_factory=list)
    spent_ms: float = 0.0

    def take(self) -> None:
        times = run_checked(self.session, self.chunk)
        self.samples_ms += times.latency
        self.spent_ms += times.span_ms

    def done(self, settings: MeasureSettings, window_ms: float) -> bool:
        if not self.samples_ms:
            return False
        pace_ms = self.spent_ms / len(self.samples_ms)
        return len(self.samples_ms) >= wanted_iterations(settings, pace_ms) and self.spent_ms >= window_ms


def measure_rotation(
    runners: Sequence[Runner],
    feed: Mapping[str, np.ndarray],
    settings: MeasureSettings,
    *,
    lock_wait: measure_lock.LockWait | None = None,
) -> list[RotatedSession]:
    """Warm each runner up for ``SHARE`` of the warm-up, then time them in turns until each has
    ``SHARE`` of the window and the iterations its pace asks for (or ``SHARE`` of
    ``max_duration_ms``), all under the device's measurement lock. One result per runner, in
    order."""
    if not runners:
        raise ValueError("measure_rotation needs at least one runner")
    window_ms, cap_ms = settings.min_duration_ms * SHARE, settings.max_duration_ms * SHARE
    device = measure_lock.device_of(runners[0])
    unprobed = dataclasses.replace(settings, host_probe=False)
    with measure_lock.measuring(device, wait=lock_wait) as held, contextlib.ExitStack() as opened:
        turns: list[_Turns] = []
        for runner in runners:
            session = timed_session(runner, feed, unprobed)
            opened.callback(session.close)
            turns.append(_Turns(session, _turn(session, settings.warmup_ms * SHARE, device, first=not turns)))
        before = contention.read_counters()
        while True:  # one turn each at least, so that max_duration_ms=0 still yields a floor
            for t in turns:
                t.take()
            if all(t.done(settings, window_ms) for t in turns) or max(t.spent_ms for t in turns) >= cap_ms:
                break
        window = contention_since(before)
    return [RotatedSession(t.samples_ms, window, held.waited_s) for t in turns]


def expected_s(settings: MeasureSettings, sessions: int) -> float:
    """About how long a rotation of ``sessions`` takes with ``settings``, in seconds."""
    return sessions * (settings.warmup_ms + settings.min_duration_ms) * SHARE / 1000


def _turn(session: TimedSession, warmup_ms: float, device: str, *, first: bool) -> int:
    """Warm ``session`` up (the first session on a GPU's clock until the GPU has reached its
    working clock, which the rotation then keeps it at) and size its turn to ``TURN_MS``."""
    judge = None
    if first and session.clock == GPU_CLOCK:
        reader, _ = gpu_clock.reader_for(device)
        judge = WarmUp(reader, max(warmup_ms, GPU_WARMUP_MAX_MS))
    warm = warm_up(session, warmup_ms, judge)
    pace_ms = warm.pace_ms if warm is not None else run_checked(session, 1).span_ms
    return max(1, round(TURN_MS / pace_ms))
