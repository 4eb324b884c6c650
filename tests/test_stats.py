"""Descriptive statistics: summaries, percentiles, quantile summaries and the bootstrap CI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_trt.timing.stats import (
    QUANTILE_POINTS,
    LatencyStats,
    bootstrap_ci,
    percentile,
    percentile_label,
    quantile_summary,
    sample_from_quantiles,
    samples_needed,
    summarize,
)


def test_summarize_known_sample() -> None:
    stats = summarize([4.0, 1.0, 3.0, 2.0])
    assert stats.n == 4
    assert (stats.min, stats.max, stats.mean, stats.median) == (1.0, 4.0, 2.5, 2.5)
    assert stats.p90 == pytest.approx(3.7)  # linear: 1 + 0.9 * 3 positions in
    assert stats.p99 == pytest.approx(3.97)
    assert stats.stdev == pytest.approx(math.sqrt(5 / 3))  # ddof=1
    assert stats.cv == pytest.approx(math.sqrt(5 / 3) / 2.5)


def test_summarize_single_value_has_zero_spread() -> None:
    stats = summarize([0.5])
    assert (stats.n, stats.median, stats.p99, stats.stdev, stats.cv) == (1, 0.5, 0.5, 0.0, 0.0)


def test_summarize_as_dict_has_every_field() -> None:
    data = summarize([1.0, 2.0]).as_dict()
    assert list(data) == [
        "n", "min", "mean", "median", "p90", "p95", "p99", "max", "stdev", "cv",
    ]
    assert LatencyStats(**data) == summarize([1.0, 2.0])


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        ([], "latency sample is empty"),
        ([1.0, 2.0, float("nan")], r"1 non-finite value\(s\) \(first nan at index 2\)"),
        ([float("inf"), 1.0, float("-inf")], r"2 non-finite value\(s\) \(first inf at index 0\)"),
        ([[1.0, 2.0]], r"one-dimensional, got shape \(1, 2\)"),
    ],
)
def test_summarize_rejects_bad_samples(samples: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        summarize(samples)


def test_percentile_edges_and_interpolation() -> None:
    samples = [10.0, 30.0, 20.0, 40.0]
    assert percentile(samples, 0) == 10.0
    assert percentile(samples, 100) == 40.0
    assert percentile(samples, 50) == 25.0
    assert percentile([7.0], 99.9) == 7.0
    rng = np.random.default_rng(1)
    sample = rng.lognormal(size=999)
    assert percentile(sample, 99.9) == pytest.approx(np.percentile(sample, 99.9, method="linear"))


@pytest.mark.parametrize("q", [-0.1, 100.5, True, "50", float("nan")])
def test_percentile_rejects_q_outside_0_100(q: object) -> None:
    with pytest.raises(ValueError, match=r"q must be a percentile in \[0, 100\]"):
        percentile([1.0, 2.0], q)  # type: ignore[arg-type]


@pytest.mark.parametrize(("q", "label"), [(50, "p50"), (50.0, "p50"), (99.9, "p99.9"), (99.99, "p99.99"), (0, "p0")])
def test_percentile_label_drops_trailing_zeros(q: float, label: str) -> None:
    assert percentile_label(q) == label


def test_quantile_points_cover_body_and_tail() -> None:
    assert len(QUANTILE_POINTS) == 21
    assert QUANTILE_POINTS[0] == 1.0 and QUANTILE_POINTS[-1] == 99.0 and 50.0 in QUANTILE_POINTS
    assert list(QUANTILE_POINTS) == sorted(QUANTILE_POINTS)


def test_quantile_round_trip_keeps_the_distribution() -> None:
    rng = np.random.default_rng(7)
    original = rng.lognormal(mean=0.0, sigma=0.4, size=4000)
    stored = quantile_summary(original)
    assert len(stored) == len(QUANTILE_POINTS)
    assert stored == sorted(stored)
    rebuilt = sample_from_quantiles(stored, 4000)
    assert rebuilt.shape == (4000,)
    assert np.median(rebuilt) == pytest.approx(np.median(original), rel=0.01)
    assert np.percentile(rebuilt, 90) == pytest.approx(np.percentile(original, 90), rel=0.02)
    # Beyond the stored points the sample is clamped, never extrapolated.
    assert rebuilt.min() == pytest.approx(stored[0]) and rebuilt.max() == pytest.approx(stored[-1])


def test_quantile_round_trip_of_a_constant_sample() -> None:
    assert np.all(sample_from_quantiles(quantile_summary([2.5] * 10), 7) == 2.5)


def test_quantile_summary_with_custom_points() -> None:
    assert quantile_summary([1.0, 2.0, 3.0, 4.0, 5.0], points=(0, 50, 100)) == [1.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="increasing percentiles"):
        quantile_summary([1.0], points=(50, 10))


@pytest.mark.parametrize(
    ("quantiles", "n", "message"),
    [
        ([1.0, 2.0], 10, "got 2 quantiles for 21 points"),
        ([2.0] * 20 + [1.0], 10, "quantiles must be non-decreasing"),
        ([1.0] * 21, 0, "n must be a positive int, got 0"),
        ([float("nan")] * 21, 10, "quantiles has 21 non-finite"),
    ],
)
def test_sample_from_quantiles_rejects_bad_input(quantiles: list[float], n: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_from_quantiles(quantiles, n)


def test_bootstrap_ci_covers_the_true_median_ratio() -> None:
    rng = np.random.default_rng(11)
    baseline = rng.lognormal(mean=0.0, sigma=0.2, size=800)
    slower = rng.lognormal(mean=math.log(1.2), sigma=0.2, size=600)  # true median ratio 1.2
    low, high = bootstrap_ci(baseline, slower, seed=3)
    assert 1.0 < low < 1.2 < high < 1.4


def test_bootstrap_ci_of_same_distribution_contains_one() -> None:
    rng = np.random.default_rng(12)
    low, high = bootstrap_ci(rng.lognormal(size=500), rng.lognormal(size=500), confidence=0.99)
    assert low < 1.0 < high


def test_bootstrap_ci_is_deterministic_per_seed() -> None:
    rng = np.random.default_rng(13)
    x, y = rng.lognormal(size=300), rng.lognormal(size=300)
    assert bootstrap_ci(x, y, seed=5) == bootstrap_ci(x, y, seed=5)
    assert bootstrap_ci(x, y, seed=5) != bootstrap_ci(x, y, seed=6)


@pytest.mark.parametrize(("n", "q"), [(101, 50.0), (100, 50.0), (60, 90.0), (7, 99.0)])
def test_bootstrap_ci_matches_resampling_by_brute_force(n: int, q: float) -> None:
    """The order-statistic shortcut must give what resampling whole samples gives."""
    rng = np.random.default_rng(n)
    x, y = rng.lognormal(sigma=0.3, size=n), rng.lognormal(sigma=0.3, size=n)
    resamples = 20000
    draw = np.random.default_rng(99)
    ratios = np.percentile(y[draw.integers(0, n, (resamples, n))], q, axis=1) / np.percentile(
        x[draw.integers(0, n, (resamples, n))], q, axis=1
    )
    expected = np.quantile(ratios, [0.05, 0.95])
    got = bootstrap_ci(x, y, q=q, confidence=0.9, resamples=resamples)
    assert got == pytest.approx(tuple(expected), rel=0.03)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": [0.0, 1.0]}, "x must be positive"),
        ({"y": []}, "y is empty"),
        ({"confidence": 1.0}, r"confidence must be in \(0, 1\)"),
        ({"resamples": 0}, "resamples must be a positive int"),
        ({"q": 101}, r"q must be a percentile in \[0, 100\]"),
    ],
)
def test_bootstrap_ci_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    args = {"x": [1.0, 2.0], "y": [1.0, 2.0], **kwargs}
    with pytest.raises(ValueError, match=message):
        bootstrap_ci(**args)


@pytest.mark.parametrize(
    ("q", "needed"),
    [(99.0, 100), (1.0, 100), (95.0, 20), (90.0, 10), (50.0, 2), (99.9, 1000), (0.0, 1), (100.0, 1), (75.0, 4)],
)
def test_samples_a_percentile_needs(q: float, needed: int) -> None:
    assert samples_needed(q) == needed


def test_below_the_samples_it_needs_a_p99_is_the_samples_edge() -> None:
    # 99 samples: the "p99" lies between the two largest; 100 or more put one sample above it.
    assert percentile(list(range(99)), 99) > 97 and samples_needed(99) == 100
    with pytest.raises(ValueError, match="percentile in"):
        samples_needed(101)
