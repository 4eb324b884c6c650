"""What one gated test produced: the record that baselines and reports read.

A record is assembled once, at the end of the item, from the outcomes the gates returned
(gates.py). ``as_dict`` gives JSON-ready data (nested results provide their own); xdist workers
send that form, and reports read it back through ``TestRecord``-shaped dicts, so every state a
report shows is an enum value, never read back from message text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from pytest_trt.baselines.subject import InputFacts, TestSubject
from pytest_trt.serde import to_data

if TYPE_CHECKING:
    from pytest_trt.baselines.regression import RegressionVerdict
    from pytest_trt.judge.accuracy import AccuracyResult
    from pytest_trt.timing.measure import PerfResult


class TestStatus(str, Enum):
    """How a gated test ended: its gates passed, one failed, or pytest-trt could not judge it."""

    __test__ = False  # not a test class, whatever pytest's collection pattern says

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


class BudgetState(str, Enum):
    """What became of one ``trt_perf`` budget in a run."""

    PASSED = "passed"  # enforced and met
    FAILED = "failed"  # enforced and missed
    REPORT_WITHIN = "report-within"  # --trt-perf=report, within the budget
    REPORT_OVER = "report-over"  # --trt-perf=report, over the budget
    NOT_ENFORCED = "not-enforced"  # another backend's budget
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

    @property
    def enforced(self) -> bool:
        return self.state.enforced

    @property
    def passed(self) -> bool | None:
        """None when not enforced (other backend, --trt-perf=report or off)."""
        return self.state is BudgetState.PASSED if self.enforced else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "description": self.description,
            "state": self.state.value,
            "enforced": self.enforced,
            "passed": self.passed,
            "message": self.message,
        }


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
    baseline_state: str = ""  # regression.BaselineNote value: what the baseline step did
    warnings: tuple[str, ...] = ()  # advice: what the run noticed without doubting a verdict
    doubts: tuple[str, ...] = ()  # warnings that a gate's verdict may be wrong (a budget within the noise)
    failures: tuple[str, ...] = ()  # one line per failed gate, as the test's failure shows them

    @property
    def nodeid(self) -> str:
        return self.subject.nodeid

    @property
    def module(self) -> str:
        return self.subject.module

    @property
    def backend(self) -> str:
        return self.subject.backend

    def as_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            return value.as_dict() if value is not None else None

        subject = self.subject
        return {
            "nodeid": subject.nodeid,
            "module": subject.module,
            "backend": subject.backend,
            "runtime_version": subject.runtime_version,
            "model": to_data(subject.model),
            "build": to_data(subject.build),
            "workload": to_data(subject.workload),
            "engine": subject.engine,
            "feed": {name: _feed_facts(facts) for name, facts in subject.feed.items()},
            "accuracy": plain(self.accuracy),
            "perf": plain(self.perf),
            "budgets": [b.as_dict() for b in self.budgets],
            "regression": plain(self.regression),
            "baseline_note": self.baseline_note,
            "baseline_state": self.baseline_state,
            "status": self.status.value,
            "warnings": list(self.warnings),
            "doubts": list(self.doubts),
            "failures": list(self.failures),
        }


def _feed_facts(facts: InputFacts) -> dict[str, Any]:
    """Only the facts that apply (a file input has no range; an empty one no values)."""
    return {k: v for k, v in to_data(facts).items() if v is not None}
