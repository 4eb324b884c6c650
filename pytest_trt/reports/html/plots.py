"""The figures of one test: latency distribution, phases, regression verdict and accuracy.

Each function returns a ``Plot`` or None where the record has nothing to draw; ``prefix`` makes
the figure's SVG ids unique in its page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pytest_trt.baselines.regression import RegressionVerdict, Verdict
from pytest_trt.judge.accuracy import AccuracyResult
from pytest_trt.judge.records import BudgetOutcome, TestRecord
from pytest_trt.reports.html.figures import AMBER, BLUE, GREEN, GREY, RED, Plot, figure, log_axis, to_svg
from pytest_trt.timing.measure import PerfResult
from pytest_trt.timing.stats import LatencyStats, percentile, percentile_label

MAX_BINS = 60
PHASES = (("h2d", "H2D"), ("compute", "compute"), ("d2h", "D2H"), ("enqueue", "enqueue"))
VERDICT_COLOURS = {Verdict.REGRESSED: RED, Verdict.IMPROVED: GREEN, Verdict.INCONCLUSIVE: AMBER, Verdict.UNCHANGED: BLUE}


def latency(record: TestRecord, prefix: str) -> Plot | None:
    """A histogram of every timed iteration, with each latency budget (at its percentile) and the
    baseline's compared statistic marked. The x-axis spans the iterations up to the 99.9th
    percentile and the marks near them: one stray iteration, or a budget a hundred times the
    latency, would squeeze the rest into a bar. What is left out is named in the legend."""
    perf = record.perf
    if perf is None or not perf.samples_ms:
        return None
    samples = np.asarray(perf.samples_ms, dtype=np.float64)
    low, high = float(samples.min()), percentile(samples, 99.9)
    span = max(high - low, high * 0.05)
    marks = _latency_marks(record, perf)
    drawn = [mark for mark in marks if low - span <= mark[1] <= high + span]
    right = max([high, *(value for _, value, _, _ in drawn)]) + span * 0.05
    shown = samples[samples <= right]
    with figure() as (fig, (ax,)):
        edges = np.histogram_bin_edges(shown, bins="auto")
        ax.hist(shown, bins=min(len(edges) - 1, MAX_BINS) or 1, color=BLUE, alpha=0.55, histtype="stepfilled",
                label=f"{samples.size} iterations, batch {perf.batch}")
        for label, value, colour, style in marks:
            if (label, value, colour, style) in drawn:
                ax.axvline(value, color=colour, linestyle=style, linewidth=1.4, label=f"{label} {value:.4g} ms")
            else:
                ax.plot([], [], linestyle=style, color=colour, label=f"{label} {value:.4g} ms (off the scale)")
        beyond = samples.size - shown.size
        if beyond:
            ax.plot([], [], " ", label=f"{beyond} beyond {right:.4g} ms, not drawn")
        ax.set_xlabel("latency per iteration (ms)")
        ax.set_ylabel("iterations")
        ax.set_title(f"Latency ({perf.clock.value} clock, {perf.backend})")
        ax.legend(loc="upper right")
        return Plot("latency", "Latency distribution", to_svg(fig, f"{prefix}-latency"))


def _latency_marks(record: TestRecord, perf: PerfResult) -> list[tuple[str, float, str, str]]:
    """(label, ms, colour, line style) of the lines drawn over the histogram."""
    marks = [("median", perf.latency.median, "#424242", ":")]
    for budget in record.budgets:
        marks += _budget_marks(budget, perf)
    regression = record.regression
    if regression is not None and _finite(regression.baseline_ms):
        assert regression.baseline_ms is not None
        marks.append((f"baseline {regression.statistic}", regression.baseline_ms, GREEN, "-."))
    return [mark for mark in marks if _finite(mark[1])]


def _budget_marks(budget: BudgetOutcome, perf: PerfResult) -> list[tuple[str, float, str, str]]:
    if budget.max_latency_ms is None or budget.percentile is None:
        return []
    label = percentile_label(budget.percentile)
    colour = RED if budget.enforced else GREY
    owner = "" if budget.enforced else f" ({budget.backend}, not enforced)"
    marks = [(f"budget {label}{owner}", budget.max_latency_ms, colour, "-")]
    if budget.enforced and budget.percentile != 50.0:
        marks.append((f"measured {label}", perf.latency_at(budget.percentile), colour, ":"))
    return marks


def phases(record: TestRecord, prefix: str) -> Plot | None:
    """The phases a GPU backend times on their own: a bar to the median, a line on to the p99."""
    perf = record.perf
    present = [(name, stats) for name, stats in _phase_stats(perf) if stats is not None and _finite(stats.median)]
    if not present:
        return None
    with figure(height_in=0.9 + 0.3 * len(present)) as (fig, (ax,)):
        ys = np.arange(len(present))
        medians = [stats.median for _, stats in present]
        ax.barh(ys, medians, color=BLUE, alpha=0.7, label="median")
        ax.hlines(ys, medians, [stats.p99 for _, stats in present], color="#424242", label="to p99")
        ax.set_yticks(ys, [name for name, _ in present])
        ax.invert_yaxis()
        ax.set_xlabel("ms per iteration")
        ax.set_title("Phases")
        ax.legend(loc="best")
        return Plot("phases", "Phases (H2D / compute / D2H)", to_svg(fig, f"{prefix}-phases"))


def _phase_stats(perf: PerfResult | None) -> list[tuple[str, LatencyStats | None]]:
    if perf is None:
        return []
    return [(label, getattr(perf, name)) for name, label in PHASES]


def regression(record: TestRecord, prefix: str) -> Plot | None:
    """The change against the baseline: each session's reading, their range, and the band within
    which a change is not called a regression (the threshold plus the margins: ``bound``)."""
    verdict = record.regression
    if verdict is None or not _finite(verdict.change):
        return None
    readings = [r for r in (verdict.sessions or [verdict.change]) if _finite(r)]
    bound = verdict.bound or verdict.threshold
    colour = VERDICT_COLOURS[verdict.status]
    with figure(height_in=1.3, left_in=0.2, right_in=1.7) as (fig, (ax,)):
        ax.axvspan(-bound * 100, bound * 100, color=GREY, alpha=0.2, label=f"not a change: ±{bound * 100:.1f}%")
        for side in (-1, 1):
            ax.axvline(side * verdict.threshold * 100, color=GREY, linestyle="--", linewidth=0.8)
        ax.hlines(0, min(readings) * 100, max(readings) * 100, color=colour, linewidth=3, label="sessions' range")
        ax.plot([r * 100 for r in readings], [0] * len(readings), "o", color=colour, label="a session")
        ax.axvline(0, color="#424242", linewidth=0.8)
        ax.set_yticks([])
        ax.set_xlabel(f"{verdict.statistic} vs baseline (%)")
        ax.set_title(f"Baseline: {verdict.status.value} ({verdict.change * 100:+.1f}%)", color=colour)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return Plot("regression", f"Regression verdict: {verdict.status.value}", to_svg(fig, f"{prefix}-regression"))


def accuracy(record: TestRecord, prefix: str) -> Plot | None:
    """Per float output, the share of elements at or below each error ratio
    ``|out - ref| / (atol + rtol * |ref|)`` (1 is the tolerance; log scale): a curve crossing
    the tolerance line below 100% has elements outside it."""
    result: AccuracyResult | None = record.accuracy
    curves = [o for o in (result.outputs if result is not None else []) if o.distribution is not None]
    if not curves:
        return None
    with figure() as (fig, (ax,)):
        floor, ceiling = _ratio_range([o.distribution.ratio for o in curves if o.distribution is not None])
        for output in curves:
            spread = output.distribution
            assert spread is not None
            ratios = [_clipped(r, floor, ceiling) for r in spread.ratio]
            verdict = "passed" if output.passed else "FAILED"
            exact = ", every element exact" if not any(spread.ratio) else ""
            ax.step(ratios, [level * 100 for level in spread.levels], where="post", linewidth=1.5,
                    label=f"{output.name} ({verdict}{exact}; rtol {spread.rtol:g}, atol {spread.atol:g}, {spread.check})")
        ax.axvline(1.0, color=RED, linewidth=1.2, label="tolerance (ratio 1)")
        log_axis(ax, "x")
        ax.set_xlim(floor, ceiling)
        ax.set_ylim(0, 101)
        ax.set_xlabel("|out - ref| / (atol + rtol·|ref|)")
        ax.set_ylabel("% of elements at or below")
        ax.set_title("Accuracy: error distribution per output")
        ax.legend(loc="upper left")
        return Plot("accuracy", "Accuracy error distribution", to_svg(fig, f"{prefix}-accuracy"))


def _ratio_range(series: Sequence[Sequence[float]]) -> tuple[float, float]:
    """Log-axis limits around every finite positive ratio and the tolerance (1), three decades at
    least; zeros (exact elements) are drawn at the left edge, non-finite ratios at the right."""
    values = [r for ratios in series for r in ratios if _finite(r) and r > 0]
    low = min([*values, 1e-2]) / 2
    high = max([*values, 10.0]) * 2
    return max(low, 1e-12), high


def _clipped(ratio: float, floor: float, ceiling: float) -> float:
    if not _finite(ratio):
        return ceiling
    return min(max(ratio, floor), ceiling)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def verdict_colour(verdict: RegressionVerdict | None) -> str:
    return VERDICT_COLOURS[verdict.status] if verdict is not None else GREY
