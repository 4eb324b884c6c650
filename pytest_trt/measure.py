"""The measurement loop: warm up, then time chunks of iterations on a TimedSession until the
sample is big enough, and judge the result against ``trt_perf`` budgets.

Chunks grow geometrically, so a 10 µs model is not dominated by per-chunk overhead and a 2 s model
is not run a thousand times; the size is also capped by the time left, so a slow model stops
near ``max_duration_ms`` rather than a doubling past it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import host_cpu
from .backends.base import Runner, TimedSession
from .errors import BackendError
from .types import HostCall, IterationTimes
from .host_probe import HostProbe
from .spec import MeasureSettings, PerfBudget
from .stats import LatencyStats, percentile, percentile_label, summarize

# A latency budget is in doubt when the percentile it names, taken over each of this many
# consecutive stretches of the measurement, falls on both sides of it.
DOUBT_STRETCHES = 10
ENQUEUE_BOUND_RATIO = 0.8  # host enqueue this close to GPU compute starves the GPU
PHASES = ("compute", "h2d", "d2h", "enqueue")


@dataclass
class PerfResult:
    """One measured sample. Latencies in ms; ``throughput`` in queries per second."""

    backend: str
    clock: str  # "host" or "cuda-events"
    mode: dict[str, Any]
    batch: int  # queries per iteration
    iterations: int
    duration_s: float  # measured chunks only, warm-up excluded
    latency: LatencyStats
    compute: LatencyStats | None
    h2d: LatencyStats | None
    d2h: LatencyStats | None
    enqueue: LatencyStats | None
    throughput: float
    samples_ms: list[float]
    warnings: list[str] = field(default_factory=list)
    probe_ms: list[float] | None = None  # host-speed probe times (host_probe.py), host clock only
    # The fastest probe this process had timed when the measurement ended: the host's usual
    # speed, which tells a baseline recording taken while the host runs slow (regression.record).
    fastest_probe_ms: float | None = None

    def latency_at(self, percentile_q: float) -> float:
        """Latency (ms) at a percentile in [0, 100], same method as the stored summary."""
        return percentile(self.samples_ms, percentile_q)

    def as_dict(self) -> dict[str, Any]:
        def plain(stats: LatencyStats | None) -> dict[str, float] | None:
            return stats.as_dict() if stats is not None else None

        return {
            "backend": self.backend,
            "clock": self.clock,
            "mode": dict(self.mode),
            "batch": self.batch,
            "iterations": self.iterations,
            "duration_s": self.duration_s,
            "latency": self.latency.as_dict(),
            **{phase: plain(getattr(self, phase)) for phase in PHASES},
            "throughput": self.throughput,
            "samples_ms": list(self.samples_ms),
            "warnings": list(self.warnings),
            "probe_ms": list(self.probe_ms) if self.probe_ms is not None else None,
            "fastest_probe_ms": self.fastest_probe_ms,
        }


class HostTimedSession:
    """TimedSession for backends timed on the host clock: ``call()`` runs one inference.

    Without the probe, one clock read per iteration: each latency is the gap between consecutive
    reads, so the latencies add up to the chunk's span exactly. With it (``probe=True``), the
    host-speed probe (host_probe.py) runs between some iterations, outside their timing, and the
    span is the model's time alone, so throughput does not count the probe.
    """

    clock = "host"

    def __init__(self, call: Callable[[], Any], probe: bool = False) -> None:
        self._call = call
        self._probe = HostProbe() if probe else None
        self.mode: dict[str, Any] = {"clock": "host"}
        self.warnings: list[str] = []
        # On hosts of many CPUs a probed measurement runs on the one host_cpu.py chooses, until close().
        cpu = host_cpu.measuring_cpu(self._probe) if self._probe is not None else None
        self._pinned = host_cpu.PinnedThread(cpu) if cpu is not None else None

    def run(self, iterations: int) -> IterationTimes:
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive int, got {iterations!r}")
        if self._probe is not None:
            return self._run_probed(iterations, self._probe)
        call = self._call
        clock = time.perf_counter_ns
        stamps = [clock()]
        for _ in range(iterations):
            call()
            stamps.append(clock())
        ns = np.diff(np.asarray(stamps, dtype=np.int64))
        return IterationTimes(latency=(ns / 1e6).tolist(), span_ms=(stamps[-1] - stamps[0]) / 1e6)

    def _run_probed(self, iterations: int, probe: HostProbe) -> IterationTimes:
        call = self._call
        clock = time.perf_counter_ns
        latency: list[float] = []
        probes: list[float] = []
        since_ms = 0.0
        for _ in range(iterations):
            start = clock()
            call()
            ms = (clock() - start) / 1e6
            latency.append(ms)
            since_ms += ms
            if probe.due(since_ms):
                probes.append(probe.probe())
                since_ms = 0.0
        # A fast model's chunk can end before a probe is due; its span still counts.
        return IterationTimes(latency=latency, span_ms=max(sum(latency), 1e-9), probe=probes)

    def close(self) -> None:
        self._call = _closed
        if self._pinned is not None:
            self._pinned.release()


def _closed() -> None:
    raise RuntimeError("HostTimedSession is closed")


def timed_session(runner: Runner, feed: Mapping[str, np.ndarray], settings: MeasureSettings) -> TimedSession:
    """The runner's session on its own clock, or its call timed here on the host clock."""
    session = runner.timed_session(feed, settings)
    if isinstance(session, HostCall):
        return HostTimedSession(session.call, probe=settings.host_probe and session.probe_applies)
    return session


def _run_checked(session: TimedSession, iterations: int) -> IterationTimes:
    """One chunk, refusing malformed timings that would otherwise stall or skew the loop."""
    times = session.run(iterations)
    if len(times.latency) != iterations:
        raise BackendError(
            f"timed session returned {len(times.latency)} latencies for run({iterations})"
        )
    if not (math.isfinite(times.span_ms) and times.span_ms > 0):
        raise BackendError(f"timed session returned span_ms={times.span_ms!r} for run({iterations}); it must be > 0")
    for phase in PHASES:
        values = getattr(times, phase)
        if values is not None and len(values) != iterations:
            raise BackendError(f"timed session returned {len(values)} {phase} times for run({iterations})")
    return times


def _next_chunk(grow_to: int, pace_ms: float, needed: int, room_ms: float) -> int:
    """``grow_to`` iterations, but no more than ``needed`` and, at ``pace_ms`` per iteration,
    no more than fit in ``room_ms``; always at least one."""
    return max(1, min(grow_to, needed, int(room_ms / pace_ms)))


def _warm_up(session: TimedSession, warmup_ms: float) -> tuple[int, float] | None:
    """Run chunks, discarded, for ``warmup_ms``. Returns the last chunk's size and pace (ms per
    iteration) so that measuring starts at a chunk size that suits the model, or None."""
    if warmup_ms <= 0:
        return None
    chunk, spent_ms = 1, 0.0
    while True:
        times = _run_checked(session, chunk)
        spent_ms += times.span_ms
        pace_ms = times.span_ms / chunk
        if spent_ms >= warmup_ms:
            return chunk, pace_ms
        left_ms = warmup_ms - spent_ms
        chunk = _next_chunk(2 * chunk, pace_ms, math.ceil(left_ms / pace_ms), left_ms)


def _merge(chunks: list[IterationTimes], phase: str) -> list[float] | None:
    """A phase's (or the probe's) times across chunks, or None unless every chunk reported them."""
    parts = [getattr(c, phase) for c in chunks]
    if any(p is None for p in parts):
        return None
    return [t for p in parts for t in p]


def _bound_warnings(
    compute: LatencyStats | None, h2d: LatencyStats | None, d2h: LatencyStats | None, enqueue: LatencyStats | None
) -> list[str]:
    if compute is None:
        return []
    found = []
    if enqueue is not None and enqueue.mean > ENQUEUE_BOUND_RATIO * compute.mean:
        found.append(
            f"enqueue-bound: mean enqueue {enqueue.mean:.3f} ms > {ENQUEUE_BOUND_RATIO} x mean compute "
            f"{compute.mean:.3f} ms: the host may be starving the GPU (try cuda_graph=True)"
        )
    transfers = [s.mean for s in (h2d, d2h) if s is not None]
    if transfers and sum(transfers) > compute.mean:
        found.append(
            f"transfer-bound: mean H2D+D2H {sum(transfers):.3f} ms > mean compute {compute.mean:.3f} ms: "
            "copies dominate the latency (try transfers=False to time compute alone)"
        )
    return found


def measure(runner: Runner, feed: Mapping[str, np.ndarray], settings: MeasureSettings, batch: int) -> PerfResult:
    """Warm up for ``settings.warmup_ms``, then time chunks until both ``min_iterations`` and
    ``min_duration_ms`` are met, or ``max_duration_ms`` of measured time has passed."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int (queries per iteration), got {batch!r}")
    session = timed_session(runner, feed, settings)
    try:
        warm = _warm_up(session, settings.warmup_ms)
        chunk = 1
        if warm is not None:
            last_chunk, pace_ms = warm
            chunk = _next_chunk(
                last_chunk,
                pace_ms,
                max(settings.min_iterations, math.ceil(settings.min_duration_ms / pace_ms)),
                settings.max_duration_ms,
            )
        chunks: list[IterationTimes] = []
        iterations, measured_ms = 0, 0.0
        # At least one chunk, so that max_duration_ms=0 still yields a sample.
        while not chunks or (
            (iterations < settings.min_iterations or measured_ms < settings.min_duration_ms)
            and measured_ms < settings.max_duration_ms
        ):
            times = _run_checked(session, chunk)
            chunks.append(times)
            iterations += chunk
            measured_ms += times.span_ms
            pace_ms = times.span_ms / chunk
            needed = max(
                settings.min_iterations - iterations,
                math.ceil((settings.min_duration_ms - measured_ms) / pace_ms),
            )
            chunk = _next_chunk(2 * chunk, pace_ms, needed, settings.max_duration_ms - measured_ms)
        session_warnings = list(session.warnings)
        clock, mode = session.clock, dict(session.mode)
    finally:
        session.close()

    warnings = session_warnings
    if iterations < settings.min_iterations or measured_ms < settings.min_duration_ms:
        warnings.append(
            f"stopped at max_duration_ms {settings.max_duration_ms:g} after {iterations} iterations "
            f"and {measured_ms:.0f} ms; wanted at least {settings.min_iterations} iterations and "
            f"{settings.min_duration_ms:g} ms"
        )
    samples = [t for c in chunks for t in c.latency]
    latency = summarize(samples)
    phases: dict[str, LatencyStats | None] = {}
    for phase in PHASES:
        merged = _merge(chunks, phase)
        phases[phase] = summarize(merged) if merged else None
    warnings.extend(_bound_warnings(**phases))
    return PerfResult(
        backend=runner.backend,
        clock=clock,
        mode=mode,
        batch=batch,
        iterations=iterations,
        duration_s=measured_ms / 1000.0,
        latency=latency,
        **phases,
        throughput=batch * iterations / (measured_ms / 1000.0),
        samples_ms=samples,
        warnings=warnings,
        probe_ms=_merge(chunks, "probe") or None,  # [] when a fast model's chunks ended before a probe
        fastest_probe_ms=HostProbe.fastest_ms if math.isfinite(HostProbe.fastest_ms) else None,
    )


def _number(value: float) -> str:
    """A budget number as written in a mark: 2000, 1500.5 (no exponent, no trailing zeros)."""
    return f"{value:.10g}" if abs(value) < 1e10 else f"{value:.0f}"


def _ms(value: float) -> str:
    """A latency budget with 2 decimals, more where it was written finer (0.005 stays 0.005)."""
    for places in range(2, 7):
        text = f"{value:.{places}f}"
        if float(text) == value:
            return text
    return text


def _ms_pair(measured: float, budget: float) -> tuple[str, str]:
    """Measured and budget latencies at the same precision, enough for them to differ
    (5.004 > 5.00 would read as a bug)."""
    places = max(2, len(_ms(budget).split(".")[1]))
    for decimals in range(places, 7):
        shown, limit = f"{measured:.{decimals}f}", f"{budget:.{decimals}f}"
        if shown != limit:
            break
    return shown, limit


def describe_budget(budget: PerfBudget) -> str:
    """The budget as one line, e.g. ``p99 <= 5.00 ms, >= 2000 qps``."""
    parts = []
    if budget.max_latency_ms is not None:
        parts.append(f"{percentile_label(budget.percentile)} <= {_ms(budget.max_latency_ms)} ms")
    if budget.min_throughput is not None:
        parts.append(f">= {_number(budget.min_throughput)} qps")
    if budget.max_regression is not None:
        parts.append(f"regression <= {_number(budget.max_regression * 100)}%")
    return ", ".join(parts) or "measure only"


def budget_doubts(result: PerfResult, budget: PerfBudget, *, threads_advice: bool = False) -> list[str]:
    """A line when the sample cannot tell whether it meets its latency budget: the percentile the
    budget names, taken over each tenth of the measurement in time order, lands on both sides of
    the limit, so another run of the same code may decide the other way. The stretches carry the
    host's slow and fast moments, which a bootstrap of independent iterations hides (it is far too
    narrow between runs). A noisy percentile far from its budget is no doubt. ``threads_advice``:
    the backend takes ``intra_op_threads`` and the test does not run on one thread yet."""
    if budget.max_latency_ms is None:
        return []
    stretches = np.array_split(np.asarray(result.samples_ms), min(DOUBT_STRETCHES, len(result.samples_ms)))
    values = [percentile(part, budget.percentile) for part in stretches]
    low, high = min(values), max(values)
    if not low <= budget.max_latency_ms < high:
        return []
    limit = _ms(budget.max_latency_ms)
    places = max(3, len(limit.split(".")[1]))
    observed = result.latency_at(budget.percentile)
    steadier = " or on one thread (intra_op_threads=1)" if threads_advice else ""
    label = percentile_label(budget.percentile)
    return [
        f"{label} {observed:.{places}f} ms is too close to its budget {limit} ms to judge: {label} of each "
        f"tenth of the measurement {low:.{places}f}..{high:.{places}f} ms (n={result.iterations}), another "
        f"run may decide otherwise; measure longer (min_duration_ms){steadier}"
    ]


def budget_failures(result: PerfResult, budget: PerfBudget) -> list[str]:
    """One message per budget the result misses; empty when it meets them all (bounds inclusive)."""
    failures = []
    n = result.iterations
    if budget.max_latency_ms is not None:
        observed = result.latency_at(budget.percentile)
        if observed > budget.max_latency_ms:
            shown, limit = _ms_pair(observed, budget.max_latency_ms)
            failures.append(
                f"{percentile_label(budget.percentile)} latency {shown} ms > budget {limit} ms "
                f"(n={n}, cv {result.latency.cv * 100:.1f}%)"
            )
    if budget.min_throughput is not None and result.throughput < budget.min_throughput:
        failures.append(
            f"throughput {result.throughput:.1f} qps < budget {_number(budget.min_throughput)} qps (n={n})"
        )
    return failures
