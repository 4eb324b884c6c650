"""What one gated test produced: the record that baselines and reports read.

A record is assembled once, at the end of the item, from the outcomes the gates returned
(gates.py), and read by attribute from there on: xdist workers send it as JSON data
(``serde.to_data``) and the controller rebuilds it (``serde.from_data``); the JSON report holds
``as_dict()`` entries, which ``from_dict`` reads back. Every state a report shows is an enum,
never read back from message text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pytest_trt import backends
from pytest_trt.backends.layer_profile import LayerProfile
from pytest_trt.baselines.history import HistoryPoint
from pytest_trt.baselines.memory import MemoryChange
from pytest_trt.baselines.regression import RegressionVerdict, Verdict
from pytest_trt.baselines.subject import TestSubject
from pytest_trt.judge.accuracy import AccuracyResult
from pytest_trt.judge.baseline_gate import BaselineNote
from pytest_trt.serde import from_data, to_data
from pytest_trt.timing.measure import PerfResult
from pytest_trt.timing.stats import LatencyStats
from pytest_trt.types import GpuPlacement, SetupStep


class TestStatus(str, Enum):
    """How a gated test ended: its gates passed, one failed, or pytest-trt could not judge it."""

    __test__ = False  # not a test class, whatever pytest's collection pattern says

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


# What a budget outcome's ``backend`` reads for a GPU budget (``trt_perf`` without ``backend=``)
# that no GPU backend ran: a GPU backend that runs it makes it that backend's.
GPU_BUDGET = backends.RESERVED_NAME


class BudgetState(str, Enum):
    """What became of one ``trt_perf`` budget in a run."""

    PASSED = "passed"  # enforced and met
    FAILED = "failed"  # enforced and missed
    REPORT_WITHIN = "report-within"  # --trt-perf=report, within the budget
    REPORT_OVER = "report-over"  # --trt-perf=report, over the budget
    NOT_ENFORCED = "not-enforced"  # another backend's budget, or a GPU budget on a CPU backend
    NOT_MEASURED = "not-measured"  # --trt-perf=off

    @property
    def enforced(self) -> bool:
        return self in (BudgetState.PASSED, BudgetState.FAILED)


@dataclass(frozen=True)
class BudgetOutcome:
    """One ``trt_perf`` mark judged against the run: enforced only for the running backend."""

    backend: str
    description: str  # e.g. "p99 <= 5.00 ms, >= 2000 qps"
    state: BudgetState
    message: str = ""  # what was missed, or why it was not enforced
    # The budget's limits, for reports that draw them (None: the budget has no such limit).
    max_latency_ms: float | None = None
    percentile: float | None = None  # the latency percentile max_latency_ms limits
    min_throughput: float | None = None

    @property
    def enforced(self) -> bool:
        return self.state.enforced

    @property
    def passed(self) -> bool | None:
        """None when not enforced (other backend, --trt-perf=report or off)."""
        return self.state is BudgetState.PASSED if self.enforced else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON report's form: the fields, and ``enforced`` and ``passed`` for readers that
        do not know the states."""
        return {**to_data(self), "enforced": self.enforced, "passed": self.passed}


@dataclass(frozen=True)
class SweepPoint:
    """One batch size of a ``batch_sizes=`` sweep, measured on the test's one engine."""

    batch: int
    latency: LatencyStats  # the same statistics as a measurement's ``perf.latency``
    throughput: float  # queries per second: batch x iterations / time
    iterations: int
    duration_s: float  # the timed iterations only, warm-up excluded
    device_memory: int | None = None  # bytes, where the backend can tell
    latency_budget: str = ""  # the latency budget at this batch, e.g. "p99 <= 5.00 ms"; "" for none
    within_latency: bool | None = None  # met that budget (None: no latency budget here)
    budgets: tuple[BudgetOutcome, ...] = ()
    accuracy_passed: bool | None = None  # None where the test has no trt_accuracy mark
    regression: RegressionVerdict | None = None
    baseline_note: str = ""
    baseline_state: BaselineNote = BaselineNote.OFF
    memory: MemoryChange | None = None  # device memory against the baseline's, where both know it

    @property
    def failed(self) -> bool:
        regressed = self.regression is not None and self.regression.status is Verdict.REGRESSED
        more_memory = self.memory is not None and self.memory.fails
        return (regressed or more_memory or self.accuracy_passed is False
                or any(b.state is BudgetState.FAILED for b in self.budgets))


@dataclass(frozen=True)
class StreamsPoint:
    """``streams=N``: N runners of the test's engine timed at once from N threads."""

    streams: int
    latency: LatencyStats  # per request, over every stream
    throughput: float  # aggregate: batch x requests of every stream / wall time
    iterations: int
    per_stream: tuple[int, ...]  # requests each stream ran
    duration_s: float
    clock: str
    device_memory: int | None = None  # bytes, where the backend can tell
    budgets: tuple[BudgetOutcome, ...] = ()
    accuracy_passed: bool | None = None  # every stream's outputs; None without trt_accuracy

    @property
    def failed(self) -> bool:
        return self.accuracy_passed is False or any(b.state is BudgetState.FAILED for b in self.budgets)


_SUBJECT_FIELDS = tuple(f.name for f in dataclasses.fields(TestSubject))


@dataclass(frozen=True)
class TestRecord:
    """Everything measured and decided for one test item."""

    __test__ = False

    subject: TestSubject
    status: TestStatus
    accuracy: AccuracyResult | None = None
    perf: PerfResult | None = None  # the measurement budgets were judged on
    budgets: tuple[BudgetOutcome, ...] = ()
    regression: RegressionVerdict | None = None
    baseline_note: str = ""  # e.g. "no baseline", "stale: shapes changed", "model 3f2a.. -> 91c0.."
    baseline_state: BaselineNote = BaselineNote.OFF  # what the baseline step did
    warnings: tuple[str, ...] = ()  # advice: what the run noticed without doubting a verdict
    doubts: tuple[str, ...] = ()  # warnings that a gate's verdict may be wrong (a budget within the noise)
    failures: tuple[str, ...] = ()  # one line per failed gate, as the test's failure shows them
    step: SetupStep | None = None  # for an error: the step of making the engine that failed
    at_setup: bool = False  # the error came before the test ran: pytest counts it as an error
    history: tuple[HistoryPoint, ...] = ()  # the baseline's recordings, oldest first, where it has them
    gpu: GpuPlacement | None = None  # the GPU a GPU backend ran it on, and the xdist worker
    sweep: tuple[SweepPoint, ...] = ()  # batch_sizes=: one point per batch size, in increasing order
    streams: tuple[StreamsPoint, ...] = ()  # streams=: one point per number of streams
    layers: LayerProfile | None = None  # per-layer times of the profiling pass (compact), where one ran
    memory: MemoryChange | None = None  # device memory against the baseline's, where both know it

    @property
    def pytest_outcome(self) -> str:
        """The word pytest's own summary uses for this test: passed, failed or error (gates
        that cannot be judged fail the test when it runs; an engine not made is a setup error)."""
        if self.status is TestStatus.PASSED:
            return "passed"
        return "error" if self.at_setup else "failed"

    @property
    def nodeid(self) -> str:
        return self.subject.nodeid

    @property
    def module(self) -> str:
        return self.subject.module

    @property
    def backend(self) -> str:
        return self.subject.backend

    @property
    def verdicts(self) -> list[RegressionVerdict]:
        """The test's baseline comparisons: its own, or one per batch size of a sweep."""
        return [v for v in (self.regression, *(p.regression for p in self.sweep)) if v is not None]

    @property
    def regressed(self) -> bool:
        return any(v.status is Verdict.REGRESSED for v in self.verdicts)

    @property
    def inconclusive(self) -> bool:
        """Compared, but not judged: a busy host, sessions that disagree, too few samples."""
        return any(v.status is Verdict.INCONCLUSIVE for v in self.verdicts)

    def as_dict(self) -> dict[str, Any]:
        """The JSON report's entry (schema 4): the subject's fields at the top level, a feed's
        facts only where they apply, and the facts that follow from a measurement and a budget."""
        data = to_data(self)
        subject = data.pop("subject")
        subject["feed"] = {name: _present(facts) for name, facts in subject["feed"].items()}
        data["perf"] = self.perf.as_dict() if self.perf is not None else None
        data["budgets"] = [budget.as_dict() for budget in self.budgets]
        # Optional keys: only a sweep has points; memory only where a baseline and the backend know it.
        for optional in ("sweep", "streams", "memory"):
            if not data[optional]:
                del data[optional]
        return {**subject, **data}

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> TestRecord:
        """A record read back from its ``as_dict()`` entry; the computed keys are left out."""
        subject = {name: entry[name] for name in _SUBJECT_FIELDS if name in entry}
        return from_data(cls, {**entry, "subject": subject}, where=f"record {entry.get('nodeid', '?')}")


def _present(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Only the facts that apply (a file input has no range; an empty one no values)."""
    return {key: value for key, value in facts.items() if value is not None}
