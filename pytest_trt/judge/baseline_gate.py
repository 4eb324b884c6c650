"""The per-test baseline step: compare a measurement with its stored baseline, or stage a new one.

The statistical rule is ``baselines.regression``; this step decides what applies to one test
(off, no baseline, stale, invalid, record, compare) and what the test's failure says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pytest_trt.baselines.regression import (
    RegressionVerdict,
    Timed,
    Verdict,
    accuracy_drift,
    changes,
    decide,
    probe_floor_problem,
    record,
    staleness,
)
from pytest_trt.baselines.store import (
    NOT_COMPARED,
    BaselineEntryError,
    BaselineInput,
    BaselineStore,
    is_absolute_module,
)
from pytest_trt.errors import BaselineFileError


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
    staged: dict[str, Any] | None = None  # the entry to record (--trt-update-baselines)
    warnings: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class BaselinePolicy:
    """How the session treats baselines: ``mode`` is compare | strict | off; ``enforce`` False
    reports a regression without failing (--trt-perf=report)."""

    mode: str
    update: bool
    threshold: float
    enforce: bool = True
    commit: str | None = None


def judge_baseline(
    store: BaselineStore,
    measured: BaselineInput,
    remeasure: Callable[[], Timed],
    policy: BaselinePolicy,
    *,
    software: Mapping[str, Any] | None = None,
    failed_gates: Sequence[str] = (),
) -> BaselineOutcome:
    """Compare ``measured.perf`` with the stored baseline, or make the entry to record.

    ``remeasure`` returns a new measurement and changes nothing; it is called at most once when
    comparing (as ``decide`` asks) and as often as ``record`` asks when updating. The outcome's
    ``staged`` entry is recorded from the kept measurement, so a baseline never stores a
    measurement taken in a slow moment of the host. A test that failed its other gates
    (``failed_gates`` names them) records nothing: its numbers are those of a model that is
    wrong or over budget.
    """
    if policy.mode == "off" or measured.perf is None:
        return BaselineOutcome(BaselineNote.OFF)
    if is_absolute_module(measured.module):
        return BaselineOutcome(BaselineNote.OUTSIDE_ROOTDIR, "test file outside the rootdir", failures=((
            f"baseline: the test file {measured.module} is outside pytest's rootdir, so it has no name in the "
            "baseline store. pytest may have chosen the rootdir from the value of a path option written "
            "after a space: write --trt-baseline-dir=PATH, with '=', or pass --rootdir"
        ),))
    if policy.update:
        if failed_gates:
            note = f"baseline not recorded: the test failed its gates ({', '.join(failed_gates)})"
            return BaselineOutcome(BaselineNote.NOT_RECORDED, note)
        fastest = measured.perf.fastest_probe_ms
        recording = record(measured.perf, remeasure, float("inf") if fastest is None else fastest)
        kept = BaselineInput(**{**measured.__dict__, "perf": recording.kept})
        entry = BaselineStore.entry_from_record(kept, policy.commit, software)
        return BaselineOutcome(BaselineNote.RECORDED, recording.note, staged=entry)
    try:
        entry = store.lookup(measured.module, measured.nodeid)
    except BaselineEntryError as exc:
        return BaselineOutcome(BaselineNote.INVALID, "baseline entry invalid", failures=(
            f"baseline: {exc}; not compared: fix the entry, or re-record it with --trt-update-baselines",
        ))
    except BaselineFileError as exc:
        return BaselineOutcome(
            BaselineNote.UNREADABLE, "baseline file unreadable", failures=(f"baseline: {exc}; {NOT_COMPARED}",)
        )
    if entry is None:
        failures = ()
        if policy.mode == "strict":
            failures = ((
                f"baseline: no baseline for this test on {store.hardware} (--trt-baseline=strict); "
                "record one with --trt-update-baselines"
            ),)
        return BaselineOutcome(BaselineNote.NO_BASELINE, "no baseline", failures=failures)
    reason = staleness(entry, measured)
    if reason is not None:
        failures = ()
        if policy.mode == "strict":
            failures = (f"baseline: stale baseline, not compared ({reason}); re-record it with --trt-update-baselines",)
        return BaselineOutcome(BaselineNote.STALE, f"stale: {reason}", failures=failures)
    probe_problem = probe_floor_problem(entry, measured.perf)
    if probe_problem is not None:
        return BaselineOutcome(BaselineNote.INVALID, "baseline entry invalid", failures=((
            f"baseline: baseline file {store.path_for(measured.module)}: entry {measured.nodeid!r}: {probe_problem}; "
            "not compared: re-record it with --trt-update-baselines"
        ),))
    changed = "; ".join(changes(entry, measured, software))
    verdict = decide(entry, measured.perf, remeasure, policy.threshold)
    failures = ()
    if verdict.status is Verdict.REGRESSED and policy.enforce:
        since = f" (changed since the baseline: {changed})" if changed else ""
        failures = (f"regression ({measured.backend}): {verdict.message}{since}",)
    return BaselineOutcome(
        BaselineNote.CHANGED if changed else BaselineNote.COMPARED,
        changed,
        verdict=verdict,
        warnings=tuple(accuracy_drift(entry, measured.accuracy)),
        failures=failures,
    )
