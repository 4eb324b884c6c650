"""Drift and steps over a baseline's history: the slow change no single comparison flags.

A series of recordings (``history.HistoryPoint``, oldest first, one workload) is judged by a trend
test, chosen over an asv-style step fit by bench/history_detectors.py (docs/regression.md has its
numbers): the Mann-Kendall test says whether the floors rise monotonically beyond chance
(one-sided, ``ALPHA``), and the Theil-Sen slope (the median of pairwise slopes) how fast. A ``STEP``
is a single split of the series that explains most of its spread, each side flat and the later
one higher by the Mann-Whitney test (its size is the change of the medians; the commit of the
first recording after it is named); else, where Mann-Kendall finds a rise, a ``DRIFT`` (its size
is the change from the first third's median to the last third's; the Theil-Sen change per
recording is named). Either beyond the threshold is a finding. The statistics are rank-based,
so a recording taken in an odd moment moves them little. Pure functions; numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from pytest_trt.baselines.history import HistoryPoint, comparable_tail

ALPHA = 0.01  # one-sided Mann-Kendall p-value below which a rise is not chance
MIN_POINTS = 6  # fewer recordings say nothing about a trend
WINDOW = 20  # the latest recordings judged: an old, accepted change ages out
# A step, not a drift: the best single split leaves the two sides with no trend of their own and
# removes at least this share of the series' L1 spread around one level.
STEP_EXPLAINS = 0.6


class DriftState(str, Enum):
    """What the history shows."""

    STEADY = "steady"  # no rise beyond the threshold
    STEP = "step"  # a rise at one recording
    DRIFT = "drift"  # a steady rise over the recordings
    TOO_SHORT = "too-short"  # fewer than MIN_POINTS comparable recordings


@dataclass(frozen=True)
class DriftFinding:
    """The verdict over a series: ``change`` is the rise over the judged recordings (a fraction:
    a step's change of medians, else the last third's median over the first third's),
    ``per_recording`` the Theil-Sen slope over the median floor, and for a
    STEP ``at`` the first recording after the step."""

    state: DriftState
    points: int
    change: float = 0.0
    per_recording: float = 0.0
    p_value: float = 1.0
    at: HistoryPoint | None = None
    threshold: float = 0.0

    @property
    def flagged(self) -> bool:
        return self.state in (DriftState.STEP, DriftState.DRIFT)

    def message(self) -> str:
        """The finding in words ('' where nothing was found)."""
        if self.state is DriftState.STEP and self.at is not None:
            where = f"commit {self.at.commit}" if self.at.commit else "a recording without a commit"
            when = f" ({self.at.recorded_at})" if self.at.recorded_at else ""
            return (
                f"baseline history: a step of {self.change * 100:+.1f}% at {where}{when}, over the last "
                f"{self.points} recordings (threshold {self.threshold * 100:g}%; Mann-Kendall p={self.p_value:.2g})"
            )
        if self.state is DriftState.DRIFT:
            return (
                f"baseline history: a steady drift of {self.per_recording * 100:+.2f}% per recording, "
                f"{self.change * 100:+.1f}% over the last {self.points} recordings (threshold "
                f"{self.threshold * 100:g}%; Mann-Kendall p={self.p_value:.2g})"
            )
        return ""


def mann_kendall(values: Sequence[float]) -> tuple[float, float]:
    """(S, one-sided p-value for a rising trend) of the Mann-Kendall test, with the variance
    corrected for ties and the normal approximation with continuity correction."""
    y = np.asarray(values, dtype=np.float64)
    n = y.size
    s = float(np.sign(y[None, :] - y[:, None])[np.triu_indices(n, 1)].sum())
    _, counts = np.unique(y, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - float((counts * (counts - 1) * (2 * counts + 5)).sum())) / 18.0
    if var <= 0:
        return s, 1.0
    z = (s - 1.0) / math.sqrt(var) if s > 0 else (s + 1.0) / math.sqrt(var) if s < 0 else 0.0
    return s, 0.5 * math.erfc(z / math.sqrt(2.0))


def theil_sen(values: Sequence[float]) -> tuple[float, float]:
    """(slope, intercept) of the Theil-Sen fit over the indices 0..n-1."""
    y = np.asarray(values, dtype=np.float64)
    i, j = np.triu_indices(y.size, 1)
    slope = float(np.median((y[j] - y[i]) / (j - i)))
    intercept = float(np.median(y) - slope * np.median(np.arange(y.size)))
    return slope, intercept


def mann_whitney(before: Sequence[float], after: Sequence[float]) -> float:
    """One-sided p-value of the Mann-Whitney test that ``after`` runs higher than ``before``
    (normal approximation with continuity correction; ties count half)."""
    a, b = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    u = float((b[None, :] > a[:, None]).sum() + 0.5 * (b[None, :] == a[:, None]).sum())
    n1, n2 = a.size, b.size
    sd = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0)
    z = (u - n1 * n2 / 2.0 - 0.5) / sd
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def best_split(values: Sequence[float]) -> tuple[int, float]:
    """(index of the first value after the split, share of the L1 spread around one median that
    two medians remove) of the best single split, each side three values at least."""
    y = np.asarray(values, dtype=np.float64)
    whole = float(np.abs(y - np.median(y)).sum())
    best, gain = 0, 0.0
    for k in range(3, y.size - 2):
        left, right = y[:k], y[k:]
        cost = float(np.abs(left - np.median(left)).sum() + np.abs(right - np.median(right)).sum())
        share = 1.0 - cost / whole if whole > 0 else 0.0
        if share > gain:
            best, gain = k, share
    return best, gain


def judge(series: Sequence[HistoryPoint], threshold: float) -> DriftFinding:
    """The latest comparable recordings (the last WINDOW of one workload) judged for a rise of
    the floor beyond ``threshold`` (a fraction)."""
    points = comparable_tail(list(series))[-WINDOW:]
    if len(points) < MIN_POINTS:
        return DriftFinding(DriftState.TOO_SHORT, len(points), threshold=threshold)
    floors = [p.floor_ms for p in points]
    _, p_value = mann_kendall(floors)
    slope, _ = theil_sen(floors)
    level = float(np.median(floors))
    per_recording = slope / level
    k, explained = best_split(floors)
    if k and explained >= STEP_EXPLAINS:
        left, right = floors[:k], floors[k:]
        if mann_whitney(left, right) < ALPHA and not _rising(left) and not _rising(right):
            step = float(np.median(right) / np.median(left) - 1.0)
            state = DriftState.STEP if step > threshold else DriftState.STEADY
            return DriftFinding(state, len(points), step, per_recording, p_value, points[k], threshold)
    if p_value >= ALPHA:
        return DriftFinding(DriftState.STEADY, len(points), 0.0, per_recording, p_value, threshold=threshold)
    third = max(2, len(floors) // 3)
    change = float(np.median(floors[-third:]) / np.median(floors[:third]) - 1.0)
    state = DriftState.DRIFT if change > threshold else DriftState.STEADY
    return DriftFinding(state, len(points), change, per_recording, p_value, threshold=threshold)


def _rising(values: Sequence[float]) -> bool:
    return len(values) >= MIN_POINTS and mann_kendall(values)[1] < ALPHA
