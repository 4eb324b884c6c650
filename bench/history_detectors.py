"""Which detector judges a baseline's history: an asv-style step fit or a trend test.

Synthetic histories of recorded floors (1.0 ms, multiplicative noise), each judged by:

* ``steps``: asv-style (asv/step_detect.py): a piecewise-constant L1 fit (optimal partitioning,
  a penalty of PENALTY * ln(n) per segment in units of the noise read from successive
  differences), then asv's rule: the latest level against the best earlier one beyond the
  threshold (the latest level holding two recordings at least, asv's min_size);
* ``trend``: pytest_trt.baselines.drift.judge: Mann-Kendall (one-sided, alpha 0.01) with the
  Theil-Sen change over the window beyond the threshold.

Printed: the share of flat histories flagged (false alarms) and of steps and drifts flagged
(detections), threshold 3%. Run: python bench/history_detectors.py [--trials 2000]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np

from pytest_trt.baselines.drift import judge
from pytest_trt.baselines.history import HistoryPoint

THRESHOLD = 0.03
PENALTY = 2.0


def steps_detector(floors: np.ndarray, threshold: float) -> bool:
    """asv-style: L1 Potts fit by optimal partitioning, then latest level vs best earlier level."""
    n = floors.size
    sigma = max(1.4826 * float(np.median(np.abs(np.diff(floors)))) / math.sqrt(2.0), 1e-3 * float(np.median(floors)))
    gamma = PENALTY * math.log(n)
    cost = np.zeros((n + 1, n + 1))
    for a in range(n):
        for b in range(a + 1, n + 1):
            seg = floors[a:b]
            cost[a, b] = float(np.abs(seg - np.median(seg)).sum()) / sigma
    best = np.full(n + 1, np.inf)
    best[0] = -gamma
    prev = np.zeros(n + 1, dtype=int)
    for b in range(1, n + 1):
        for a in range(b):
            c = best[a] + cost[a, b] + gamma
            if c < best[b]:
                best[b], prev[b] = c, a
    bounds, b = [], n
    while b > 0:
        bounds.append((prev[b], b))
        b = prev[b]
    levels = [float(np.median(floors[a:b])) for a, b in reversed(bounds)]
    if len(levels) < 2 or bounds[0][1] - bounds[0][0] < 2:  # asv's min_size=2 for the latest level
        return False
    return levels[-1] / min(levels[:-1]) - 1.0 > threshold


def trend_detector(floors: np.ndarray, threshold: float) -> bool:
    series = [HistoryPoint(floor_ms=float(f), median_ms=float(f)) for f in floors]
    return judge(series, threshold).flagged


def flat(rng: np.random.Generator, n: int, noise: float) -> np.ndarray:
    return 1.0 + noise * rng.standard_normal(n)


def with_outliers(rng: np.random.Generator, n: int, noise: float) -> np.ndarray:
    """Noise plus one recording in ten taken in a slow moment (+3% to +10%)."""
    y = flat(rng, n, noise)
    slow = rng.random(n) < 0.1
    return y * (1.0 + slow * rng.uniform(0.03, 0.10, n))


def step(size: float) -> Callable[[np.random.Generator, int, float], np.ndarray]:
    def make(rng: np.random.Generator, n: int, noise: float) -> np.ndarray:
        k = int(rng.integers(n // 4, 3 * n // 4 + 1))
        return flat(rng, n, noise) * np.where(np.arange(n) >= k, 1.0 + size, 1.0)
    return make


def drift(per_recording: float) -> Callable[[np.random.Generator, int, float], np.ndarray]:
    def make(rng: np.random.Generator, n: int, noise: float) -> np.ndarray:
        return flat(rng, n, noise) * (1.0 + per_recording * np.arange(n))
    return make


CASES: list[tuple[str, str, Callable[[np.random.Generator, int, float], np.ndarray], int, float]] = [
    ("false alarm", "flat, 1% noise, 10 rec.", flat, 10, 0.01),
    ("false alarm", "flat, 1% noise, 20 rec.", flat, 20, 0.01),
    ("false alarm", "flat, 1% noise, 50 rec.", flat, 50, 0.01),
    ("false alarm", "flat, 2% noise, 20 rec.", flat, 20, 0.02),
    ("false alarm", "flat, 1% + 1 in 10 slow, 20 rec.", with_outliers, 20, 0.01),
    ("false alarm", "step +2% (under 3%), 1% noise, 20 rec.", step(0.02), 20, 0.01),
    ("detection", "step +5%, 1% noise, 20 rec.", step(0.05), 20, 0.01),
    ("detection", "step +10%, 2% noise, 20 rec.", step(0.10), 20, 0.02),
    ("detection", "drift 1%/rec., 1% noise, 10 rec.", drift(0.01), 10, 0.01),
    ("detection", "drift 0.5%/rec., 1% noise, 20 rec.", drift(0.005), 20, 0.01),
    ("detection", "drift 0.3%/rec., 1% noise, 20 rec.", drift(0.003), 20, 0.01),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    detectors = {"steps (asv-style)": steps_detector, "trend (Mann-Kendall + Theil-Sen)": trend_detector}
    print(f"threshold {THRESHOLD:.0%}, {args.trials} histories per case; share flagged")
    print(f"| case | kind | {' | '.join(detectors)} |")
    print(f"|---|---|{'---:|' * len(detectors)}")
    for kind, name, make, n, noise in CASES:
        cells = []
        for detect in detectors.values():
            rng = np.random.default_rng(args.seed)
            flagged = sum(detect(make(rng, n, noise), THRESHOLD) for _ in range(args.trials))
            cells.append(f"{flagged / args.trials:.1%}")
        print(f"| {name} | {kind} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
