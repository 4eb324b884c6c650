"""What the marks on one test item ask for: the gates ``judge.gates.evaluate`` runs.

Plain data, imported at collection, so it stays free of numpy and onnx.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_trt.errors import SpecError
from pytest_trt.specs import AccuracySpec, ModelSpec, PerfBudget


def sweep_nodeid(nodeid: str, batch: int) -> str:
    """The baseline store's name of one point of a sweep: a baseline per batch size."""
    return f"{nodeid}@batch={batch}"


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

    def baseline_names(self, nodeid: str) -> list[str]:
        """The names the test's baselines are stored under: the test's, and one per batch size
        of a ``batch_sizes=`` sweep."""
        batches = sorted({b for budget in self.budgets for b in budget.batch_sizes})
        return [nodeid, *(sweep_nodeid(nodeid, b) for b in batches)]

    def check_outputs(self, names: Sequence[str]) -> None:
        """``trt_accuracy(outputs={...})`` names only outputs the model has: a misspelt one
        would otherwise keep the default tolerance without a word. Raises SpecError."""
        if self.accuracy is None:
            return
        for name, _ in self.accuracy.outputs:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1, cutoff=0.0)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise SpecError(
                    f"trt_accuracy: outputs[{name!r}]: the model has no output {name!r} "
                    f"({hint}its outputs: {', '.join(names)})"
                )
