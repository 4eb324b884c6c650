"""One test's baseline entry, typed: what the store keeps and how it is made from a measurement.

In the file an entry is the JSON form of ``BaselineEntry`` under serde's rule (``to_file``,
``from_file``): a fixed set of latency quantiles plus n (enough to rebuild the sample for a
statistical test), the host probe's the same way with the probe's name, the throughput, accuracy
error statistics per output, the software, model hash, build spec and workload it ran with, and
when and from which commit it was recorded. Numbers keep six significant digits.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.backends.layer_profile import LayerProfile
from pytest_trt.baselines.history import HistoryPoint, merged, point_settings
from pytest_trt.baselines.subject import BuildFacts, TensorSignature, TestSubject
from pytest_trt.serde import from_data, to_data
from pytest_trt.timing import host_probe
from pytest_trt.timing.measure import PerfResult
from pytest_trt.timing.stats import percentile_label, quantile_summary

# Percent points kept per test. The low tail (min, p0.5, p1, p2) is dense because the regression
# test compares the sample floor (see regression.py); the body and p99 serve reports.
BASELINE_POINTS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 100.0)

# Accuracy error statistics per output that comparability.accuracy_drift compares.
DRIFT_STATS = ("max_abs", "p99_abs", "mean_abs", "max_rel", "p99_rel", "mean_rel")

# Six significant digits: finer than any timer resolves, coarse enough for readable diffs.
_DIGITS = 6
MODEL_HASH_CHARS = 12  # of the model's content hash a history point keeps: enough to tell versions apart

# Field metadata: where the value is None the key is left out of the file, as it always was.
_OMIT_IF_NONE = {"omit_if_none": True}

# Per output, error statistic -> value, as the accuracy gate computed them.
AccuracyStats = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class SampleSummary:
    """A stored sample: its size, mean and quantiles keyed by label (``p0``, ``p0.5``, ``p50``)."""

    n: int
    quantiles: dict[str, float]
    mean: float | None = field(default=None, metadata=_OMIT_IF_NONE)

    @property
    def floor(self) -> float:
        """The sample's minimum (``p0``), which the regression test compares."""
        return self.quantiles["p0"]

    def points(self) -> list[tuple[float, float]]:
        """(percent, value) in percentile order; ValueError for a label that is not ``p<number>``."""
        return sorted((float(label.removeprefix("p")), value) for label, value in self.quantiles.items())


@dataclass(frozen=True)
class ProbeSummary(SampleSummary):
    """The host-speed probe's times (host_probe.py), and the probe that timed them (None: an
    earlier probe, recorded before probes were named)."""

    probe: str | None = field(default=None, metadata=_OMIT_IF_NONE)


@dataclass(frozen=True)
class EntryModel:
    """The model as an entry names it: its file name and the hash of its content; ``source``, its
    path from the top of the git work tree where git tracked it when recorded (with the entry's
    ``commit``, where the baseline's model can be read back for an interleaved A/B)."""

    file: str
    content_hash: str | None = None
    source: str | None = field(default=None, metadata=_OMIT_IF_NONE)


@dataclass(frozen=True)
class TimedWorkload:
    """What was run and how it was timed: a baseline with another one is stale. ``clock`` and
    ``mode`` (``PerfResult.mode``) are None where nothing was timed."""

    inputs: dict[str, TensorSignature]
    outputs: dict[str, TensorSignature]
    batch: int
    precision: str
    backend: str
    clock: str | None = field(default=None, metadata=_OMIT_IF_NONE)
    mode: dict[str, Any] | None = field(default=None, metadata=_OMIT_IF_NONE)


@dataclass(frozen=True)
class BaselineEntry:
    """One test's baseline. Optional parts are None (or empty) in entries that lack them."""

    latency_ms: SampleSummary
    host_probe_ms: ProbeSummary | None = field(default=None, metadata=_OMIT_IF_NONE)  # None: recorded without the probe
    throughput_qps: float | None = None
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # output -> statistic -> value
    software: dict[str, str] = field(default_factory=dict)  # backend, runtime, driver, cuda
    model: EntryModel | None = None
    build: BuildFacts | None = None
    workload: TimedWorkload | None = None
    recorded_at: str | None = None  # ISO 8601, UTC
    commit: str | None = None
    # The floors of the sessions it was recorded in (each a new runner of the engine): how far a
    # session of the unchanged model reads from another on this host. None: recorded before
    # sessions were sampled.
    session_floors_ms: list[float] | None = field(default=None, metadata=_OMIT_IF_NONE)
    # Why the host counted as busy while the kept session was timed (None: quiet, or recorded
    # before contention was read): a floor timed then may read slow, so it judges nothing unchanged.
    recorded_busy: list[str] | None = field(default=None, metadata=_OMIT_IF_NONE)
    # Earlier recordings of this test, oldest first (None: recorded before history was kept).
    history: list[HistoryPoint] | None = field(default=None, metadata=_OMIT_IF_NONE)
    # Per-layer times of the recording, compact (the slowest layers): what a regression's
    # failure compares layer by layer. None: recorded without a profile.
    layers: LayerProfile | None = field(default=None, metadata=_OMIT_IF_NONE)
    # The device memory the engine and its buffers took (bytes), where the backend tells it:
    # what a comparison's memory check reads (baselines/memory.py).
    device_memory_bytes: int | None = field(default=None, metadata=_OMIT_IF_NONE)

    def point(self) -> HistoryPoint:
        """This recording as a history point: its floor, median, date, commit and settings."""
        workload = self.workload
        settings = point_settings({
            "backend": workload.backend if workload else self.software.get("backend"),
            "precision": workload.precision if workload else None,
            "batch": workload.batch if workload else None,
            "runtime": self.software.get("runtime"),
            # Which model: recordings of one model on one runtime show the host's drift (spread.py).
            "model": self.model.content_hash[:MODEL_HASH_CHARS] if self.model and self.model.content_hash else None,
        })
        return HistoryPoint(
            floor_ms=self.latency_ms.floor,
            median_ms=self.latency_ms.quantiles.get("p50", self.latency_ms.floor),
            recorded_at=self.recorded_at,
            commit=self.commit,
            throughput_qps=self.throughput_qps,
            settings=settings,
        )

    def series(self) -> list[HistoryPoint]:
        """Every recording the entry knows of, its own included, oldest first."""
        return merged([*(self.history or ()), self.point()], limit=len(self.history or ()) + 1)

    def with_history(self, earlier: Sequence[HistoryPoint], limit: int) -> BaselineEntry:
        """This entry with ``earlier`` recordings joined to its own history (a union), the whole
        series bounded to the last ``limit`` recordings, this one included."""
        own = self.point()
        series = merged([*earlier, *(self.history or ()), own], limit)
        kept = [p for p in series if p.key() != own.key()]
        return dataclasses.replace(self, history=kept or None)

    def to_file(self) -> dict[str, Any]:
        """The entry as the baseline file holds it."""
        return typing.cast(dict[str, Any], _file_data(self))

    @classmethod
    def from_file(cls, data: Any) -> BaselineEntry:
        """An entry read back from the file's JSON; ``serde.SerdeError`` names a field of the
        wrong shape (``baselines.validation.read_entry`` checks the numbers first)."""
        return from_data(cls, data, where="entry")


def _file_data(value: Any) -> Any:
    """``serde.to_data``, leaving out the keys of the entry's own records that are marked
    ``_OMIT_IF_NONE`` and are None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _file_data(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (f.metadata.get("omit_if_none") and getattr(value, f.name) is None)
        }
    return to_data(value)


@dataclass(frozen=True)
class BaselineInput:
    """What an entry is made from and compared with: what ran for the test, its measurement
    (None where nothing was timed) and its accuracy error statistics."""

    subject: TestSubject
    perf: PerfResult | None = None
    accuracy: AccuracyStats = field(default_factory=dict)


def _round(value: float) -> float:
    return float(f"{value:.{_DIGITS}g}")


def sample_summary(samples_ms: Sequence[float]) -> SampleSummary:
    """n, mean and the BASELINE_POINTS quantiles of a sample: enough to rebuild it for the test."""
    samples = np.asarray(samples_ms, dtype=np.float64)
    quantiles = quantile_summary(samples, BASELINE_POINTS)
    return SampleSummary(
        n=int(samples.size),
        mean=_round(float(samples.mean())),
        quantiles={percentile_label(p): _round(v) for p, v in zip(BASELINE_POINTS, quantiles, strict=True)},
    )


def timed_workload(measured: BaselineInput) -> TimedWorkload:
    """The test's workload plus how it was timed: both decide whether numbers are comparable."""
    subject, perf = measured.subject, measured.perf
    workload = subject.workload
    return TimedWorkload(
        inputs=dict(workload.inputs),
        outputs=dict(workload.outputs),
        batch=workload.batch,
        precision=workload.precision,
        backend=subject.backend,
        clock=perf.clock if perf is not None else None,
        mode=to_data(perf.mode) if perf is not None else None,
    )


def entry_from_measurement(
    measured: BaselineInput,
    commit: str | None,
    software: Mapping[str, str] | None = None,
    *,
    session_floors_ms: Sequence[float] = (),
    recorded_busy: Sequence[str] = (),
    model_source: str | None = None,
) -> BaselineEntry:
    """What is stored for one test. ``software`` adds facts the subject lacks (driver, CUDA);
    ``session_floors_ms`` the floors of the sessions it was recorded in; ``recorded_busy`` why the
    host was busy while the kept one was timed; ``model_source`` the model file's path in git."""
    subject, perf = measured.subject, measured.perf
    if perf is None or not perf.samples_ms:
        raise ValueError(f"{subject.nodeid}: no latency sample to record as a baseline")
    probe = None
    if perf.probe_ms:
        probe = ProbeSummary(**vars(sample_summary(perf.probe_ms)), probe=host_probe.KIND)
    build = subject.build
    return BaselineEntry(
        latency_ms=sample_summary(perf.samples_ms),
        host_probe_ms=probe,
        throughput_qps=_round(perf.throughput),
        accuracy={
            output: {k: _round(float(v)) for k, v in stats.items() if math.isfinite(v)}
            for output, stats in measured.accuracy.items()
        },
        software={"backend": subject.backend, "runtime": subject.runtime_version, **(software or {})},
        model=EntryModel(Path(subject.model.path).name, subject.model.content_hash, model_source),
        build=BuildFacts(build.precision, {k: tuple(v) for k, v in build.shapes.items()}, to_data(build.options)),
        workload=timed_workload(measured),
        recorded_at=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        commit=commit,
        session_floors_ms=[_round(f) for f in session_floors_ms] if len(session_floors_ms) > 1 else None,
        recorded_busy=list(recorded_busy) or None,
        device_memory_bytes=perf.device_memory,
    )
