"""Run-level figures: every test's latency against its budget, and every test's change against
its baseline, one row per test."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pytest_trt.judge.records import TestRecord
from pytest_trt.reports.html.figures import GREY, RED, Plot, figure, label_room, to_svg
from pytest_trt.reports.html.plots import verdict_colour

ROW_HEIGHT_IN = 0.22
LABEL_CHARS = 48


def budgets(records: Sequence[TestRecord], prefix: str = "run") -> Plot | None:
    """Each enforced latency budget: the measured percentile as a share of the budget (100% is
    the budget), red where it is over."""
    rows = []
    for record in records:
        for budget in record.budgets:
            if record.perf is None or budget.max_latency_ms is None or budget.percentile is None:
                continue
            if not budget.enforced and budget.backend != record.backend:
                continue  # another backend's budget: this run says nothing about it
            share = record.perf.latency_at(budget.percentile) / budget.max_latency_ms
            rows.append((_label(record.nodeid), share * 100))
    if not rows:
        return None
    with figure(height_in=0.8 + ROW_HEIGHT_IN * len(rows), left_in=label_room([r[0] for r in rows])) as (fig, (ax,)):
        ys = np.arange(len(rows))
        ax.barh(ys, [share for _, share in rows], color=[RED if s > 100 else GREY for _, s in rows])
        ax.axvline(100, color=RED, linewidth=1)
        ax.set_yticks(ys, [label for label, _ in rows])
        ax.invert_yaxis()
        ax.set_xlabel("measured latency, % of its budget")
        ax.set_title("Latency budgets")
        return Plot("budgets", "Latency budgets", to_svg(fig, f"{prefix}-budgets"))


def baselines(records: Sequence[TestRecord], prefix: str = "run") -> Plot | None:
    """Each compared test's change against its baseline, with its sessions' range and its bound."""
    rows = [(_label(r.nodeid), r.regression) for r in records
            if r.regression is not None and math.isfinite(r.regression.change)]
    if not rows:
        return None
    with figure(height_in=0.8 + ROW_HEIGHT_IN * len(rows), left_in=label_room([r[0] for r in rows])) as (fig, (ax,)):
        for y, (_, verdict) in enumerate(rows):
            low, high = (verdict.ci_low, verdict.ci_high) if math.isfinite(verdict.ci_low) else (verdict.change,) * 2
            bound = (verdict.bound or verdict.threshold) * 100
            ax.plot([-bound, bound], [y, y], color=GREY, linewidth=6, alpha=0.3, solid_capstyle="butt")
            ax.plot([low * 100, high * 100], [y, y], color=verdict_colour(verdict), linewidth=2)
            ax.plot([verdict.change * 100], [y], "o", color=verdict_colour(verdict))
        ax.axvline(0, color="#424242", linewidth=0.8)
        ax.set_yticks(range(len(rows)), [label for label, _ in rows])
        ax.invert_yaxis()
        ax.set_xlabel("change vs baseline (%); grey: within the bound")
        ax.set_title("Baselines")
        return Plot("baselines", "Changes against baselines", to_svg(fig, f"{prefix}-baselines"))


def _label(nodeid: str) -> str:
    name = nodeid.rsplit("/", 1)[-1]  # the file and the test: tests of two folders may share a name
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"
