"""Is a new latency sample slower than its baseline? A two-sample test built to be trusted in CI.

The method (docs/regression.md says why, bench/regression_power.py measures it):

* The compared statistic is the sample's floor, its minimum (``COMPARED_PERCENTILE`` = 0). Noise
  on a shared machine only ever adds time (another tenant, a descheduled thread, a slow phase of
  the host), so the floor is what the code itself costs; the median moves by 15% and more
  between runs on a 2-core cloud VM while the floor stays within about 2%.
* A test regresses when the floor is slower than the baseline's by more than the threshold AND
  a 95% bootstrap interval of the ratio lies entirely above 1 (``stats.bootstrap_ci`` on the new
  sample and the sample rebuilt from the baseline's stored quantiles). Improvement is the mirror
  image, reported and never failed. A change beyond the threshold that is not significant is
  "inconclusive" and does not fail.
* ``decide`` re-measures once when the first measurement looks regressed, and fails only if the
  re-measurement, on its own, is regressed too. One burst of host noise rarely covers two
  measurements, so false alarms drop roughly to their square while a real slowdown, present in
  every measurement, still fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .results import TestRecord
from .stats import bootstrap_ci, percentile_label, sample_from_quantiles

COMPARED_PERCENTILE = 0.0
CONFIDENCE = 0.95
RESAMPLES = 4000
MIN_SAMPLES = 20  # fewer iterations than this say nothing about a floor

# Accuracy drift: an error statistic "well above" its baseline is more than DRIFT_FACTOR times it
# and more than DRIFT_FLOOR above it in absolute terms (so 0 -> 1e-9 is not a drift).
DRIFT_FACTOR = 2.0
DRIFT_FLOOR = 1e-6
DRIFT_STATS = ("max_abs", "p99_abs", "mean_abs", "max_rel", "p99_rel", "mean_rel")


@dataclass
class RegressionVerdict:
    """The comparison of one sample with its baseline. Changes are fractions (0.142 = +14.2%)
    of the compared statistic (``statistic``, the floor by default); ``median_change`` is the
    medians' change, shown for context."""

    status: str  # regressed | improved | unchanged | inconclusive
    median_change: float
    ci_low: float
    ci_high: float
    threshold: float
    remeasured: bool
    message: str
    statistic: str = "min"
    change: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def statistic_label(q: float) -> str:
    return {0.0: "min", 50.0: "median", 100.0: "max"}.get(float(q), percentile_label(q))


def baseline_sample(baseline: Mapping[str, Any]) -> np.ndarray:
    """The pseudo-sample rebuilt from a stored entry's quantiles and n."""
    try:
        latency = baseline["latency_ms"]
        pairs = sorted((float(label.lstrip("p")), float(v)) for label, v in latency["quantiles"].items())
        n = int(latency["n"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"baseline entry has no usable latency_ms ({exc!r})") from None
    points, values = zip(*pairs) if pairs else ((), ())
    return sample_from_quantiles(list(values), n, list(points))


def _percent(fraction: float) -> str:
    return f"{fraction * 100:+.1f}%"


def assess(
    baseline: Mapping[str, Any],
    samples_ms: Sequence[float],
    threshold: float,
    *,
    percentile: float = COMPARED_PERCENTILE,
) -> RegressionVerdict:
    """Compare one sample with a stored baseline entry (see the module docstring for the rule)."""
    if not threshold > 0:
        raise ValueError(f"regression threshold must be a positive fraction, got {threshold!r}")
    base = baseline_sample(baseline)
    new = np.asarray(samples_ms, dtype=np.float64)
    label = statistic_label(percentile)
    median_change = float(np.median(new) / np.median(base) - 1.0) if new.size else float("nan")
    if new.size < MIN_SAMPLES:
        return RegressionVerdict(
            "inconclusive", median_change, float("nan"), float("nan"), threshold, False,
            f"only {new.size} iterations measured; need {MIN_SAMPLES} to compare with the baseline", label,
            float("nan"),
        )
    change = float(np.percentile(new, percentile) / np.percentile(base, percentile) - 1.0)
    ratio_low, ratio_high = bootstrap_ci(base, new, q=percentile, confidence=CONFIDENCE, resamples=RESAMPLES)
    low, high = ratio_low - 1.0, ratio_high - 1.0
    if change > threshold and low > 0:
        status = "regressed"
    elif change < -threshold and high < 0:
        status = "improved"
    elif abs(change) > threshold:
        status = "inconclusive"
    else:
        status = "unchanged"
    message = (
        f"{label} {_percent(change)} vs baseline ({CONFIDENCE:.0%} CI {_percent(low)}..{_percent(high)}, "
        f"threshold {threshold * 100:g}%)"
    )
    if status == "inconclusive":
        message += ": beyond the threshold but not significant"
    return RegressionVerdict(status, median_change, low, high, threshold, False, message, label, change)


def decide(
    baseline: Mapping[str, Any],
    first_samples_ms: Sequence[float],
    remeasure: Callable[[], Sequence[float]],
    threshold: float,
    *,
    percentile: float = COMPARED_PERCENTILE,
) -> RegressionVerdict:
    """``assess``; when that says "regressed", call ``remeasure()`` once and return the verdict
    of the re-measurement alone. So a test fails only when two measurements in a row are
    regressed, and the reported numbers are the re-measurement's."""
    first = assess(baseline, first_samples_ms, threshold, percentile=percentile)
    if first.status != "regressed":
        return first
    second = assess(baseline, remeasure(), threshold, percentile=percentile)
    second.remeasured = True
    if second.status == "regressed":
        second.message += f"; confirmed by a re-measurement (first: {first.statistic} {_percent(first.change)})"
    else:
        second.message += f"; the first measurement ({first.statistic} {_percent(first.change)}) was not confirmed"
    return second


def accuracy_drift(baseline: Mapping[str, Any], record: TestRecord) -> list[str]:
    """One warning line per output error statistic well above the baseline's (see DRIFT_*)."""
    stored = baseline.get("accuracy") or {}
    lines = []
    for output in getattr(record.accuracy, "outputs", None) or []:
        before = stored.get(output.name) or {}
        for key in DRIFT_STATS:
            old, new = before.get(key), output.stats.get(key)
            if not isinstance(old, (int, float)) or not isinstance(new, (int, float)):
                continue
            if new > DRIFT_FACTOR * old and new - old > DRIFT_FLOOR:
                times = f"{new / old:.1f}x" if old > 0 else "from 0"
                lines.append(
                    f"accuracy drift: output {output.name!r} {key} {new:.3g} vs baseline {old:.3g} ({times}), "
                    "still within tolerance"
                )
    return lines
