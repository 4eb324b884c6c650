"""The per-element errors of one float output against its reference, and what is read from them:
the error ratio each check judges, error statistics, the smallest passing tolerance, cosine
similarity, top-k agreement and the worst element.

The ratio is ``|out - ref| / (atol + rtol * |ref|)``: numpy's rule holds exactly where it is <= 1.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_trt.arguments import Check, NanPolicy
from pytest_trt.specs import OutputTolerance

_BISECTION_STEPS = 40
# The fractions of an output's elements at which its error distribution is kept for reports.
DISTRIBUTION_LEVELS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)


@dataclass(frozen=True)
class FloatErrors:
    """Per-element errors of one float output, in float64."""

    out: np.ndarray
    ref: np.ndarray
    abs_err: np.ndarray  # |out - ref|; NaN where either side is not finite
    ratio: np.ndarray  # abs_err / (atol + rtol*|ref|); 0 or inf where either side is not finite
    finite: np.ndarray  # both sides finite
    nonfinite_bad: np.ndarray  # a non-finite value on either side that the policy rejects


def float_errors(out: np.ndarray, ref: np.ndarray, tol: OutputTolerance) -> FloatErrors:
    """The errors of ``out`` against ``ref`` under ``tol``: its nan and inf_equal policies decide
    which non-finite values are rejected."""
    out64, ref64 = out.astype(np.float64), ref.astype(np.float64)
    finite = np.isfinite(out64) & np.isfinite(ref64)
    both_nan = np.isnan(out64) & np.isnan(ref64)
    same_inf = np.isinf(out64) & np.isinf(ref64) & (np.sign(out64) == np.sign(ref64))
    accepted = (both_nan & (tol.nan is NanPolicy.EQUAL)) | (same_inf & tol.inf_equal)
    nonfinite_bad = ~finite & ~accepted
    with np.errstate(invalid="ignore", over="ignore"):
        abs_err = np.where(finite, np.abs(out64 - ref64), np.nan)
    ratio = error_ratio(abs_err, np.abs(ref64), tol.rtol, tol.atol, finite)
    ratio[nonfinite_bad] = np.inf
    return FloatErrors(out64, ref64, abs_err, ratio, finite, nonfinite_bad)


@dataclass(frozen=True)
class ErrorDistribution:
    """One output's error ratios at DISTRIBUTION_LEVELS of its elements (``ratio[i]``: the ratio
    that ``levels[i]`` of the elements are at or below; 1 is the tolerance), and the tolerance
    they are relative to: what a report draws. A rejected non-finite element counts as inf."""

    levels: list[float]
    ratio: list[float]
    rtol: float
    atol: float
    check: str  # the tolerance's check: elementwise, max, mean, median, quantile
    gated: bool = True  # False where only min_cosine/topk gate the output


def distribution(errors: FloatErrors, tol: OutputTolerance) -> ErrorDistribution:
    """The error distribution of one output (elements, not interpolations: inf stays inf)."""
    values = np.quantile(errors.ratio.ravel(), DISTRIBUTION_LEVELS, method="higher")
    return ErrorDistribution(
        list(DISTRIBUTION_LEVELS), [float(v) for v in values], tol.rtol, tol.atol, tol.check.value,
        tol.tolerance_gates,
    )


def error_ratio(
    abs_err: np.ndarray, abs_ref: np.ndarray, rtol: float, atol: float, finite: np.ndarray
) -> np.ndarray:
    """``abs_err / (atol + rtol*|ref|)``: <= 1 exactly where numpy's rule holds."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        allowed = atol + rtol * abs_ref
        ratio = abs_err / allowed
    # 0/0 (exact match with zero allowance) passes; x/0 fails.
    ratio = np.where(abs_err == 0, 0.0, ratio)
    return np.where(finite, ratio, 0.0)


def check_passes(ratio: np.ndarray, tol: OutputTolerance) -> bool:
    """Does the tolerance's check accept these error ratios?"""
    if tol.check is Check.ELEMENTWISE:
        return int((ratio > 1).sum()) <= math.floor(tol.max_mismatch * ratio.size + 1e-9)
    return bool(statistic(ratio, tol) <= 1.0)


def statistic(ratio: np.ndarray, tol: OutputTolerance) -> float:
    """The statistic a statistic check (max, mean, median, quantile) reads from the error ratios."""
    flat = ratio.ravel()
    if tol.check is Check.MAX:
        return float(flat.max())
    if tol.check is Check.MEAN:
        return float(flat.mean()) if np.isfinite(flat).all() else math.inf
    q = 0.5 if tol.check is Check.MEDIAN else tol.q
    assert q is not None  # OutputTolerance asks q of check="quantile"
    return float(np.quantile(flat, q, method="higher"))


@dataclass(frozen=True)
class OutputStats:
    """What the comparison of one output read: its elements outside the tolerance, its error
    statistics (absolute and relative, over the finite elements), the smallest tolerances that
    would pass and the similarity figures. A figure not computed for this output is None; inf (no
    tolerance would pass) is written as null, so an output read back from a file has None there."""

    n_total: int = 0
    n_bad: int = 0
    frac_bad: float = 0.0
    max_abs: float | None = None
    mean_abs: float | None = None
    median_abs: float | None = None
    p99_abs: float | None = None
    max_rel: float | None = None
    mean_rel: float | None = None
    median_rel: float | None = None
    p99_rel: float | None = None
    min_rtol: float | None = None  # keeping atol
    min_atol: float | None = None  # keeping rtol
    cosine: float | None = None  # where min_cosine gates, or the model is quantized
    topk_agreement: float | None = None  # where topk gates
    top1_agreement: float | None = None  # quantized models, reported

    def numbers(self) -> dict[str, float]:
        """The figures this output has, by name: what a baseline keeps to see accuracy drift."""
        return {f.name: value for f in dataclasses.fields(self) if (value := getattr(self, f.name)) is not None}


def float_stats(errors: FloatErrors, tol: OutputTolerance) -> OutputStats:
    """Counts of bad elements, error statistics and the smallest passing tolerances."""
    n_total = errors.out.size
    n_bad = int((errors.ratio > 1).sum())
    abs_err = errors.abs_err[errors.finite]
    nonzero_ref = errors.finite & (errors.ref != 0)
    rel_err = errors.abs_err[nonzero_ref] / np.abs(errors.ref[nonzero_ref])
    return OutputStats(
        n_total, n_bad, n_bad / n_total, **_summary("abs", abs_err), **_summary("rel", rel_err),
        min_rtol=smallest_tolerance(errors, tol, "rtol"), min_atol=smallest_tolerance(errors, tol, "atol"),
    )


def _summary(label: str, values: np.ndarray) -> dict[str, float]:
    """Max, mean, median and p99 of ``values`` as OutputStats names them; none where it is empty."""
    if values.size == 0:
        return {}
    return {
        f"max_{label}": float(values.max()),
        f"mean_{label}": float(values.mean()),
        f"median_{label}": float(np.median(values)),
        f"p99_{label}": float(np.percentile(values, 99)),
    }


def smallest_tolerance(errors: FloatErrors, tol: OutputTolerance, which: str) -> float:
    """The smallest rtol (keeping atol) or atol (keeping rtol) that the check would accept;
    inf when none would (non-finite mismatches, or a zero reference with atol held at 0)."""
    if tol.check is Check.ELEMENTWISE:
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


def _bisect_tolerance(errors: FloatErrors, tol: OutputTolerance, which: str) -> float:
    """For statistic checks: the check is monotone in each tolerance, so bisect on a log scale."""
    abs_ref = np.abs(errors.ref)

    def passes(value: float) -> bool:
        rtol, atol = (value, tol.atol) if which == "rtol" else (tol.rtol, value)
        ratio = error_ratio(errors.abs_err, abs_ref, rtol, atol, errors.finite)
        ratio[errors.nonfinite_bad] = np.inf
        return check_passes(ratio, tol)

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


def cosine_similarity(errors: FloatErrors) -> float:
    if errors.nonfinite_bad.any():
        return math.nan
    out = np.where(errors.finite, errors.out, 0.0).ravel()
    ref = np.where(errors.finite, errors.ref, 0.0).ravel()
    norms = float(np.linalg.norm(out) * np.linalg.norm(ref))
    if norms == 0.0:
        return 1.0 if not out.any() and not ref.any() else 0.0
    return float(np.dot(out, ref) / norms)


def topk_agreement(out: np.ndarray, ref: np.ndarray, k: int, axis: int) -> tuple[float, str]:
    """Fraction of rows (positions along every axis but ``axis``) whose top-k agree.

    A row agrees when every index the output ranks in its top k holds a reference value at least
    the reference's k-th largest: ties in the reference are not counted as disagreement.
    """
    if out.ndim == 0 or not -out.ndim <= axis < out.ndim:
        return 0.0, f"topk_axis={axis} is out of range for an output of shape {shape_of(out)}"
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
    row_index = index_list(np.unravel_index(first, np.moveaxis(out, axis, -1).shape[:-1]))
    detail = (
        f"top-{k} along axis {axis}: {int(agree.sum())} of {n_rows} rows agree; first "
        f"disagreeing row {row_index}: out top-{k} {out_top[first].tolist()} vs ref "
        f"{ref_top[first].tolist()}"
    )
    return agreement, detail


def worst_index(errors: FloatErrors) -> list[int] | None:
    """Index of a rejected non-finite value if any, else of the largest |out - ref|."""
    if errors.nonfinite_bad.any():
        flat = int(np.argmax(errors.nonfinite_bad))
    elif errors.finite.any():
        flat = int(np.argmax(np.where(errors.finite, errors.abs_err, -1.0)))
    else:
        return None
    return index_list(np.unravel_index(flat, errors.out.shape))


def shape_of(arr: np.ndarray) -> tuple[int, ...]:
    """The shape as plain ints, as messages print it."""
    return tuple(int(d) for d in arr.shape)


def index_list(index: tuple[Any, ...]) -> list[int]:
    """A numpy index as plain ints, as reports store and print it."""
    return [int(i) for i in index]
