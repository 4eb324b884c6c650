"""Output comparison against a reference run, and the error report a user reads on failure.

Tolerance rule everywhere is numpy's: ``|out - ref| <= atol + rtol * |ref|``. The statistic
checks (``check="max" | "mean" | "median" | "quantile"``) apply that same rule to a statistic of
the per-element error ratio ``|out - ref| / (atol + rtol * |ref|)``: the output passes when the
statistic is at most 1. ``max_mismatch`` (a fraction of elements allowed outside) belongs to
``check="elementwise"``; ``min_cosine`` and ``topk`` are further gates on top of the tolerance.
Integer and bool outputs are compared exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.serde import to_data
from pytest_trt.spec import AccuracySpec, OutputTolerance, format_tolerance
from pytest_trt.store.files import write_atomic_with

RULE_NOTE = "(numpy rule |out-ref| <= atol + rtol*|ref|)"

_HISTOGRAM_WIDTH = 30
_BISECTION_STEPS = 40


@dataclass(frozen=True)
class OutputReport:
    """The verdict and error statistics for one output."""

    name: str
    passed: bool
    message: str = ""  # multi-line; "" when passed
    # Error statistics by name: counts (n_total, n_bad) stay whole numbers; inf (no tolerance
    # passes) is written as null, and read back as nan.
    stats: dict[str, int | float] = field(default_factory=dict)
    worst_index: list[int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(to_data(self))


@dataclass(frozen=True)
class AccuracyResult:
    """All outputs of one comparison, plus problems that belong to no single output."""

    passed: bool
    outputs: list[OutputReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def with_problems(self, problems: Sequence[str]) -> AccuracyResult:
        """This result with failures found outside ``compare_outputs`` (e.g. batch consistency)."""
        if not problems:
            return self
        return dataclasses.replace(self, passed=False, problems=[*self.problems, *problems])

    def failure_message(self) -> str:
        """Failing outputs first (their first line is the headline), then problems, then the rule."""
        if self.passed:
            return ""
        parts = [report.message for report in self.outputs if not report.passed]
        parts.extend(self.problems)
        parts.append(RULE_NOTE)
        return "\n".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return dict(to_data(self))


def compare_outputs(
    actual: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    spec: AccuracySpec,
    *,
    quantized: bool = False,
) -> AccuracyResult:
    """Compare every output with its reference using the output's tolerance from ``spec``.

    ``quantized=True`` (an INT8 model) also reports the cosine similarity and top-1 agreement
    of float outputs where ``min_cosine``/``topk`` do not gate them: elementwise tolerances are
    rarely what quantized models are judged by, so a failure shows those numbers too."""
    outputs: list[OutputReport] = []
    problems: list[str] = []
    for name in reference:
        if name not in actual:
            problems.append(
                f"output {name!r} is missing from the backend's outputs "
                f"(it produced: {_names(actual)})"
            )
            continue
        outputs.append(compare_output(name, actual[name], reference[name], spec.for_output(name), quantized=quantized))
    for name in actual:
        if name not in reference:
            problems.append(
                f"output {name!r} has no reference output (the reference produced: {_names(reference)})"
            )
    return AccuracyResult(all(report.passed for report in outputs) and not problems, outputs, problems)


def compare_output(
    name: str, out: Any, ref: Any, tol: OutputTolerance, *, quantized: bool = False
) -> OutputReport:
    """Compare one output array with its reference array (``quantized``: see compare_outputs)."""
    out_arr, ref_arr = np.asarray(out), np.asarray(ref)
    if out_arr.shape != ref_arr.shape:
        return OutputReport(
            name,
            False,
            f"output {name!r}: shape {_shape(out_arr)} differs from the reference's shape {_shape(ref_arr)}",
        )
    out_kind, ref_kind = _kind(out_arr.dtype), _kind(ref_arr.dtype)
    if out_kind != ref_kind or out_kind == "unsupported":
        return OutputReport(
            name,
            False,
            f"output {name!r}: dtype {out_arr.dtype} ({out_kind}) differs in kind from the "
            f"reference's {ref_arr.dtype} ({ref_kind}); shapes: out {_shape(out_arr)}, "
            f"ref {_shape(ref_arr)}",
        )
    if out_arr.size == 0:
        return OutputReport(name, True, stats={"n_total": 0, "n_bad": 0, "frac_bad": 0.0})
    if out_kind == "float":
        return _compare_float(name, out_arr, ref_arr, tol, quantized)
    return _compare_exact(name, out_arr, ref_arr)


def _compare_exact(name: str, out: np.ndarray, ref: np.ndarray) -> OutputReport:
    bad = out != ref
    n_total, n_bad = out.size, int(bad.sum())
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    worst = np.unravel_index(int(np.argmax(diff)), out.shape)
    stats: dict[str, Any] = {
        "n_total": n_total,
        "n_bad": n_bad,
        "frac_bad": n_bad / n_total,
        "max_abs": float(diff.max()),
    }
    if n_bad == 0:
        return OutputReport(name, True, stats=stats)
    message = (
        f"output {name!r}: {n_bad} of {n_total} elements differ ({out.dtype} output, compared "
        f"exactly); worst |d|={_num(diff[worst])} at {_index(worst)} "
        f"(out={_num(out[worst])}, ref={_num(ref[worst])})"
    )
    return OutputReport(name, False, message, stats, _index(worst))


@dataclass
class _FloatErrors:
    """Per-element errors of one float output, in float64."""

    out: np.ndarray
    ref: np.ndarray
    abs_err: np.ndarray  # |out - ref|; NaN where either side is not finite
    ratio: np.ndarray  # abs_err / (atol + rtol*|ref|); 0 or inf where either side is not finite
    finite: np.ndarray  # both sides finite
    nonfinite_bad: np.ndarray  # a non-finite value on either side that the policy rejects


def _float_errors(out: np.ndarray, ref: np.ndarray, tol: OutputTolerance) -> _FloatErrors:
    out64, ref64 = out.astype(np.float64), ref.astype(np.float64)
    finite = np.isfinite(out64) & np.isfinite(ref64)
    both_nan = np.isnan(out64) & np.isnan(ref64)
    same_inf = np.isinf(out64) & np.isinf(ref64) & (np.sign(out64) == np.sign(ref64))
    accepted = (both_nan & (tol.nan == "equal")) | (same_inf & tol.inf_equal)
    nonfinite_bad = ~finite & ~accepted
    with np.errstate(invalid="ignore", over="ignore"):
        abs_err = np.where(finite, np.abs(out64 - ref64), np.nan)
    ratio = _ratio(abs_err, np.abs(ref64), tol.rtol, tol.atol, finite)
    ratio[nonfinite_bad] = np.inf
    return _FloatErrors(out64, ref64, abs_err, ratio, finite, nonfinite_bad)


def _ratio(
    abs_err: np.ndarray, abs_ref: np.ndarray, rtol: float, atol: float, finite: np.ndarray
) -> np.ndarray:
    """``abs_err / (atol + rtol*|ref|)``: <= 1 exactly where numpy's rule holds."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        allowed = atol + rtol * abs_ref
        ratio = abs_err / allowed
    # 0/0 (exact match with zero allowance) passes; x/0 fails.
    ratio = np.where(abs_err == 0, 0.0, ratio)
    return np.where(finite, ratio, 0.0)


def _check_passes(ratio: np.ndarray, tol: OutputTolerance) -> bool:
    """Does the tolerance's check accept these error ratios?"""
    if tol.check == "elementwise":
        return int((ratio > 1).sum()) <= math.floor(tol.max_mismatch * ratio.size + 1e-9)
    return bool(_statistic(ratio, tol) <= 1.0)


def _statistic(ratio: np.ndarray, tol: OutputTolerance) -> float:
    flat = ratio.ravel()
    if tol.check == "max":
        return float(flat.max())
    if tol.check == "mean":
        return float(flat.mean()) if np.isfinite(flat).all() else math.inf
    if tol.check == "median":
        return float(np.quantile(flat, 0.5, method="higher"))
    return float(np.quantile(flat, tol.q, method="higher"))


def _compare_float(
    name: str, out: np.ndarray, ref: np.ndarray, tol: OutputTolerance, quantized: bool = False
) -> OutputReport:
    errors = _float_errors(out, ref, tol)
    n_total = out.size
    bad = errors.ratio > 1
    n_bad = int(bad.sum())
    stats: dict[str, Any] = {"n_total": n_total, "n_bad": n_bad, "frac_bad": n_bad / n_total}
    stats.update(_error_stats(errors))
    stats["min_rtol"] = _smallest_tolerance(errors, tol, "rtol")
    stats["min_atol"] = _smallest_tolerance(errors, tol, "atol")
    failures: list[str] = []
    if not _check_passes(errors.ratio, tol):
        failures.append("tolerance")
    if tol.min_cosine is not None:
        stats["cosine"] = _cosine(errors)
        if not stats["cosine"] >= tol.min_cosine:
            failures.append("cosine")
    topk_detail = ""
    if tol.topk is not None:
        agreement, topk_detail = _topk_agreement(errors.out, errors.ref, tol.topk, tol.topk_axis)
        stats["topk_agreement"] = agreement
        if not agreement >= 1.0:
            failures.append("topk")
    if quantized:
        # Reported, not gated: the numbers INT8 users judge by, next to the elementwise ones.
        if tol.min_cosine is None:
            stats["cosine"] = _cosine(errors)
        axis = tol.topk_axis
        if tol.topk is None and -out.ndim <= axis < out.ndim and out.shape[axis] >= 2:
            stats["top1_agreement"], detail = _topk_agreement(errors.out, errors.ref, 1, axis)
            rows = out.size // out.shape[axis]
            topk_detail = (
                f"top-1 agreement {stats['top1_agreement']:.1%} of {rows} rows along axis {axis} "
                f"(reported, not gated: topk= gates on it)" + (f"; {detail}" if detail else "")
            )
    worst = _worst_index(errors)
    if not failures:
        return OutputReport(name, True, stats=stats, worst_index=worst)
    lines = [_headline(name, errors, tol, stats, worst, failures)]
    lines.extend("  " + line for line in _details(errors, tol, stats, failures, topk_detail))
    return OutputReport(name, False, "\n".join(lines), stats, worst)


def _error_stats(errors: _FloatErrors) -> dict[str, float]:
    abs_err = errors.abs_err[errors.finite]
    nonzero_ref = errors.finite & (errors.ref != 0)
    rel_err = errors.abs_err[nonzero_ref] / np.abs(errors.ref[nonzero_ref])
    stats: dict[str, float] = {}
    for label, values in (("abs", abs_err), ("rel", rel_err)):
        if values.size == 0:
            continue
        stats[f"max_{label}"] = float(values.max())
        stats[f"mean_{label}"] = float(values.mean())
        stats[f"median_{label}"] = float(np.median(values))
        stats[f"p99_{label}"] = float(np.percentile(values, 99))
    return stats


def _smallest_tolerance(errors: _FloatErrors, tol: OutputTolerance, which: str) -> float:
    """The smallest rtol (keeping atol) or atol (keeping rtol) that the check would accept;
    inf when none would (non-finite mismatches, or a zero reference with atol held at 0)."""
    if tol.check == "elementwise":
        # Each element needs its own tolerance; the check allows floor(max_mismatch*n) misses.
        abs_ref = np.abs(errors.ref)
        with np.errstate(divide="ignore", invalid="ignore"):
            if which == "rtol":
                excess = np.maximum(errors.abs_err - tol.atol, 0.0)
                needed = np.where(excess == 0, 0.0, excess / abs_ref)
            else:
                needed = np.maximum(errors.abs_err - tol.rtol * abs_ref, 0.0)
        needed = np.where(errors.finite, needed, 0.0)
        needed[errors.nonfinite_bad] = np.inf
        allowed_misses = math.floor(tol.max_mismatch * needed.size + 1e-9)
        if allowed_misses >= needed.size:
            return 0.0
        kth = needed.size - 1 - allowed_misses
        return float(np.partition(needed.ravel(), kth)[kth])
    return _bisect_tolerance(errors, tol, which)


def _bisect_tolerance(errors: _FloatErrors, tol: OutputTolerance, which: str) -> float:
    """For statistic checks: the check is monotone in each tolerance, so bisect on a log scale."""
    abs_ref = np.abs(errors.ref)

    def passes(value: float) -> bool:
        rtol, atol = (value, tol.atol) if which == "rtol" else (tol.rtol, value)
        ratio = _ratio(errors.abs_err, abs_ref, rtol, atol, errors.finite)
        ratio[errors.nonfinite_bad] = np.inf
        return _check_passes(ratio, tol)

    if passes(0.0):
        return 0.0
    high = 1e30
    if not passes(high):
        return math.inf
    low = 1e-30
    for _ in range(_BISECTION_STEPS):
        middle = math.sqrt(low * high)
        if passes(middle):
            high = middle
        else:
            low = middle
    return high


def _cosine(errors: _FloatErrors) -> float:
    if errors.nonfinite_bad.any():
        return math.nan
    out = np.where(errors.finite, errors.out, 0.0).ravel()
    ref = np.where(errors.finite, errors.ref, 0.0).ravel()
    norms = float(np.linalg.norm(out) * np.linalg.norm(ref))
    if norms == 0.0:
        return 1.0 if not out.any() and not ref.any() else 0.0
    return float(np.dot(out, ref) / norms)


def _topk_agreement(out: np.ndarray, ref: np.ndarray, k: int, axis: int) -> tuple[float, str]:
    """Fraction of rows (positions along every axis but ``axis``) whose top-k agree.

    A row agrees when every index the output ranks in its top k holds a reference value at least
    the reference's k-th largest: ties in the reference are not counted as disagreement.
    """
    if out.ndim == 0 or not -out.ndim <= axis < out.ndim:
        return 0.0, f"topk_axis={axis} is out of range for an output of shape {_shape(out)}"
    if k > out.shape[axis]:
        return 0.0, f"topk={k} is larger than the output's size {out.shape[axis]} along axis {axis}"
    out_rows = np.moveaxis(np.nan_to_num(out, nan=-np.inf), axis, -1).reshape(-1, out.shape[axis])
    ref_rows = np.moveaxis(np.nan_to_num(ref, nan=-np.inf), axis, -1).reshape(-1, ref.shape[axis])
    out_top = np.argsort(-out_rows, axis=1, kind="stable")[:, :k]
    ref_top = np.argsort(-ref_rows, axis=1, kind="stable")[:, :k]
    kth_ref = np.take_along_axis(ref_rows, ref_top[:, -1:], axis=1)
    agree = (np.take_along_axis(ref_rows, out_top, axis=1) >= kth_ref).all(axis=1)
    n_rows = agree.size
    agreement = float(agree.mean())
    if agree.all():
        return agreement, ""
    first = int(np.argmin(agree))
    row_index = _index(np.unravel_index(first, np.moveaxis(out, axis, -1).shape[:-1]))
    detail = (
        f"top-{k} along axis {axis}: {int(agree.sum())} of {n_rows} rows agree; first "
        f"disagreeing row {row_index}: out top-{k} {out_top[first].tolist()} vs ref "
        f"{ref_top[first].tolist()}"
    )
    return agreement, detail


def _worst_index(errors: _FloatErrors) -> list[int] | None:
    """Index of a rejected non-finite value if any, else of the largest |out - ref|."""
    if errors.nonfinite_bad.any():
        flat = int(np.argmax(errors.nonfinite_bad))
    elif errors.finite.any():
        flat = int(np.argmax(np.where(errors.finite, errors.abs_err, -1.0)))
    else:
        return None
    return _index(np.unravel_index(flat, errors.out.shape))


def _headline(
    name: str,
    errors: _FloatErrors,
    tol: OutputTolerance,
    stats: dict[str, Any],
    worst: list[int] | None,
    failures: list[str],
) -> str:
    rule = tol.rule()
    if "tolerance" in failures and tol.check != "elementwise":
        what = (
            f"check={tol.check!r}{f' q={tol.q:g}' if tol.check == 'quantile' else ''}: "
            f"{tol.check} of |out-ref|/(atol+rtol*|ref|) is {_num(_statistic(errors.ratio, tol))} "
            f"> 1 at {rule} ({stats['n_bad']} of {stats['n_total']} elements outside)"
        )
    elif "tolerance" in failures:
        what = f"{stats['n_bad']} of {stats['n_total']} elements outside {rule}"
    elif "cosine" in failures:
        what = f"cosine similarity {_cosine_text(stats['cosine'])} < min_cosine={tol.min_cosine:g}"
    else:
        what = f"top-{tol.topk} agreement {stats['topk_agreement']:.1%} along axis {tol.topk_axis}"
    if worst is None:
        return f"output {name!r}: {what}"
    at = tuple(worst)
    with np.errstate(invalid="ignore"):  # inf - inf is nan, and printed as such
        abs_err = abs(errors.out[at] - errors.ref[at])
    return (
        f"output {name!r}: {what}; worst |d|={_num(abs_err)} at {worst} "
        f"(out={_num(errors.out[at])}, ref={_num(errors.ref[at])})"
    )


def _details(
    errors: _FloatErrors,
    tol: OutputTolerance,
    stats: dict[str, Any],
    failures: list[str],
    topk_detail: str,
) -> list[str]:
    lines = [f"bad elements: {stats['n_bad']} of {stats['n_total']} ({stats['frac_bad']:.3%})"]
    if tol.check == "elementwise" and tol.max_mismatch > 0:
        allowed = math.floor(tol.max_mismatch * stats["n_total"] + 1e-9)
        lines[0] += f"; allowed {allowed} (max_mismatch={tol.max_mismatch:g})"
    n_nonfinite = int(errors.nonfinite_bad.sum())
    if n_nonfinite:
        first = np.unravel_index(int(np.argmax(errors.nonfinite_bad)), errors.out.shape)
        lines.append(
            f"non-finite values rejected: {n_nonfinite} (nan={tol.nan!r}, inf_equal={tol.inf_equal}); "
            f"first at {_index(first)} (out={_num(errors.out[first])}, ref={_num(errors.ref[first])})"
        )
    nonzero_ref = errors.finite & (errors.ref != 0)
    if nonzero_ref.any():
        rel = np.where(nonzero_ref, errors.abs_err / np.where(nonzero_ref, np.abs(errors.ref), 1.0), -1.0)
        at = np.unravel_index(int(np.argmax(rel)), rel.shape)
        lines.append(
            f"worst relative |d|/|ref|={_num(rel[at])} at {_index(at)} "
            f"(out={_num(errors.out[at])}, ref={_num(errors.ref[at])})"
        )
    for label in ("abs", "rel"):
        if f"max_{label}" in stats:
            lines.append(
                f"{label} error: max={_num(stats[f'max_{label}'])} mean={_num(stats[f'mean_{label}'])} "
                f"median={_num(stats[f'median_{label}'])} p99={_num(stats[f'p99_{label}'])}"
            )
    if "cosine" in stats and tol.min_cosine is None:
        lines.append(f"cosine similarity {_cosine_text(stats['cosine'])} (reported, not gated: min_cosine= gates on it)")
    elif "cosine" in stats:
        verdict = "<" if "cosine" in failures else ">="
        lines.append(f"cosine similarity {_cosine_text(stats['cosine'])} {verdict} min_cosine={tol.min_cosine:g}")
    if topk_detail:
        lines.append(topk_detail)
    lines.extend(_histogram(errors.abs_err[errors.finite]))
    lines.append(_suggestion(tol, stats))
    return lines


def _suggestion(tol: OutputTolerance, stats: dict[str, Any]) -> str:
    if not math.isfinite(stats["min_rtol"]) and not math.isfinite(stats["min_atol"]):
        return "no tolerance would pass: the failure is not a matter of rtol/atol"
    parts = []
    if math.isfinite(stats["min_rtol"]):
        parts.append(f"rtol={_round_up(stats['min_rtol'])} (at atol={format_tolerance(tol.atol)})")
    if math.isfinite(stats["min_atol"]):
        parts.append(f"atol={_round_up(stats['min_atol'])} (at rtol={format_tolerance(tol.rtol)})")
    return f"smallest tolerance that would pass check={tol.check!r}: " + " or ".join(parts)


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


def check_batch_consistency(
    infer: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    feed: Mapping[str, np.ndarray],
    batch_axis: int = 0,
    tolerance: OutputTolerance | None = None,
) -> list[str]:
    """Run row 0 of every input replicated across the batch; every output row must match row 0.

    Rows are compared exactly when ``tolerance`` is None, else with its rtol/atol. Returns one
    problem string per inconsistent output (empty when consistent).
    """
    if not feed:
        return ["batch consistency: the model has no inputs to replicate across a batch"]
    batch_sizes = set()
    for name, value in feed.items():
        arr = np.asarray(value)
        if arr.ndim <= batch_axis or arr.shape[batch_axis] < 2:
            return [
                f"batch consistency: input {name!r} of shape {_shape(arr)} has no batch axis "
                f"{batch_axis} with more than one row; run it with a batch size of 2 or more"
            ]
        batch_sizes.add(arr.shape[batch_axis])
    if len(batch_sizes) != 1:
        shapes = ", ".join(f"{n!r} {_shape(np.asarray(v))}" for n, v in feed.items())
        return [f"batch consistency: inputs disagree on the batch size along axis {batch_axis}: {shapes}"]
    batch = batch_sizes.pop()
    replicated = {
        name: np.repeat(np.take(np.asarray(value), [0], axis=batch_axis), batch, axis=batch_axis)
        for name, value in feed.items()
    }
    problems = []
    for name, value in infer(replicated).items():
        arr = np.asarray(value)
        if arr.ndim <= batch_axis or arr.shape[batch_axis] != batch:
            continue  # outputs without the batch axis have no rows to compare
        problem = _row_mismatch(name, arr, batch_axis, tolerance)
        if problem:
            problems.append(problem)
    return problems


def _row_mismatch(
    name: str, arr: np.ndarray, batch_axis: int, tolerance: OutputTolerance | None
) -> str:
    rows = np.moveaxis(arr, batch_axis, 0)
    first = rows[0:1]
    if _kind(arr.dtype) == "float":
        rows64, first64 = rows.astype(np.float64), first.astype(np.float64)
        with np.errstate(invalid="ignore"):
            diff = np.abs(rows64 - first64)
        same_nonfinite = (rows64 == first64) | (np.isnan(rows64) & np.isnan(first64))
        diff = np.where(same_nonfinite, 0.0, np.nan_to_num(diff, nan=np.inf))
        if tolerance is None:
            bad = diff > 0
        else:
            bad = diff > tolerance.atol + tolerance.rtol * np.abs(np.nan_to_num(first64))
    else:
        diff = (rows != first).astype(np.float64)
        bad = diff > 0
    bad_rows = bad.reshape(bad.shape[0], -1).any(axis=1)
    if not bad_rows.any():
        return ""
    row_worst = diff.reshape(diff.shape[0], -1).max(axis=1)
    worst_row = int(np.argmax(np.where(bad_rows, row_worst, -1.0)))
    rule = "exactly" if tolerance is None else f"at {tolerance.rule()}"
    return (
        f"batch consistency: output {name!r} differs across {rows.shape[0]} copies of the same "
        f"sample: {int(bad_rows.sum())} rows differ from row 0 ({rule}); worst row {worst_row} "
        f"|d|={_num(row_worst[worst_row])}"
    )


def save_failure(
    directory: Path,
    test_id: str,
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
) -> Path:
    """Write ``<safe test id>.npz`` under ``directory`` atomically; keys are ``input:<name>``,
    ``output:<name>`` and ``reference:<name>``. Returns the file's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, group in (("input", inputs), ("output", outputs), ("reference", reference)):
        for name, value in group.items():
            array = np.asarray(value)
            if array.dtype.hasobject:  # would need pickle, which load_failure refuses
                raise ValueError(f"save_failure({test_id!r}): {prefix} {name!r} is an object array")
            arrays[f"{prefix}:{name}"] = array
    target = directory / f"{_safe_name(test_id)}.npz"
    write_atomic_with(target, lambda stream: np.savez_compressed(stream, **arrays))
    return target


def load_failure(
    path: Path,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Read a file written by ``save_failure`` back as (inputs, outputs, reference)."""
    groups: dict[str, dict[str, np.ndarray]] = {"input": {}, "output": {}, "reference": {}}
    with np.load(Path(path), allow_pickle=False) as data:
        for key in data.files:
            prefix, sep, name = key.partition(":")
            if not sep or prefix not in groups:
                raise ValueError(
                    f"{path}: key {key!r} is not input:<name>, output:<name> or reference:<name>; "
                    "was this file written by pytest-trt's save_failure?"
                )
            groups[prefix][name] = data[key]
    return groups["input"], groups["output"], groups["reference"]


def _safe_name(test_id: str) -> str:
    """A file name from a test id; a hash keeps ids that sanitize alike apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", test_id).strip("._") or "test"
    if safe != test_id or len(safe) > 120:
        safe = f"{safe[:120]}-{hashlib.sha256(test_id.encode()).hexdigest()[:8]}"
    return safe


def _kind(dtype: np.dtype) -> str:
    if dtype.kind == "f":
        return "float"
    if dtype.kind in "iu":
        return "integer"
    if dtype.kind == "b":
        return "bool"
    return "unsupported"


def _names(outputs: Mapping[str, Any]) -> str:
    return ", ".join(repr(n) for n in outputs) or "nothing"


def _shape(arr: np.ndarray) -> tuple[int, ...]:
    return tuple(int(d) for d in arr.shape)


def _index(index: tuple[Any, ...]) -> list[int]:
    return [int(i) for i in index]


def _num(value: Any) -> str:
    return f"{float(value):.3g}"


def _cosine_text(value: float) -> str:
    """Enough decimals to tell a cosine from 1 and from min_cosine (0.99989, not "1")."""
    if not math.isfinite(value):
        return str(value)
    decimals = 2 - math.floor(math.log10(max(1.0 - value, 1e-9)))
    return f"{value:.{min(max(decimals, 3), 9)}f}"


def _round_up(value: float) -> str:
    """Two significant digits, rounded up so the printed tolerance really passes."""
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(value)) - 1
    return format_tolerance(float(f"{math.ceil(value / 10.0**exponent ) * 10.0**exponent:.2g}"))

