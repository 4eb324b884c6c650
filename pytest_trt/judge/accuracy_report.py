"""The words of an accuracy failure: the headline of a failing output, the details under it
(bad elements, non-finite values, worst relative error, error statistics, cosine, top-k, a
histogram of |out-ref|) and the smallest tolerance that would pass."""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum
from typing import Any

import numpy as np

from pytest_trt.arguments import Check
from pytest_trt.judge.output_errors import FloatErrors, OutputStats, index_list, statistic
from pytest_trt.specs import OutputTolerance, format_tolerance

_HISTOGRAM_WIDTH = 30


class Missed(str, Enum):
    """A gate a float output misses."""

    TOLERANCE = "tolerance"
    COSINE = "cosine"
    TOPK = "topk"


def headline(
    name: str,
    errors: FloatErrors,
    tol: OutputTolerance,
    stats: OutputStats,
    worst: list[int] | None,
    missed: Sequence[Missed],
) -> str:
    """The first line of a failing output's message: the first gate it misses, and the worst element."""
    rule = tol.rule()
    if Missed.TOLERANCE in missed and tol.check is not Check.ELEMENTWISE:
        what = (
            f"check={tol.check.value!r}{f' q={tol.q:g}' if tol.check is Check.QUANTILE else ''}: "
            f"{tol.check.value} of |out-ref|/(atol+rtol*|ref|) is {short_number(statistic(errors.ratio, tol))} "
            f"> 1 at {rule} ({stats.n_bad} of {stats.n_total} elements outside)"
        )
    elif Missed.TOLERANCE in missed:
        what = f"{stats.n_bad} of {stats.n_total} elements outside {rule}"
    elif Missed.COSINE in missed:
        what = f"cosine similarity {_cosine_text(stats.cosine)} < min_cosine={tol.min_cosine:g}"
    else:
        what = f"top-{tol.topk} agreement {_share(stats.topk_agreement)} along axis {tol.topk_axis}"
    if worst is None:
        return f"output {name!r}: {what}"
    at = tuple(worst)
    with np.errstate(invalid="ignore"):  # inf - inf is nan, and printed as such
        abs_err = abs(errors.out[at] - errors.ref[at])
    return (
        f"output {name!r}: {what}; worst |d|={short_number(abs_err)} at {worst} "
        f"(out={short_number(errors.out[at])}, ref={short_number(errors.ref[at])})"
    )


def details(
    errors: FloatErrors,
    tol: OutputTolerance,
    stats: OutputStats,
    missed: Sequence[Missed],
    topk_detail: str,
) -> list[str]:
    """The lines under the headline, each indented by the caller."""
    lines = [f"bad elements: {stats.n_bad} of {stats.n_total} ({stats.frac_bad:.3%})"]
    if tol.check is Check.ELEMENTWISE and tol.max_mismatch > 0:
        allowed = math.floor(tol.max_mismatch * stats.n_total + 1e-9)
        lines[0] += f"; allowed {allowed} (max_mismatch={tol.max_mismatch:g})"
    n_nonfinite = int(errors.nonfinite_bad.sum())
    if n_nonfinite:
        first = np.unravel_index(int(np.argmax(errors.nonfinite_bad)), errors.out.shape)
        lines.append(
            f"non-finite values rejected: {n_nonfinite} (nan={tol.nan.value!r}, inf_equal={tol.inf_equal}); "
            f"first at {index_list(first)} (out={short_number(errors.out[first])}, ref={short_number(errors.ref[first])})"
        )
    nonzero_ref = errors.finite & (errors.ref != 0)
    if nonzero_ref.any():
        rel = np.where(nonzero_ref, errors.abs_err / np.where(nonzero_ref, np.abs(errors.ref), 1.0), -1.0)
        at = np.unravel_index(int(np.argmax(rel)), rel.shape)
        lines.append(
            f"worst relative |d|/|ref|={short_number(rel[at])} at {index_list(at)} "
            f"(out={short_number(errors.out[at])}, ref={short_number(errors.ref[at])})"
        )
    for label, figures in (
        ("abs", (stats.max_abs, stats.mean_abs, stats.median_abs, stats.p99_abs)),
        ("rel", (stats.max_rel, stats.mean_rel, stats.median_rel, stats.p99_rel)),
    ):
        if figures[0] is not None:
            top, mean, median, p99 = (short_number(value) for value in figures)
            lines.append(f"{label} error: max={top} mean={mean} median={median} p99={p99}")
    if stats.cosine is not None and tol.min_cosine is None:
        lines.append(f"cosine similarity {_cosine_text(stats.cosine)} (reported, not gated: min_cosine= gates on it)")
    elif stats.cosine is not None:
        verdict = "<" if Missed.COSINE in missed else ">="
        lines.append(f"cosine similarity {_cosine_text(stats.cosine)} {verdict} min_cosine={tol.min_cosine:g}")
    if topk_detail:
        lines.append(topk_detail)
    lines.extend(_histogram(errors.abs_err[errors.finite]))
    lines.append(_suggestion(tol, stats))
    return lines


def _suggestion(tol: OutputTolerance, stats: OutputStats) -> str:
    parts = []
    if stats.min_rtol is not None and math.isfinite(stats.min_rtol):
        parts.append(f"rtol={_round_up(stats.min_rtol)} (at atol={format_tolerance(tol.atol)})")
    if stats.min_atol is not None and math.isfinite(stats.min_atol):
        parts.append(f"atol={_round_up(stats.min_atol)} (at rtol={format_tolerance(tol.rtol)})")
    if not parts:
        return "no tolerance would pass: the failure is not a matter of rtol/atol"
    return f"smallest tolerance that would pass check={tol.check.value!r}: " + " or ".join(parts)


def _histogram(abs_err: np.ndarray) -> list[str]:
    """A few log10-wide bins of |out - ref|, exact zeros counted apart."""
    if abs_err.size == 0:
        return []
    zeros = int((abs_err == 0).sum())
    positive = abs_err[abs_err > 0]
    rows: list[tuple[str, int]] = [("0", zeros)] if zeros else []
    if positive.size:
        low = math.floor(math.log10(positive.min()))
        high = math.floor(math.log10(positive.max())) + 1
        low = max(low, high - 8)  # fold the tiniest errors into the first bin
        edges = 10.0 ** np.arange(low, high + 1)
        counts, _ = np.histogram(np.clip(positive, edges[0], edges[-1]), bins=edges)
        rows.extend((f"[1e{low + i}, 1e{low + i + 1})", int(c)) for i, c in enumerate(counts))
    peak = max(count for _, count in rows) or 1
    width = max(len(label) for label, _ in rows)
    lines = ["histogram of |out-ref|:"]
    for label, count in rows:
        bar = "#" * math.ceil(_HISTOGRAM_WIDTH * count / peak)
        lines.append(f"  {label:>{width}} {bar:<{_HISTOGRAM_WIDTH}} {count}")
    return lines


def short_number(value: Any) -> str:
    """Three significant digits: how messages print an error or a value."""
    return f"{float(value):.3g}"


def _share(value: float | None) -> str:
    """A share as a message prints it."""
    return "not read" if value is None else f"{value:.1%}"


def _cosine_text(value: float | None) -> str:
    """Enough decimals to tell a cosine from 1 and from min_cosine (0.99989, not "1")."""
    if value is None or not math.isfinite(value):
        return str(value)
    decimals = 2 - math.floor(math.log10(max(1.0 - value, 1e-9)))
    return f"{value:.{min(max(decimals, 3), 9)}f}"


def _round_up(value: float) -> str:
    """Two significant digits, rounded up so the printed tolerance really passes."""
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(value)) - 1
    return format_tolerance(float(f"{math.ceil(value / 10.0**exponent ) * 10.0**exponent:.2g}"))
