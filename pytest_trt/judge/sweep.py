"""A ``batch_sizes=`` sweep judged point by point, and the answer users want from it: which batch
gives the most throughput within the latency budget (model_analyzer's question).

The loop that measures lives in gates.py, beside the single measurement it repeats; this module
holds what each point is judged by and what the summary says of the points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_trt.baselines.entry import BaselineEntry
from pytest_trt.judge import budgets as budget_rules
from pytest_trt.judge.baseline_gate import BaselineNote
from pytest_trt.judge.perf_mode import PerfMode
from pytest_trt.judge.records import BudgetOutcome, BudgetState, StreamsPoint, SweepPoint
from pytest_trt.specs import PerfBudget
from pytest_trt.timing.concurrent import ConcurrentResult
from pytest_trt.timing.measure import PerfResult
from pytest_trt.timing.stats import percentile_label


@dataclass
class SweepRun:
    """What a sweep produced: its points, the failures and doubts they raised (each naming its
    batch), the baseline entries to record, and the measurement warnings."""

    points: list[SweepPoint] = field(default_factory=list)
    streams: list[StreamsPoint] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)
    staged: list[tuple[str, BaselineEntry]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def baseline_state(self) -> BaselineNote:
        """The baseline step's state for the whole sweep: the one its points share, else
        compared (the points' own notes say more)."""
        states = {p.baseline_state for p in self.points}
        if not states:
            return BaselineNote.OFF
        return states.pop() if len(states) == 1 else BaselineNote.COMPARED


def latency_label(budget: PerfBudget) -> str:
    """The latency budget as the summary names it, e.g. ``p99 <= 5 ms``; '' for none."""
    if budget.max_latency_ms is None:
        return ""
    return f"{percentile_label(budget.percentile)} <= {budget.max_latency_ms:g} ms"


def judge_point(
    result: PerfResult, budget: PerfBudget, running: str, mode: PerfMode, batch: int, *, threads_advice: bool
) -> tuple[BudgetOutcome, list[str], list[str]]:
    """One point against its budget (``budget`` is already the one for ``batch``): the outcome,
    the failures and the doubts, each naming the batch."""
    description = f"batch {batch}: {budget_rules.describe_budget(budget)}"
    missed = budget_rules.budget_failures(result, budget)
    doubts = [f"batch {batch}: {d}" for d in budget_rules.budget_doubts(result, budget, threads_advice=threads_advice)]
    if mode is PerfMode.ENFORCE:
        failures = [f"perf ({running}) at batch {batch}: {m}" for m in missed]
        state = BudgetState.FAILED if missed else BudgetState.PASSED
        return BudgetOutcome(running, description, state, "; ".join(missed)), failures, doubts
    state = BudgetState.REPORT_OVER if missed else BudgetState.REPORT_WITHIN
    note = "; ".join(missed) if missed else "within budget"
    return BudgetOutcome(running, description, state, f"report only: {note}"), [], doubts


def within_latency(result: PerfResult, budget: PerfBudget) -> bool | None:
    if budget.max_latency_ms is None:
        return None
    return result.latency_at(budget.percentile) <= budget.max_latency_ms


def best_point(points: Sequence[SweepPoint]) -> SweepPoint | None:
    """The point with the most throughput among those within their latency budget (a point
    without one counts as within); None where every point is over."""
    eligible = [p for p in points if p.within_latency is not False]
    return max(eligible, key=lambda p: p.throughput, default=None)


def best_line(points: Sequence[SweepPoint]) -> str:
    """``best within p99 <= 5 ms: batch 32, 18,400 qps``; '' for no points."""
    if not points:
        return ""
    labels = {p.latency_budget for p in points}
    if labels == {""}:
        within = "most throughput"
    elif len(labels) == 1:
        within = f"best within {labels.pop()}"
    else:
        within = "best within the latency budgets"
    best = best_point(points)
    if best is None:
        return f"{within}: no batch size meets it"
    return f"{within}: batch {best.batch}, {best.throughput:,.0f} qps"


def concurrent_failures(result: ConcurrentResult, budget: PerfBudget) -> list[str]:
    """What a concurrent measurement misses of its budget: the per-request latency at the
    budget's percentile over every stream, and the aggregate throughput."""
    missed = []
    if budget.max_latency_ms is not None:
        observed = result.latency_at(budget.percentile)
        if observed > budget.max_latency_ms:
            missed.append(
                f"{percentile_label(budget.percentile)} per-request latency {observed:.3f} ms > budget "
                f"{budget.max_latency_ms:g} ms (n={result.iterations} over {result.streams} streams)"
            )
    if budget.min_throughput is not None and result.throughput < budget.min_throughput:
        missed.append(
            f"aggregate throughput {result.throughput:.1f} qps < budget {budget.min_throughput:g} qps "
            f"(n={result.iterations} over {result.streams} streams)"
        )
    return missed + budget_rules.memory_failures(result.device_memory, budget, "this backend")


def judge_streams(
    result: ConcurrentResult, budget: PerfBudget, running: str, mode: PerfMode
) -> tuple[BudgetOutcome, list[str]]:
    """One concurrency point against the budget: the outcome and the failures, naming the streams."""
    n = result.streams
    description = f"{n} stream{'s' if n > 1 else ''}: {budget_rules.describe_budget(budget)}"
    missed = concurrent_failures(result, budget)
    if mode is PerfMode.ENFORCE:
        state = BudgetState.FAILED if missed else BudgetState.PASSED
        failures = [f"perf ({running}) with {n} streams: {m}" for m in missed]
        return BudgetOutcome(running, description, state, "; ".join(missed)), failures
    state = BudgetState.REPORT_OVER if missed else BudgetState.REPORT_WITHIN
    return BudgetOutcome(running, description, state, "report only: " + ("; ".join(missed) or "within budget")), []
