"""``trt_perf``: budgets for one backend, and how to measure."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_trt import measure_defaults
from pytest_trt.arguments import SyncMode, check_choice, checked_number, mode
from pytest_trt.errors import SpecError


@dataclass(frozen=True)
class MeasureSettings:
    """How a sample is taken. Defaults come from options; marks override per test."""

    warmup_ms: float = measure_defaults.WARMUP_MS
    min_iterations: int = measure_defaults.MIN_ITERATIONS
    min_duration_ms: float = measure_defaults.MIN_DURATION_MS
    max_duration_ms: float = measure_defaults.MAX_DURATION_MS
    cuda_graph: bool = False
    transfers: bool = True
    sync: SyncMode = SyncMode.BLOCKING
    host_probe: bool = True  # time host_probe.py between host-clock iterations

    def __post_init__(self) -> None:
        checked_number(self.warmup_ms, "warmup_ms")
        if not isinstance(self.min_iterations, int) or self.min_iterations < 1:
            raise SpecError(f"min_iterations must be a positive int, got {self.min_iterations!r}")
        checked_number(self.min_duration_ms, "min_duration_ms")
        checked_number(self.max_duration_ms, "max_duration_ms")
        object.__setattr__(self, "sync", mode(self.sync, SyncMode, "sync"))
        for arg in ("cuda_graph", "transfers", "host_probe"):
            if not isinstance(getattr(self, arg), bool):
                raise SpecError(f"{arg} must be True or False, got {getattr(self, arg)!r}")

    def for_further_recording_session(self) -> MeasureSettings:
        """How a recording's further sessions are measured: they only add their floors (the spread
        between sessions, and the middle one kept), so half the warm-up and half the timed window
        will do. Their iterations stay: a slow model's floor needs them, where a session measured
        with half as many read a higher floor on a noisy host (bench/recording_sessions.py)."""
        return dataclasses.replace(self, warmup_ms=self.warmup_ms / 2, min_duration_ms=self.min_duration_ms / 2)


@dataclass(frozen=True)
class PerfBudget:
    """One ``trt_perf`` mark: budgets for one backend, and how to measure. Without a backend it
    is a GPU budget: enforced on whichever GPU backend runs."""

    backend: str | None = None
    max_latency_ms: float | None = None
    percentile: float = 50.0
    min_throughput: float | None = None
    max_regression: float | None = None  # fraction; None -> the session's threshold
    max_device_memory_mb: float | None = None  # the engine and its buffers, where the backend tells
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    # batch_sizes=: one engine measured at each batch size (a sweep), budgets per batch where a
    # budget is given as {batch: value}; a plain value applies at every batch.
    batch_sizes: tuple[int, ...] = ()
    latency_by_batch: tuple[tuple[int, float], ...] = ()
    throughput_by_batch: tuple[tuple[int, float], ...] = ()
    # streams=N (or a tuple to sweep N): N runners of the engine timed at once from N threads.
    streams: tuple[int, ...] = ()

    def at_batch(self, batch: int) -> PerfBudget:
        """The budget one point of the sweep is judged by: the values for ``batch``."""
        return dataclasses.replace(
            self,
            max_latency_ms=dict(self.latency_by_batch).get(batch, self.max_latency_ms),
            min_throughput=dict(self.throughput_by_batch).get(batch, self.min_throughput),
            batch_sizes=(),
            latency_by_batch=(),
            throughput_by_batch=(),
        )

    def __post_init__(self) -> None:
        if self.backend is not None and (not isinstance(self.backend, str) or not self.backend):
            raise SpecError(f"backend must be a backend name, got {self.backend!r}")
        checked_number(self.max_latency_ms, "max_latency_ms", allow_none=True)
        if not 0.0 <= checked_number(self.percentile, "percentile") <= 100.0:
            raise SpecError(f"percentile must be in [0, 100], got {self.percentile!r}")
        checked_number(self.min_throughput, "min_throughput", allow_none=True)
        checked_number(self.max_regression, "max_regression", allow_none=True)
        checked_number(self.max_device_memory_mb, "max_device_memory_mb", allow_none=True)


_MEASURE_FIELDS = {f.name for f in dataclasses.fields(MeasureSettings)}
_DERIVED = {"measure", "latency_by_batch", "throughput_by_batch"}  # fields no mark argument names


def make_perf_budget(defaults: MeasureSettings, backends: tuple[str, ...] = (), **kw: Any) -> PerfBudget:
    """Validate one ``trt_perf`` mark; measurement keywords override the session defaults.
    ``backends`` are the registered backend names the budget's ``backend`` must be one of."""
    known = {f.name for f in dataclasses.fields(PerfBudget)} - _DERIVED | _MEASURE_FIELDS
    unknown = sorted(set(kw) - known)
    if unknown:
        raise SpecError(f"trt_perf: unknown argument {unknown[0]!r} (known: {', '.join(sorted(known))})")
    measure_kw = {k: kw.pop(k) for k in list(kw) if k in _MEASURE_FIELDS}
    if backends and kw.get("backend") is not None:
        check_choice(kw["backend"], backends, "backend")
    sweep = _batch_sizes(kw.pop("batch_sizes", ()))
    streams = _streams(kw.pop("streams", ()))
    if sweep and streams:
        raise SpecError("trt_perf: give batch_sizes= or streams=, not both (sweep one at a time)")
    for arg, by_batch in (("max_latency_ms", "latency_by_batch"), ("min_throughput", "throughput_by_batch")):
        if isinstance(kw.get(arg), Mapping):
            kw[by_batch] = _by_batch(kw.pop(arg), sweep, arg)
    return PerfBudget(measure=dataclasses.replace(defaults, **measure_kw), batch_sizes=sweep, streams=streams, **kw)


def _streams(value: Any) -> tuple[int, ...]:
    """``streams=``: a number of concurrent streams, or a tuple of them to sweep."""
    if value is None or value == ():
        return ()
    many = value if isinstance(value, (tuple, list)) else (value,)
    if not many or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in many) or len(set(many)) != len(many):
        raise SpecError(f"streams must be a positive int or a tuple of distinct positive ints, got {value!r}")
    return tuple(sorted(many))


def _batch_sizes(value: Any) -> tuple[int, ...]:
    """``batch_sizes=``: distinct positive ints, measured in increasing order."""
    if value is None or value == ():
        return ()
    wrong = f"batch_sizes must be a tuple of distinct positive ints, got {value!r}"
    if not isinstance(value, (tuple, list)) or not value:
        raise SpecError(wrong)
    if not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in value) or len(set(value)) != len(value):
        raise SpecError(wrong)
    return tuple(sorted(value))


def _by_batch(values: Mapping[Any, Any], sweep: tuple[int, ...], arg: str) -> tuple[tuple[int, float], ...]:
    """A budget given per batch size: every key one of ``batch_sizes``, every value a number."""
    if not sweep:
        raise SpecError(f"{arg} given per batch size ({values!r}) needs batch_sizes= (the sizes to measure)")
    pairs = []
    for batch, value in values.items():
        if batch not in sweep or isinstance(batch, bool):
            raise SpecError(f"{arg} names batch {batch!r}, which batch_sizes {sweep} does not measure")
        pairs.append((batch, checked_number(value, f"{arg}[{batch}]")))
    return tuple(sorted(pairs))
