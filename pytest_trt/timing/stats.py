"""Descriptive statistics of latency samples: summaries, percentiles, compact quantile
summaries for baselines, and a bootstrap confidence interval for the ratio of two percentiles.

Every percentile here uses numpy's default "linear" method (type 7 of Hyndman & Fan: linear
interpolation between the two nearest order statistics), so budgets, reports and baselines agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

# Percent points stored in a baseline instead of the whole sample: dense enough to rebuild the
# distribution's body and the p99 tail, small enough to diff in review.
QUANTILE_POINTS: tuple[float, ...] = (1.0, *(float(p) for p in range(5, 100, 5)), 99.0)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one latency sample, all in milliseconds except ``n`` and ``cv``.

    ``stdev`` is the sample standard deviation (ddof=1; 0 for a single value) and ``cv`` is
    stdev / mean as a fraction (0.031 means 3.1%).
    """

    n: int
    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    max: float
    stdev: float
    cv: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _checked(samples: Sequence[float] | np.ndarray, what: str = "latency sample") -> np.ndarray:
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{what} is empty: nothing was measured")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"{what} has {bad.size} non-finite value(s) (first {float(values[bad[0]])} at index {bad[0]})"
        )
    return values


def _check_percent(q: float, what: str = "q") -> float:
    if isinstance(q, bool) or not isinstance(q, (int, float, np.floating)) or not 0.0 <= q <= 100.0:
        raise ValueError(f"{what} must be a percentile in [0, 100], got {q!r}")
    return float(q)


def summarize(samples_ms: Sequence[float] | np.ndarray) -> LatencyStats:
    """Summarize a latency sample; raises ValueError on an empty or non-finite sample."""
    values = _checked(samples_ms)
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99])
    mean = float(values.mean())
    stdev = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return LatencyStats(
        n=int(values.size),
        min=float(values.min()),
        mean=mean,
        median=float(p50),
        p90=float(p90),
        p95=float(p95),
        p99=float(p99),
        max=float(values.max()),
        stdev=stdev,
        cv=stdev / mean if mean > 0 else 0.0,
    )


def percentile(samples_ms: Sequence[float] | np.ndarray, q: float) -> float:
    """The q-th percentile (q in [0, 100]) by numpy's "linear" method."""
    return float(np.percentile(_checked(samples_ms), _check_percent(q)))


def samples_needed(q: float) -> int:
    """The fewest samples for the q-th percentile to be an estimate rather than the sample's edge:
    one sample in a hundred lies above a p99, so below 100 samples the "p99" is the largest one
    (or between the two largest), which sits near the p96 of 24 samples and reads low. So:
    100 for p99 and p1, 20 for p95, 10 for p90, 2 for the median, 1000 for p99.9; 1 for the min
    and the max, which are what they say at any size."""
    tail = min(_check_percent(q), 100.0 - float(q))
    return 1 if tail == 0 else math.ceil(round(100.0 / tail, 6))


def percentile_label(q: float) -> str:
    """``p50`` for 50, ``p99.9`` for 99.9: no trailing zeros."""
    return f"p{_check_percent(q):.10g}"


def _check_points(points: Sequence[float]) -> np.ndarray:
    grid = np.asarray(points, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"points must be at least two increasing percentiles, got {list(points)!r}")
    for p in grid:
        _check_percent(float(p), "points")
    return grid


def quantile_summary(
    samples_ms: Sequence[float] | np.ndarray, points: Sequence[float] = QUANTILE_POINTS
) -> list[float]:
    """The sample's percentiles at ``points`` (percent), for storing a sample compactly."""
    return [float(v) for v in np.percentile(_checked(samples_ms), _check_points(points))]


def sample_from_quantiles(
    quantiles: Sequence[float], n: int, points: Sequence[float] = QUANTILE_POINTS
) -> np.ndarray:
    """An n-point pseudo-sample whose quantile function interpolates the stored ``quantiles``.

    Values sit at the mid-point plotting positions (i + 0.5) / n, so the median and the other
    stored percentiles come back where they were; beyond the outermost points the sample is
    clamped to the outermost stored values rather than extrapolated.
    """
    grid = _check_points(points)
    values = _checked(quantiles, "quantiles")
    if values.size != grid.size:
        raise ValueError(f"got {values.size} quantiles for {grid.size} points")
    if np.any(np.diff(values) < 0):
        raise ValueError(f"quantiles must be non-decreasing, got {list(quantiles)!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    positions = (np.arange(n) + 0.5) / n * 100.0
    return np.asarray(np.interp(positions, grid, values), dtype=np.float64)


def _bootstrap_percentiles(
    sorted_values: np.ndarray, q: float, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """The q-th percentile of ``resamples`` bootstrap resamples, drawn without materializing them.

    A resample takes indices floor(n * U) of n uniforms U, so its j-th smallest index is
    floor(n * U_(j)) with U_(j) ~ Beta(j, n + 1 - j); the next order statistic is
    U_(j) + (1 - U_(j)) * Beta(1, n - j). That is exactly the bootstrap distribution of the
    linear-method percentile, at O(resamples) cost instead of O(resamples * n).
    """
    n = sorted_values.size
    position = (n - 1) * q / 100.0
    j = int(np.floor(position)) + 1  # 1-based rank of the lower order statistic
    frac = position - (j - 1)
    u_low = rng.beta(j, n + 1 - j, size=resamples)
    low = sorted_values[np.minimum((n * u_low).astype(np.int64), n - 1)]
    if j >= n or frac == 0.0:
        return low
    u_high = u_low + (1.0 - u_low) * rng.beta(1, n - j, size=resamples)
    high = sorted_values[np.minimum((n * u_high).astype(np.int64), n - 1)]
    return np.asarray(low + frac * (high - low))


def _check_interval(confidence: float, resamples: int) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive int, got {resamples!r}")


Term = tuple[Sequence[float] | np.ndarray, float]  # a sample and the percentile taken of it


def bootstrap_ratio_ci(
    numerators: Sequence[Term],
    denominators: Sequence[Term],
    confidence: float = 0.95,
    resamples: int = 10000,
    seed: int | None = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval for a product of percentiles over a product of percentiles,
    each term a (sample, q) resampled on its own. ``bootstrap_ci`` is the one-over-one case."""
    _check_interval(confidence, resamples)
    rng = np.random.default_rng(seed)
    ratios = np.ones(resamples)
    for side, terms in (("numerator", numerators), ("denominator", denominators)):
        for k, (sample, q) in enumerate(terms):
            values = np.sort(_checked(sample, f"{side} {k}"))
            draws = _bootstrap_percentiles(values, _check_percent(q), resamples, rng)
            if side == "numerator":
                ratios *= draws
            elif values[0] > 0:
                ratios /= draws
            else:
                raise ValueError(f"{side} {k} must be positive, got min {float(values[0])}")
    alpha = 1.0 - confidence
    low, high = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    q: float = 50.0,
    confidence: float = 0.95,
    resamples: int = 10000,
    seed: int | None = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval for percentile_q(y) / percentile_q(x) (default: medians).

    With x a baseline and y a new sample, a low bound above 1.10 means y is slower by more than
    10% at the stated confidence. Deterministic for a given ``seed``.
    """
    xs = _checked(x, "x")
    _checked(y, "y")
    if xs.min() <= 0:
        raise ValueError(f"x must be positive (it is the ratio's denominator), got min {float(xs.min())}")
    return bootstrap_ratio_ci([(y, q)], [(x, q)], confidence, resamples, seed)
