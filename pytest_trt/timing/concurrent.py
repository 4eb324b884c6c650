"""Concurrency: N runners of one engine timed at once from N threads, as trtexec's
``--infStreams=N`` and perf_analyzer's concurrency do.

Each runner is a session or execution context of its own (a fresh runner of the engine) with its
own buffers and, on a GPU backend, its own CUDA stream; each thread times its runner's session on
the runner's own clock (CUDA events on a GPU, the host clock on a CPU), one request per
iteration. What comes out: the aggregate throughput (every stream's queries over the wall time
from the common start to the last stream's end) and the per-request latency percentiles over all
streams. Backends learn nothing new: a runner runs on its own stream, from any thread.

The host-speed probe is off here (a probe run beside N busy threads measures the threads), and
so is the GC pause: one thread cannot pause collection for the others.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_trt.backends.base import Runner
from pytest_trt.specs import MeasureSettings
from pytest_trt.timing import lock as measure_lock
from pytest_trt.timing.measure import timed_session
from pytest_trt.timing.stats import LatencyStats, percentile, summarize

Feed = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class ConcurrentResult:
    """N streams timed together. Latencies in ms; ``throughput`` in queries per second."""

    streams: int
    batch: int  # queries per request
    clock: str  # "host" or "cuda-events"
    latency: LatencyStats  # per request, over every stream
    throughput: float  # batch x requests of every stream / wall time
    iterations: int  # requests of every stream together
    per_stream: tuple[int, ...]  # requests each stream ran
    duration_s: float  # wall time from the common start to the last stream's end
    samples_ms: tuple[float, ...] = ()  # every request's latency, for the budget's percentile
    lock_wait_s: float = 0.0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    device_memory: int | None = None  # bytes every stream's runner takes, where the backend tells

    def latency_at(self, q: float) -> float:
        return percentile(list(self.samples_ms), q)


@dataclass
class _Stream:
    """What one thread measured."""

    latency: list[float] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    clock: str = "host"
    warnings: list[str] = field(default_factory=list)
    error: BaseException | None = None


def measure_concurrent(
    runners: Sequence[Runner],
    feeds: Sequence[Feed],
    settings: MeasureSettings,
    batch: int,
    *,
    lock_wait: measure_lock.LockWait | None = None,
) -> ConcurrentResult:
    """Warm every runner up for ``warmup_ms`` at once, then time them together from a common
    start until each has run ``min_iterations`` requests and ``min_duration_ms`` has passed (at
    most ``max_duration_ms``). Holds the device's measurement lock throughout."""
    if len(runners) != len(feeds) or not runners:
        raise ValueError("measure_concurrent needs one feed per runner, and at least one runner")
    quiet = dataclasses.replace(settings, host_probe=False)
    start = threading.Barrier(len(runners))
    streams = [_Stream() for _ in runners]
    device = measure_lock.device_of(runners[0])
    with measure_lock.measuring(device, wait=lock_wait) as held:
        threads = [
            threading.Thread(target=_run_stream, args=(r, f, quiet, start, s), name=f"pytest-trt stream {i}")
            for i, (r, f, s) in enumerate(zip(runners, feeds, streams, strict=True))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for stream in streams:
        if stream.error is not None:
            raise stream.error
    wall = max(s.ended for s in streams) - min(s.started for s in streams)
    latency = [t for s in streams for t in s.latency]
    return ConcurrentResult(
        streams=len(runners),
        batch=batch,
        clock=streams[0].clock,
        latency=summarize(latency),
        throughput=batch * len(latency) / max(wall, 1e-9),
        iterations=len(latency),
        per_stream=tuple(len(s.latency) for s in streams),
        duration_s=wall,
        samples_ms=tuple(latency),
        lock_wait_s=held.waited_s,
        warnings=tuple(dict.fromkeys(w for s in streams for w in s.warnings)),
    )


def _run_stream(runner: Runner, feed: Feed, settings: MeasureSettings, start: threading.Barrier, out: _Stream) -> None:
    """One thread: its runner's session, warmed up, then timed from the common start."""
    try:
        session = timed_session(runner, feed, settings)
    except BaseException as exc:  # handed to the caller's thread, which raises it
        out.error = exc
        start.abort()
        return
    try:
        out.clock = session.clock
        _for(settings.warmup_ms, lambda: session.run(1))
        start.wait()
        out.started = time.perf_counter()
        deadline = out.started + settings.max_duration_ms / 1000
        enough_at = out.started + settings.min_duration_ms / 1000
        while True:
            out.latency += session.run(1).latency
            now = time.perf_counter()
            if now >= deadline or (len(out.latency) >= settings.min_iterations and now >= enough_at):
                break
        out.ended = time.perf_counter()
        out.warnings += session.warnings
    except threading.BrokenBarrierError:
        out.error = None  # another stream failed; its error is the one raised
        out.started = out.ended = time.perf_counter()
    except BaseException as exc:
        out.error = exc
        start.abort()
    finally:
        session.close()


def _for(ms: float, step: Callable[[], Any]) -> None:
    """Run ``step`` at least once, then until ``ms`` have passed."""
    ends = time.perf_counter() + ms / 1000
    step()
    while time.perf_counter() < ends:
        step()
