"""The measurement loop: warm up, then time chunks of iterations on a TimedSession until the
sample is big enough (judge/budgets.py judges the result against ``trt_perf`` budgets).

Chunks grow geometrically, so a 10 µs model is not dominated by per-chunk overhead and a 2 s model
is not run a thousand times; the size is also capped by the time left, so a slow model stops
near ``max_duration_ms`` rather than a doubling past it. How many iterations are enough fits the
model (measure_defaults.py): ``min_iterations`` for fast models, as many as fit in
``SLOW_MODEL_MS`` (at least ``FEWEST_ITERATIONS``) for slow ones, and for a latency budget at
least the samples its percentile needs (``stats.samples_needed``: 100 for a p99).

On a GPU's own clock (``cuda-events``) warm-up lasts until the GPU has reached its working clock
(gpu_clock.py), and the result records the SM clock it was timed at (``PerfResult.gpu_clock``).

The garbage collector is off inside every timed chunk, as pytest-benchmark offers, and on again
between them: a collection is the runtime's cost, not the model's. Each measurement holds its
device's lock (measure_lock.py), so pytest-xdist workers and other runs on this host never time
one device at the same moment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

import numpy as np

from pytest_trt.backends.base import Runner, TimedSession
from pytest_trt.errors import BackendError
from pytest_trt.measure_defaults import (
    FEWEST_ITERATIONS,
    GPU_WARMUP_MAX_MS,
    GPU_WINDOW_MS,
    REWARM_MS,
    SLOW_MODEL_MS,
    STILL_WARM_S,
)
from pytest_trt.serde import from_data, to_data
from pytest_trt.specs import MeasureSettings
from pytest_trt.timing import contention, gpu_clock, host_cpu, host_probe
from pytest_trt.timing import lock as measure_lock
from pytest_trt.timing.contention import Contention, CpuCounters
from pytest_trt.timing.gpu_clock import ClockTrack, GpuClock, WarmUp
from pytest_trt.timing.host_probe import HostProbe
from pytest_trt.timing.stats import LatencyStats, percentile, percentile_label, samples_needed, summarize
from pytest_trt.types import HostCall, IterationTimes

ENQUEUE_BOUND_RATIO = 0.8  # host enqueue this close to GPU compute starves the GPU
PHASES = ("compute", "h2d", "d2h", "enqueue")
SHOWN_PERCENTILES = (50.0, 90.0, 95.0, 99.0)  # the ones LatencyStats holds and reports print
GPU_CLOCK = "cuda-events"  # sessions on this clock time a GPU: warm-up to its working clock


class PerfClock(str, Enum):
    """Whose clock timed a measurement."""

    HOST = "host"  # perf_counter around each call, in this process
    CUDA_EVENTS = "cuda-events"  # the GPU's own: warm-up lasts until it reaches its working clock


@dataclass(frozen=True)
class PerfResult:
    """One measured sample. Latencies in ms; ``throughput`` in queries per second.

    ``samples_ms`` holds every timed iteration (the floor a baseline comparison reads);
    ``after_probe`` the indices of those run right after a host-speed probe, which latency budgets
    leave out (``budget_samples_ms``): the probe's data still sat in the caches. ``latency`` sums
    up the budget samples, as budgets judge them. ``lock_wait_s`` is how long the measurement
    waited for its device (measure_lock.py), not counted in ``duration_s``. ``gpu_clock``: the
    SM clock a GPU-timed measurement ran at and how its warm-up ended (gpu_clock.py); None on the
    host clock. It is not part of ``mode``, which baselines compare as the workload: a clock
    that differs does not make a baseline another workload.
    """

    backend: str
    clock: PerfClock
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
    after_probe: list[int] = field(default_factory=list)
    lock_wait_s: float = 0.0
    gpu_clock: GpuClock | None = None
    # How contended the host's CPUs were over the timed chunks (the kernel's counters); None where
    # they could not be read. A contended measurement cannot tell a slower model from a busy host.
    contention: Contention | None = None
    device_memory: int | None = None  # bytes the engine and its buffers take, where the backend tells

    @functools.cached_property
    def budget_samples_ms(self) -> list[float]:
        """The samples latency budgets and the shown percentiles come from."""
        return _left_out(self.samples_ms, self.after_probe)

    def latency_at(self, percentile_q: float) -> float:
        """Latency (ms) at a percentile in [0, 100] of the budget samples, same method as the
        stored summary."""
        return percentile(self.budget_samples_ms, percentile_q)

    def samples_for(self, percentile_q: float) -> int:
        """How many samples the latency at ``percentile_q`` comes from."""
        percentile_label(percentile_q)  # validates
        return len(self.budget_samples_ms)

    def short_of(self, percentile_q: float) -> bool:
        """Whether that percentile came from fewer samples than it needs (stats.samples_needed)."""
        return self.samples_for(percentile_q) < samples_needed(percentile_q)

    def sample_note(self, percentile_q: float) -> str:
        """``p99 from 24 samples, fewer than the 100 a p99 needs: it reads low`` where the
        percentile is short of samples, else ''."""
        if not self.short_of(percentile_q):
            return ""
        label, n = percentile_label(percentile_q), self.samples_for(percentile_q)
        return (
            f"{label} from {n} sample{'s' if n != 1 else ''}, fewer than the "
            f"{samples_needed(percentile_q)} a {label} needs: it reads {'low' if percentile_q > 50 else 'high'}"
        )

    @property
    def short_percentiles(self) -> list[str]:
        """The printed percentiles taken from fewer samples than they need, so reports can say so."""
        return [percentile_label(q) for q in SHOWN_PERCENTILES if self.short_of(q)]

    def as_dict(self) -> dict[str, Any]:
        """The JSON report's form: the fields, and what follows from them about the sample's size."""
        data = to_data(self)
        if self.device_memory is None:
            del data["device_memory"]  # an optional key: only where the backend tells it
        return {
            **data,
            "budget_samples": len(self.budget_samples_ms),
            "short_percentiles": self.short_percentiles,
            "sample_notes": [note for q in SHOWN_PERCENTILES if (note := self.sample_note(q))],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerfResult:
        """Read back from ``as_dict``; the keys that follow from the samples are recomputed."""
        return from_data(cls, dict(data), where="perf")


def _left_out(samples: list[float], after_probe: Sequence[int]) -> list[float]:
    """``samples`` without the iterations run right after a probe; all of them where every one
    was (a probe after each iteration): those only read slower, never faster."""
    if not after_probe:
        return samples
    marked = set(after_probe)
    return [t for i, t in enumerate(samples) if i not in marked] or samples


class HostTimedSession:
    """TimedSession for backends timed on the host clock: ``call()`` runs one inference.

    One clock read per iteration, probed or not: each latency is the gap between the read that
    ended the previous iteration and the one that ends this one, so the per-iteration cost of the
    loop is inside every latency alike. With ``probe=True`` the host-speed probe (host_probe.py)
    runs between some iterations: after ``spacing`` probe-durations of model time and at least
    ``gap`` iterations. The clock is read again after the probe, so the probe is in no latency
    and the span (the latencies' sum) is the model's time alone; the iteration right after a
    probe is reported in ``after_probe``.
    """

    clock = "host"

    def __init__(
        self,
        call: Callable[[], Any],
        probe: bool = False,
        *,
        spacing: float = host_probe.SPACING,
        gap: int = host_probe.GAP,
    ) -> None:
        self._call = call
        self._probe = HostProbe() if probe else None
        self._spacing, self._gap = spacing, gap
        self.mode: dict[str, Any] = {"clock": "host"}
        self.warnings: list[str] = []
        # The probe's schedule carries over from one run() to the next: a chunk starts with
        # ``_due_in_ns`` of model time left before a probe, ``_since`` iterations after the last
        # one, and ``_mark_first`` when the previous chunk ended with a probe.
        self._due_in_ns = 0
        self._since = gap
        self._mark_first = False
        # Spacing counts in the fastest probe of the session, by the wall clock or by its own CPU
        # time: one probe slowed by a preemption, the first one included, must not stop probing
        # for many times its length.
        self._probe_floor_ms = float("inf")
        # On hosts of many CPUs a probed measurement runs on the one host_cpu.py chooses, until close().
        cpu = host_cpu.measuring_cpu(self._probe) if self._probe is not None else None
        self._pinned = host_cpu.PinnedThread(cpu) if cpu is not None else None

    def run(self, iterations: int) -> IterationTimes:
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive int, got {iterations!r}")
        call, clock, probe = self._call, time.perf_counter_ns, self._probe
        ends = [0] * iterations
        resumed: dict[int, int] = {}  # iteration -> clock read after the probe before it
        probes: list[float] = []
        last_probed = -1 - self._since  # index of the last iteration followed by a probe
        begin = clock()
        due = begin + self._due_in_ns if probe is not None else None
        # The same work per iteration with and without the probe: a call, a clock read, a store
        # and a comparison (``due`` None compares false at once).
        for i in range(iterations):
            call()
            now = clock()
            ends[i] = now
            if due is not None and now >= due and i - last_probed >= self._gap:
                assert probe is not None
                probes.append(probe.probe())
                last_probed = i
                after = clock()
                resumed[i + 1] = after
                self._probe_floor_ms = min(self._probe_floor_ms, probe.last_cost_ms)
                due = after + int(self._spacing * self._probe_floor_ms * 1e6)
        starts = np.empty(iterations, dtype=np.int64)
        starts[0] = begin
        starts[1:] = ends[:-1]
        for i, after in resumed.items():
            if i < iterations:
                starts[i] = after
        latency = (np.asarray(ends, dtype=np.int64) - starts) / 1e6
        marked = [0] if self._mark_first else []
        marked += [i for i in resumed if i < iterations]
        if probe is None:
            return IterationTimes(latency=latency.tolist(), span_ms=max(float(latency.sum()), 1e-9))
        assert due is not None
        self._due_in_ns = max(0, due - resumed.get(iterations, ends[-1]))  # model time left
        self._since = iterations - 1 - last_probed
        self._mark_first = iterations in resumed
        # A fast model's chunk can end before a probe is due; its span still counts.
        return IterationTimes(
            latency=latency.tolist(), span_ms=max(float(latency.sum()), 1e-9), probe=probes, after_probe=marked
        )

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


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The garbage collector off for the block, and back as it was after it, even on errors."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_checked(session: TimedSession, iterations: int) -> IterationTimes:
    """One chunk, with the garbage collector paused, refusing malformed timings that would
    otherwise stall or skew the loop."""
    with _gc_paused():
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
    marked = times.after_probe or []
    if any(not isinstance(i, int) or not 0 <= i < iterations for i in marked):
        raise BackendError(f"timed session marked iterations outside run({iterations}) as after a probe")
    return times


def _next_chunk(grow_to: int, pace_ms: float, needed: int, room_ms: float) -> int:
    """``grow_to`` iterations, but no more than ``needed`` and, at ``pace_ms`` per iteration,
    no more than fit in ``room_ms``; always at least one."""
    return max(1, min(grow_to, needed, int(room_ms / pace_ms)))


def wanted_iterations(settings: MeasureSettings, pace_ms: float) -> int:
    """How many timed iterations a model running ``pace_ms`` per iteration gets: min_iterations,
    or for a slow model as many as fit in SLOW_MODEL_MS but at least FEWEST_ITERATIONS (never more
    than min_iterations)."""
    fit = int(SLOW_MODEL_MS / pace_ms) if pace_ms > 0 else settings.min_iterations
    return min(settings.min_iterations, max(FEWEST_ITERATIONS, fit))


@dataclass
class Warm:
    chunk: int  # the last warm-up chunk's size...
    pace_ms: float  # ...and its ms per iteration, so that measuring starts at a size that suits the model
    spent_ms: float


def warm_up(session: TimedSession, warmup_ms: float, judge: WarmUp | None = None) -> Warm | None:
    """Run chunks, discarded, for ``warmup_ms``; with a ``judge`` (a GPU session), then in more
    windows of GPU_WINDOW_MS until it calls the GPU settled (it stops at its limit too). The
    first window is the whole of ``warmup_ms``. None when ``warmup_ms`` asks for no warm-up."""
    if warmup_ms <= 0:
        return None
    chunk, spent_ms, target = 1, 0.0, warmup_ms
    window_ms, window_iterations = 0.0, 0
    while True:
        times = run_checked(session, chunk)
        spent_ms += times.span_ms
        window_ms += times.span_ms
        window_iterations += chunk
        pace_ms = times.span_ms / chunk
        if spent_ms >= target:
            if judge is None or judge.window(window_ms / window_iterations, spent_ms):
                return Warm(chunk, pace_ms, spent_ms)
            window_ms, window_iterations = 0.0, 0
            target = spent_ms + GPU_WINDOW_MS
        left_ms = target - spent_ms
        chunk = _next_chunk(2 * chunk, pace_ms, math.ceil(left_ms / pace_ms), left_ms)


def _merge(chunks: list[IterationTimes], phase: str) -> list[float] | None:
    """A phase's (or the probe's) times across chunks, or None unless every chunk reported them."""
    parts = [getattr(c, phase) for c in chunks]
    if any(p is None for p in parts):
        return None
    return [t for p in parts for t in p]


def _after_probe(chunks: list[IterationTimes]) -> list[int]:
    """The chunks' after-probe marks as indices into the merged sample."""
    marked, offset = [], 0
    for c in chunks:
        marked += [offset + i for i in c.after_probe or ()]
        offset += len(c.latency)
    return marked


def _bound_warnings(
    compute: LatencyStats | None,
    h2d: LatencyStats | None,
    d2h: LatencyStats | None,
    enqueue: LatencyStats | None,
    *,
    graphed: bool = False,
) -> list[str]:
    if compute is None:
        return []
    found = []
    if enqueue is not None and enqueue.mean > ENQUEUE_BOUND_RATIO * compute.mean:
        advice = "" if graphed else " (try cuda_graph=True)"  # a graph already takes the launches away
        found.append(
            f"enqueue-bound: mean enqueue {enqueue.mean:.3f} ms > {ENQUEUE_BOUND_RATIO} x mean compute "
            f"{compute.mean:.3f} ms: the host may be starving the GPU{advice}"
        )
    transfers = [s.mean for s in (h2d, d2h) if s is not None]
    if transfers and sum(transfers) > compute.mean:
        found.append(
            f"transfer-bound: mean H2D+D2H {sum(transfers):.3f} ms > mean compute {compute.mean:.3f} ms: "
            "copies dominate the latency (try transfers=False to time compute alone)"
        )
    return found


@dataclass
class _Progress:
    """What the timed chunks so far add up to, and what measuring still wants."""

    settings: MeasureSettings
    budget_need: int  # samples the judged percentiles need, after-probe iterations left out
    iterations: int = 0
    clean: int = 0  # iterations not right after a probe
    measured_ms: float = 0.0

    def add(self, times: IterationTimes) -> None:
        self.iterations += len(times.latency)
        self.clean += len(times.latency) - len(times.after_probe or ())
        self.measured_ms += times.span_ms

    @property
    def wanted(self) -> int:
        return wanted_iterations(self.settings, self.measured_ms / self.iterations) if self.iterations else 1

    def enough(self) -> bool:
        return (
            self.iterations >= self.wanted
            and self.clean >= self.budget_need
            and self.measured_ms >= self.settings.min_duration_ms
        )

    def still_needed(self, pace_ms: float) -> int:
        """Iterations still to run, at ``pace_ms`` each, for every wish to be met."""
        clean_share = self.clean / self.iterations if self.iterations and self.clean else 1.0
        return max(
            self.wanted - self.iterations,
            math.ceil((self.budget_need - self.clean) / clean_share),
            math.ceil((self.settings.min_duration_ms - self.measured_ms) / pace_ms),
        )


def measure(
    runner: Runner,
    feed: Mapping[str, np.ndarray],
    settings: MeasureSettings,
    batch: int,
    *,
    percentiles: Sequence[float] = (),
    lock_wait: measure_lock.LockWait | None = None,
) -> PerfResult:
    """Warm up for ``settings.warmup_ms``, then time chunks until the iterations the model's pace
    asks for (``wanted_iterations``), the samples each of ``percentiles`` needs (the latency
    budgets to judge) and ``min_duration_ms`` are all there, or ``max_duration_ms`` of measured
    time has passed. The whole of it holds the device's measurement lock, waited for as
    ``lock_wait`` says."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int (queries per iteration), got {batch!r}")
    budget_need = max((samples_needed(q) for q in percentiles), default=0)
    device = measure_lock.device_of(runner)
    with measure_lock.measuring(device, wait=lock_wait) as held:
        timed = _timed_chunks(runner, _still_warm(runner, settings, feed), feed, budget_need, device)
        _Recent.runner, _Recent.shapes, _Recent.ended = runner, _shapes(feed), time.monotonic()
    return _result(runner.backend, batch, settings, timed, percentiles, held.waited_s)


class _Recent:
    """The runner this process measured last, and when: a runner timed a moment ago is warm."""

    runner: Runner | None = None
    shapes: ClassVar[dict[str, tuple[int, ...]]] = {}
    ended: float = -math.inf


def _shapes(feed: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(array.shape) for name, array in feed.items()}


def _still_warm(runner: Runner, settings: MeasureSettings, feed: Mapping[str, np.ndarray]) -> MeasureSettings:
    """``settings``, with the warm-up shortened to REWARM_MS when ``runner`` was measured within
    STILL_WARM_S at the same shapes (a re-measurement, a recording's next measurement, a second
    budget). A new shape warms up in full: the first runs after a shape change are slower
    (TensorRT switches kernels, onnxruntime re-plans its memory)."""
    same = runner is _Recent.runner and _shapes(feed) == _Recent.shapes
    if same and time.monotonic() - _Recent.ended < STILL_WARM_S:
        return dataclasses.replace(settings, warmup_ms=min(settings.warmup_ms, REWARM_MS))
    return settings


@dataclass
class _Timed:
    """What the timed chunks of one session produced, and the session's own facts."""

    chunks: list[IterationTimes]
    progress: _Progress
    warnings: list[str]
    clock: str
    mode: dict[str, Any]
    gpu_clock: GpuClock | None
    contention: Contention | None = None


def _timed_chunks(
    runner: Runner, settings: MeasureSettings, feed: Mapping[str, np.ndarray], budget_need: int, device: str
) -> _Timed:
    session = timed_session(runner, feed, settings)
    try:
        judge = track = None
        if session.clock == GPU_CLOCK:
            reader, unread = gpu_clock.reader_for(device)
            judge = WarmUp(reader, max(settings.warmup_ms, GPU_WARMUP_MAX_MS))
            track = ClockTrack(reader, unread)
        warm = warm_up(session, settings.warmup_ms, judge)
        progress = _Progress(settings, budget_need)
        chunk = 1
        if warm is not None:
            needed = max(wanted_iterations(settings, warm.pace_ms), budget_need,
                         math.ceil(settings.min_duration_ms / warm.pace_ms))
            chunk = _next_chunk(warm.chunk, warm.pace_ms, needed, settings.max_duration_ms)
        chunks: list[IterationTimes] = []
        if track is not None:
            track.read()
        counters = contention.read_counters()
        # At least one chunk, so that max_duration_ms=0 still yields a sample.
        while not chunks or (not progress.enough() and progress.measured_ms < settings.max_duration_ms):
            times = run_checked(session, chunk)
            if track is not None:
                track.read()  # between chunks: outside every timed interval
            chunks.append(times)
            progress.add(times)
            pace_ms = times.span_ms / chunk
            chunk = _next_chunk(2 * chunk, pace_ms, progress.still_needed(pace_ms),
                                settings.max_duration_ms - progress.measured_ms)
        warnings = list(session.warnings)
        clock = None
        if track is not None:
            clock = track.record(judge if warm is not None else None, warm.spent_ms if warm is not None else 0.0)
            warnings += [w for w in (judge.warning() if judge is not None else None,
                                     gpu_clock.drop_warning(clock)) if w]
        return _Timed(chunks, progress, warnings, session.clock, dict(session.mode), clock, contention_since(counters))
    finally:
        session.close()


def contention_since(before: CpuCounters) -> Contention | None:
    """The timed chunks' contention, or None where the host exposes none of the counters."""
    window = contention.between(before, contention.read_counters())
    readable = (window.pressure, window.steal, window.runnable_per_cpu)
    return None if all(v is None for v in readable) else window


def _result(
    backend: str, batch: int, settings: MeasureSettings, timed: _Timed, percentiles: Sequence[float],
    lock_wait_s: float,
) -> PerfResult:
    chunks, progress, warnings = timed.chunks, timed.progress, timed.warnings
    if not progress.enough():
        wants = f"at least {progress.wanted} iterations and {settings.min_duration_ms:g} ms"
        if progress.clean < progress.budget_need:
            hardest = max(percentiles, key=samples_needed)
            wants += f", and {progress.budget_need} samples for the {percentile_label(hardest)} budget"
        warnings.append(
            f"stopped at max_duration_ms {settings.max_duration_ms:g} after {progress.iterations} iterations "
            f"and {progress.measured_ms:.0f} ms; wanted {wants}"
        )
    samples = [t for c in chunks for t in c.latency]
    after_probe = _after_probe(chunks)
    phases: dict[str, LatencyStats | None] = {}
    for phase in PHASES:
        merged = _merge(chunks, phase)
        phases[phase] = summarize(merged) if merged else None
    result = PerfResult(
        backend=backend,
        clock=PerfClock(timed.clock),
        mode=timed.mode,
        batch=batch,
        iterations=progress.iterations,
        duration_s=progress.measured_ms / 1000.0,
        latency=summarize(_left_out(samples, after_probe)),
        compute=phases["compute"], h2d=phases["h2d"], d2h=phases["d2h"], enqueue=phases["enqueue"],
        throughput=batch * progress.iterations / (progress.measured_ms / 1000.0),
        samples_ms=samples,
        warnings=warnings,
        probe_ms=_merge(chunks, "probe") or None,  # [] when a fast model's chunks ended before a probe
        fastest_probe_ms=HostProbe.fastest_ms if math.isfinite(HostProbe.fastest_ms) else None,
        after_probe=after_probe,
        lock_wait_s=lock_wait_s,
        gpu_clock=timed.gpu_clock,
        contention=timed.contention,
    )
    warnings.extend(_bound_warnings(**phases, graphed=bool(timed.mode.get("cuda_graph"))))
    for q in dict.fromkeys(percentiles):
        if result.short_of(q):
            warnings.append(
                f"the {percentile_label(q)} latency budget is judged on {result.sample_note(q)}; raise "
                "max_duration_ms (--trt-max-duration-ms) or budget a lower percentile"
            )
    return result

