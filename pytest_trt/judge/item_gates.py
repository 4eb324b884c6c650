"""What the marks on one test item ask for: the gates ``judge.gates.evaluate`` runs.

Plain data, imported at collection, so it stays free of numpy and onnx.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_trt.spec import AccuracySpec, ModelSpec, PerfBudget


@dataclass(frozen=True)
class ItemGates:
    """What the marks on one test item ask for, validated at collection."""

    model: ModelSpec | None = None
    accuracy: AccuracySpec | None = None
    budgets: tuple[PerfBudget, ...] = ()

    @property
    def gated(self) -> bool:
        return self.model is not None and (self.accuracy is not None or bool(self.budgets))

    @property
    def measured(self) -> bool:
        return self.model is not None and bool(self.budgets)
