"""What one gated test produced: the record that baselines and reports read.

Plain dataclasses; ``as_dict`` gives JSON-ready data (nested results provide their own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BudgetOutcome:
    """One ``trt_perf`` mark judged against the run: enforced only for the running backend."""

    backend: str
    description: str  # e.g. "p99 <= 5.00 ms, >= 2000 qps"
    enforced: bool
    passed: bool | None  # None when not enforced (other backend, or --trt-perf=report)
    message: str = ""  # failure text, or why it was not enforced

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TestRecord:
    """Everything measured and decided for one test item."""

    nodeid: str
    module: str  # test file relative to the rootdir, with forward slashes
    backend: str
    runtime_version: str
    model: dict[str, Any]  # path, content_hash
    build: dict[str, Any]  # BuildSpec.as_dict()
    workload: dict[str, Any]  # input shapes/dtypes, batch, precision, output signature
    engine: dict[str, Any] = field(default_factory=dict)  # how obtained: built/loaded, seconds
    accuracy: Any = None  # accuracy.AccuracyResult
    perf: Any = None  # measure.PerfResult
    budgets: list[BudgetOutcome] = field(default_factory=list)
    regression: Any = None  # regression.RegressionVerdict
    baseline_note: str = ""  # "no baseline", "stale: shapes changed", "model 3f2a.. -> 91c0.."
    status: str = "passed"  # passed | failed | error
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            return value.as_dict() if hasattr(value, "as_dict") else value

        return {
            "nodeid": self.nodeid,
            "module": self.module,
            "backend": self.backend,
            "runtime_version": self.runtime_version,
            "model": self.model,
            "build": self.build,
            "workload": self.workload,
            "engine": self.engine,
            "accuracy": plain(self.accuracy),
            "perf": plain(self.perf),
            "budgets": [b.as_dict() for b in self.budgets],
            "regression": plain(self.regression),
            "baseline_note": self.baseline_note,
            "status": self.status,
            "warnings": list(self.warnings),
        }
