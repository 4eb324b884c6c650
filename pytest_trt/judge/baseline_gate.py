"""The per-test baseline step: compare a measurement with its stored baseline, or stage a new one.

The statistical rule is ``baselines.regression``; this step decides what applies to one test
(off, no baseline, stale, invalid, record, compare) and what the test's failure says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from pytest_trt import backends
from pytest_trt.backends.layer_profile import LayerProfile
from pytest_trt.baselines.comparability import accuracy_drift, changes, staleness
from pytest_trt.baselines.drift import judge as judge_history
from pytest_trt.baselines.entry import BaselineEntry, BaselineInput, entry_from_measurement
from pytest_trt.baselines.hardware import is_absolute_module
from pytest_trt.baselines.history import HistoryPoint
from pytest_trt.baselines.interleaved import SideBySide, decide_interleaved
from pytest_trt.baselines.memory import MemoryChange, memory_change
from pytest_trt.baselines.regression import (
    MIN_SAMPLES,
    RegressionVerdict,
    Verdict,
    decide,
    nothing_changed,
    probe_floor_problem,
    record,
)
from pytest_trt.baselines.store import NOT_COMPARED, BaselineStore
from pytest_trt.baselines.validation import BaselineEntryError
from pytest_trt.errors import BaselineFileError
from pytest_trt.timing.measure import PerfResult

if TYPE_CHECKING:
    from pytest_trt.judge.accuracy import AccuracyResult


class BaselineMode(str, Enum):
    """--trt-baseline: compare with baselines, also fail a test without one (or with a stale
    one), or leave baselines alone."""

    COMPARE = "compare"
    STRICT = "strict"
    OFF = "off"


class BaselineNote(str, Enum):
    """What the baseline step did for one test."""

    OFF = "off"  # not compared: --trt-baseline=off, or nothing was measured
    COMPARED = "compared"  # compared with its baseline; nothing changed since it was recorded
    CHANGED = "changed"  # compared; the model, runtime or build options changed since (note says what)
    NO_BASELINE = "no-baseline"
    STALE = "stale"  # the workload changed: not comparable
    UNREADABLE = "unreadable"  # the baseline file cannot be read, or is another hardware's
    INVALID = "invalid"  # the test's entry holds a value a comparison cannot use
    OUTSIDE_ROOTDIR = "outside-rootdir"  # the test file has no name in the store
    RECORDED = "recorded"  # --trt-update-baselines staged a new entry
    NOT_RECORDED = "not-recorded"  # --trt-update-baselines, but the test failed its gates


@dataclass(frozen=True)
class BaselineOutcome:
    """The baseline step's result for one test; the session stages ``staged`` in the store."""

    state: BaselineNote
    note: str = ""
    verdict: RegressionVerdict | None = None
    staged: BaselineEntry | None = None  # the entry to record (--trt-update-baselines)
    warnings: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    history: tuple[HistoryPoint, ...] = ()  # the baseline's recordings, oldest first (this one's included)
    baseline_layers: LayerProfile | None = None  # the compared entry's per-layer times, where it has them
    memory: MemoryChange | None = None  # device memory against the baseline's, where both know it

    @property
    def regressed(self) -> bool:
        """A regression confirmed and failing the test."""
        return bool(self.failures) and self.verdict is not None and self.verdict.status is Verdict.REGRESSED


# An A/B against the model a baseline entry was recorded from (read back from git): the call that
# times fresh sessions of both, why there is none, or None where the entry names no model in git.
BaselineModelSessions = Callable[[BaselineEntry], "Callable[[], SideBySide] | str | None"]


@dataclass(frozen=True)
class Sessions:
    """How a comparison measures more: fresh sessions of this test's engine, and an interleaved
    A/B against the baseline's own model."""

    fresh: Callable[[], PerfResult]
    baseline_model: BaselineModelSessions | None = None


@dataclass(frozen=True)
class BaselinePolicy:
    """How the session treats baselines; ``enforce`` False reports a regression without failing
    (--trt-perf=report). A ``mode`` given as its string value is taken as that mode."""

    mode: BaselineMode
    update: bool
    threshold: float
    enforce: bool = True
    commit: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", BaselineMode(self.mode))


def accuracy_stats(result: AccuracyResult | None) -> dict[str, dict[str, float]]:
    """The error statistics of each output that are numbers, as baselines keep and compare them."""
    if result is None:
        return {}
    return {output.name: output.stats.numbers() for output in result.outputs}


def judge_baseline(
    store: BaselineStore,
    measured: BaselineInput,
    remeasure: Callable[[], PerfResult],
    policy: BaselinePolicy,
    *,
    software: Mapping[str, str] | None = None,
    failed_gates: Sequence[str] = (),
    memory_engine_own: bool = True,
    model_source: str | None = None,
    baseline_model: BaselineModelSessions | None = None,
) -> BaselineOutcome:
    """Compare ``measured.perf`` with the stored baseline, or make the entry to record.

    ``remeasure`` returns a new measurement and changes nothing; it is called at most once when
    comparing (as ``decide`` asks) and as often as ``record`` asks when updating. The outcome's
    ``staged`` entry is recorded from the kept measurement, so a baseline never stores a
    measurement taken in a slow moment of the host. A test that failed its other gates
    (``failed_gates`` names them) records nothing: its numbers are those of a model that is
    wrong or over budget. ``memory_engine_own``: the device memory figure is the engine's own,
    not the GPU's growth since the session opened (``MemoryChange.engine_own``). ``model_source``:
    the model file's path in git, for a recording to keep. ``baseline_model``: the A/B
    against the model an entry was recorded from, where the model changed since.
    """
    perf = measured.perf
    if policy.mode is BaselineMode.OFF or perf is None:
        return BaselineOutcome(BaselineNote.OFF)
    module = measured.subject.module
    if is_absolute_module(module):
        return BaselineOutcome(BaselineNote.OUTSIDE_ROOTDIR, "test file outside the rootdir", failures=((
            f"baseline: the test file {module} is outside pytest's rootdir, so it has no name in the "
            "baseline store. pytest may have chosen the rootdir from the value of a path option written "
            "after a space: write --trt-baseline-dir=PATH, with '=', or pass --rootdir"
        ),))
    if policy.update:
        return _record(store, measured, perf, remeasure, policy, software, failed_gates, model_source)
    try:
        entry = store.lookup(module, measured.subject.nodeid)
    except BaselineEntryError as exc:
        return BaselineOutcome(BaselineNote.INVALID, "baseline entry invalid", failures=(
            f"baseline: {exc}; not compared: fix the entry, or re-record it with --trt-update-baselines",
        ))
    except BaselineFileError as exc:
        return BaselineOutcome(
            BaselineNote.UNREADABLE, "baseline file unreadable", failures=(f"baseline: {exc}; {NOT_COMPARED}",)
        )
    if entry is None:
        return _missing(store, policy)
    sessions = Sessions(remeasure, baseline_model)
    return _compare(store, entry, measured, perf, sessions, policy, software, memory_engine_own)


def _record(
    store: BaselineStore,
    measured: BaselineInput,
    perf: PerfResult,
    remeasure: Callable[[], PerfResult],
    policy: BaselinePolicy,
    software: Mapping[str, str] | None,
    failed_gates: Sequence[str],
    model_source: str | None,
) -> BaselineOutcome:
    """--trt-update-baselines: the entry to stage, from the middle of the recordings."""
    if failed_gates:
        note = f"baseline not recorded: the test failed its gates ({', '.join(failed_gates)})"
        return BaselineOutcome(BaselineNote.NOT_RECORDED, note)
    fastest = perf.fastest_probe_ms
    recording = record(perf, remeasure, float("inf") if fastest is None else fastest)
    kept = dataclasses.replace(measured, perf=recording.kept)
    entry = entry_from_measurement(
        kept, policy.commit, software, session_floors_ms=recording.floors_ms, recorded_busy=recording.busy,
        model_source=model_source,
    )
    entry = entry.with_history(store.earlier(measured.subject.module, measured.subject.nodeid), store.history_limit)
    series = tuple(entry.series())
    warnings: list[str] = []
    if recording.busy:
        warnings.append(
            f"baseline recorded while the host was busy ({'; '.join(recording.busy)}): until it is recorded again "
            "on a quiet host, comparisons with it can find a regression but never call the test unchanged"
        )
    drift = judge_history(series, policy.threshold)
    if drift.flagged:  # a recording is not a comparison: said, never failed
        warnings.append(f"{drift.message()} ({measured.subject.backend})")
    return BaselineOutcome(
        BaselineNote.RECORDED, recording.note, staged=entry, warnings=tuple(warnings), history=series
    )


def _missing(store: BaselineStore, policy: BaselinePolicy) -> BaselineOutcome:
    failures: tuple[str, ...] = ()
    if policy.mode is BaselineMode.STRICT:
        failures = ((
            f"baseline: no baseline for this test on {store.hardware} (--trt-baseline=strict); "
            "record one with --trt-update-baselines"
        ),)
    return BaselineOutcome(BaselineNote.NO_BASELINE, "no baseline", failures=failures)


def _compare(
    store: BaselineStore,
    entry: BaselineEntry,
    measured: BaselineInput,
    perf: PerfResult,
    sessions: Sessions,
    policy: BaselinePolicy,
    software: Mapping[str, str] | None,
    memory_engine_own: bool,
) -> BaselineOutcome:
    """The stored entry against this measurement: stale, unusable probe floor, or a verdict."""
    subject = measured.subject
    reason = staleness(entry, measured)
    if reason is not None:
        failures: tuple[str, ...] = ()
        if policy.mode is BaselineMode.STRICT:
            failures = (f"baseline: stale baseline, not compared ({reason}); re-record it with --trt-update-baselines",)
        return BaselineOutcome(
            BaselineNote.STALE, f"stale: {reason}", failures=failures, history=tuple(entry.series())
        )
    probe_problem = probe_floor_problem(entry, perf)
    if probe_problem is not None:
        return BaselineOutcome(BaselineNote.INVALID, "baseline entry invalid", failures=((
            f"baseline: baseline file {store.path_for(subject.module)}: entry {subject.nodeid!r}: {probe_problem}; "
            "not compared: re-record it with --trt-update-baselines"
        ),))
    changed = "; ".join(changes(entry, measured, software))
    verdict = _verdict(entry, measured, perf, sessions, policy.threshold)
    if not changed and backends.get(subject.backend).reproducible_build:
        verdict = nothing_changed(verdict)
    since = f" (changed since the baseline: {changed})" if changed else ""
    failures = ()
    warnings = [*accuracy_drift(entry, measured.accuracy), *_detectable(verdict, subject.backend)]
    series = tuple(entry.series())
    drift = judge_history(series, policy.threshold)
    if verdict.status is Verdict.REGRESSED and policy.enforce:
        failures = (f"regression ({subject.backend}): {verdict.message}{since}",)
    elif verdict.status is Verdict.INCONCLUSIVE:
        line = f"regression check inconclusive ({subject.backend}): {verdict.message}{since}"
        if policy.mode is BaselineMode.STRICT and policy.enforce:
            failures = (f"{line} (--trt-baseline=strict)",)
        else:
            warnings.append(line)
    if drift.flagged:
        line = f"{drift.message()} ({subject.backend})"
        if policy.mode is BaselineMode.STRICT and policy.enforce:
            failures += (f"{line} (--trt-baseline=strict)",)
        else:
            warnings.append(line)
    memory = memory_change(entry, perf.device_memory, engine_own=memory_engine_own)
    memory_failures, memory_warnings = _memory_regression(memory, subject.backend, since, policy.enforce)
    failures += memory_failures
    warnings += memory_warnings
    return BaselineOutcome(
        BaselineNote.CHANGED if changed else BaselineNote.COMPARED,
        changed,
        verdict=verdict,
        warnings=tuple(warnings),
        failures=failures,
        history=series,
        baseline_layers=entry.layers,
        memory=memory,
    )


def _verdict(
    entry: BaselineEntry, measured: BaselineInput, perf: PerfResult, sessions: Sessions, threshold: float
) -> RegressionVerdict:
    """The stored baseline's verdict; where the model changed since it was recorded, an
    interleaved A/B against the baseline's own model decides instead, where that model can be had
    (the message says why not where it cannot). Even a first session that reads unchanged does not
    settle a changed model: against a floor recorded while the host ran slow, a slower model reads
    unchanged too."""
    model = entry.model
    few = len(perf.samples_ms) < MIN_SAMPLES  # decide says so; no A/B for a floor it cannot read
    if few or model is None or model.content_hash == measured.subject.model.content_hash:
        return decide(entry, perf, sessions.fresh, threshold)
    ab = sessions.baseline_model(entry) if sessions.baseline_model is not None else None
    if ab is None or isinstance(ab, str):
        verdict = decide(entry, perf, sessions.fresh, threshold)
        if ab is None:
            return verdict
        return dataclasses.replace(verdict, message=f"{verdict.message}; no A/B against the baseline's model: {ab}")
    where = f"{model.source} at commit {(entry.commit or '')[:12]}"
    return decide_interleaved(ab(), threshold, baseline_model=where)


def _memory_regression(
    memory: MemoryChange | None, backend: str, since: str, enforce: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The failures and warnings a device memory growth beyond the baseline's tolerance adds: a
    failure where the policy enforces and the figure is the engine's own, else a warning."""
    if memory is None or not memory.regressed:
        return (), ()
    line = f"device memory regression ({backend}): {memory.message()}{since}"
    if not memory.fails:
        return (), (
            f"{line}; {backend} counts the GPU's growth since its session opened, which another process on "
            "the GPU adds to: reported, not failed (a max_device_memory_mb= budget fails)",
        )
    return ((line,), ()) if enforce else ((), (line,))


def _detectable(verdict: RegressionVerdict, backend: str) -> list[str]:
    """Where the spread between sessions (or recordings) is wider than the threshold itself, say
    what the gate can see on this host: a model whose floor varies that much cannot be gated finer."""
    varied = verdict.spread
    if varied is None or varied.fraction <= verdict.threshold:
        return []
    return [
        f"{varied.how_far(backend)}: on this host a slowdown under {verdict.bound * 100:.1f}% is not detected "
        f"(threshold {verdict.threshold * 100:g}%)"
    ]
