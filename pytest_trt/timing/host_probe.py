"""A fixed CPU workload timed between host-clock iterations, so that a comparison with a baseline
can divide out how fast the host happened to run at the time.

On shared machines the host switches between speed states for tenths of a second to many seconds
(another tenant on the same physical core): every floor measured in a slow state is 30-40% higher.
Timing this probe alongside the model shows that state. ``regression.assess`` reads it at the
probe's floor, the statistic the model is compared by: both floors come from the host's fastest
moments in a measurement, where a higher percentile of the probe reads a host that is slow part of
the time as slow while the model's floor is not (docs/regression.md says how well it works).

The probe is a small float32 matrix product: compute-bound vector work like most inference
kernels, so it slows down in the same states. It uses numpy, not the backend under test, so that
a runtime upgrade that slows the model is never divided out.
"""

from __future__ import annotations

import time

import numpy as np

SIZE = 48  # small enough that BLAS runs it on one thread, like the timed loop
REPEATS = 16  # about 0.1 ms per probe on a 2-core cloud VM
# When to probe again (measure.HostTimedSession): after SPACING probe-durations of model time and
# at least GAP iterations. The iteration right after a probe is left out of latency budgets (its
# caches hold the probe's data), so GAP bounds the share of iterations budgets lose to 1 / GAP
# while the probe still runs several times in a slow model's 20 iterations. Together they cost
# about 6% of timed time for a 0.4 ms model, where SPACING 4 and no GAP cost 20%;
# bench/probe_spacing.py measures how well each spacing divides out the host's speed.
SPACING = 16.0
GAP = 4
# What a baseline records with its probe times, so that times of another probe are never divided
# by (regression.staleness): the workload, its size, and how its buffers and caches are prepared.
KIND = f"matmul-f32-{SIZE}x{SIZE}x{REPEATS}-aligned-warm"
ALIGNMENT = 64  # bytes: a cache line, so that no row of the operands straddles one by chance


def _aligned(values: np.ndarray) -> np.ndarray:
    """A copy of ``values`` starting on an ALIGNMENT boundary: numpy only guarantees 16 bytes,
    and the probe's speed varied with where its buffers happened to start."""
    raw = np.empty(values.nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    out = raw[start:start + values.nbytes].view(values.dtype).reshape(values.shape)
    out[...] = values
    return out


class HostProbe:
    """``probe()`` runs the workload once and returns its wall time in ms (``last_ms`` keeps it).
    ``fastest_ms`` is the fastest probe any instance in this process has timed: the host's usual
    speed, which tells a baseline recording taken while the host runs slow (regression.record)."""

    fastest_ms = float("inf")

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self._a = _aligned(rng.standard_normal((SIZE, SIZE)).astype(np.float32))
        self._b = _aligned(rng.standard_normal((SIZE, SIZE)).astype(np.float32))
        self._out = _aligned(np.zeros((SIZE, SIZE), np.float32))
        self._last_ms = self._last_cpu_ms = 0.0

    def probe(self) -> float:
        a, b, out = self._a, self._b, self._out
        # Untimed: the model's iteration before it evicted the operands from the caches.
        np.matmul(a, b, out=out)
        cpu_start = time.thread_time_ns()
        start = time.perf_counter_ns()
        for _ in range(REPEATS):
            np.matmul(a, b, out=out)
        self._last_ms = (time.perf_counter_ns() - start) / 1e6
        self._last_cpu_ms = (time.thread_time_ns() - cpu_start) / 1e6
        HostProbe.fastest_ms = min(HostProbe.fastest_ms, self._last_ms)
        return self._last_ms

    @property
    def last_ms(self) -> float:
        return self._last_ms

    @property
    def last_cost_ms(self) -> float:
        """The last probe's cost without the time it was preempted: its CPU time on this thread
        where that is below its wall time (a clock too coarse to read it, 0, is not used)."""
        cpu = self._last_cpu_ms
        return min(self._last_ms, cpu) if cpu > 0 else self._last_ms
