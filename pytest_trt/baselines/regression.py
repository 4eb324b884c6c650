"""Is a new latency sample slower than its baseline? A two-sample test built to be trusted in CI.

The method (docs/regression.md says why, bench/regression_power.py measures it):

* The compared statistic is the sample's floor, its minimum (``COMPARED_PERCENTILE`` = 0). Noise
  on a shared machine only ever adds time (another tenant, a descheduled thread, a slow phase of
  the host), so the floor is what the code itself costs; within one host speed state the median
  moves by 15% and more between runs on a 2-core cloud VM while the floor stays within about 2%.
* Where both sides timed the host-speed probe (host_probe.py), each floor is first divided by
  the 25th percentile of its probe times (``PROBE_LEVEL``): a host that runs 35% slower for a
  while (another tenant on the core) slows the probe too, and that is divided out. The model and
  the probe do not slow down by quite the same factor, so:
  - baselines are recorded at the host's usual speed: ``record`` keeps the middle one of
    ``RECORDINGS`` measurements that spent a real share of their time (``STATE_QUANTILE``
    percent of their probe times) within ``HOST_STATE`` of the fastest probe this process has
    timed, taking more (up to ``MAX_RECORDINGS``) while the host runs slow;
  - a comparison across a host speed change adds ``HOST_UNCERTAINTY`` of that change to the
    threshold, the share of it the division may have got wrong;
  - a measurement whose probe floor came from brief fast moments (fewer than ``STATE_QUANTILE``
    percent of its probe times within ``HOST_STATE`` of that floor) adds ``MIXED_UNCERTAINTY``
    of that spread: a model iteration, longer than a probe, catches fewer of those moments, so
    its floor reads high.
* A measurement looks regressed when its floor is slower than the baseline's by more than the
  threshold (plus that margin); improved is the mirror image, reported and never failed.
* Significance comes from replication, at the level where the noise lives: ``decide`` re-measures
  once when the first measurement is slower by more than the threshold (or the host ran slow),
  and the test fails only if the re-measurement is beyond it too (``_kept`` says which of the
  two stands), so a measurement taken in an odd moment of the host (a burst, a speed state the
  probe tracks badly) is outvoted by the other, while a real slowdown, present in both, stays.
* The 95% bootstrap interval of the ratio (``stats.bootstrap_ratio_ci`` on the new sample, the
  sample rebuilt from the baseline's stored quantiles, and both probe samples) is reported but
  does not gate: iterations are not independent draws (the host's state runs through them), and
  the bootstrap of a minimum is not consistent even when they are. docs/regression.md shows what
  it did as a gate: intervals of -10%..+41% around clear +19% regressions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from pytest_trt.baselines.entry import BaselineEntry, SampleSummary
from pytest_trt.timing import host_probe
from pytest_trt.timing.stats import bootstrap_ratio_ci, percentile_label, sample_from_quantiles

COMPARED_PERCENTILE = 0.0
CONFIDENCE = 0.95
RESAMPLES = 4000
MIN_SAMPLES = 20  # fewer iterations than this say nothing about a floor
MIN_PROBES = 5  # fewer probe times than this say nothing about the host's speed
PROBE_LEVEL = host_probe.LEVEL_QUANTILE  # the percentile of probe times the floors are divided by
RECORDINGS = 3  # measurements per recorded baseline; the middle one is kept
MAX_RECORDINGS = 10  # measurements an update may take to find RECORDINGS at the usual host speed
HOST_STATE = 0.10  # probe times this far above the fastest one mark a slow host state
STATE_QUANTILE = 5.0  # percent of a recording's probe times that must be at the usual speed
# Both margins trade false alarms for detection; docs/regression.md ("How large the margins are")
# shows how these two were chosen and what bench runs I and J measured with them.
HOST_UNCERTAINTY = 0.15  # share of a host speed change the probe may fail to divide out
MIXED_UNCERTAINTY = 0.03  # share of a mixed measurement's probe spread its floor may read high
# How far the probe's level moves between measurements of an unchanged host (a transient load that
# slows the probe and not the model's floor, the probe's own noise). Within it the host is taken as
# unchanged and raw floors are compared; beyond it only the part past it is divided out, so the
# probe cannot explain away a slowdown by its own noise (docs/regression.md).
PROBE_NOISE = 0.02
# Host speed states move the probe floor by 30-55% (docs/regression.md); a baseline's probe floor
# this many times off the new one, on the same hardware class, is a broken entry, not a state,
# and dividing by it would hide any slowdown (a floor near 0 reads as "host ran inf% slower").
MAX_PROBE_FACTOR = 3.0


class Verdict(str, Enum):
    """The outcome of comparing a measurement with its baseline."""

    REGRESSED = "regressed"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"
    INCONCLUSIVE = "inconclusive"  # too few iterations to compare


class Timed(Protocol):
    """One measurement as compared here (measure.PerfResult is one)."""

    @property
    def samples_ms(self) -> Sequence[float]: ...

    @property
    def probe_ms(self) -> Sequence[float] | None: ...


TimedT = TypeVar("TimedT", bound=Timed)


@dataclass
class RegressionVerdict:
    """The comparison of one sample with its baseline. Changes are fractions (0.142 = +14.2%)
    of the compared statistic (``statistic``, the floor by default), divided by the host's speed
    when ``normalized`` (the probe level's change beyond PROBE_NOISE); then ``host_change`` is the
    probe level's change and ``raw_change`` the statistic's change before dividing.
    ``median_change`` is the medians' change, shown for context."""

    status: Verdict
    median_change: float
    ci_low: float
    ci_high: float
    threshold: float
    remeasured: bool
    message: str
    statistic: str = "min"
    change: float = 0.0
    normalized: bool = False
    raw_change: float = 0.0
    host_change: float | None = None
    margin: float = 0.0  # added to the threshold for what dividing by the probe may miss
    probe_spread: float | None = None  # the new probe times' STATE_QUANTILE over their floor, minus 1

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


def statistic_label(q: float) -> str:
    return {0.0: "min", 50.0: "median", 100.0: "max"}.get(float(q), percentile_label(q))


def baseline_sample(summary: SampleSummary) -> np.ndarray:
    """The pseudo-sample rebuilt from a stored summary's quantiles and n (an entry's latency_ms or
    host_probe_ms)."""
    try:
        pairs = summary.points()
    except ValueError as exc:
        raise ValueError(f"baseline summary has no usable quantiles ({exc})") from None
    if not pairs or summary.n < 1:
        raise ValueError(f"baseline summary has no usable quantiles (n {summary.n}, {len(pairs)} quantiles)")
    return sample_from_quantiles([v for _, v in pairs], summary.n, [p for p, _ in pairs])


def _percent(fraction: float) -> str:
    return f"{fraction * 100:+.1f}%"


def _probe(baseline: BaselineEntry, new: Timed) -> tuple[np.ndarray, np.ndarray] | None:
    """Both sides' probe samples, or None unless both timed enough of them to compare."""
    if baseline.host_probe_ms is None or new.probe_ms is None or len(new.probe_ms) < MIN_PROBES:
        return None
    base = baseline_sample(baseline.host_probe_ms)
    return (base, np.asarray(new.probe_ms, dtype=np.float64)) if base.size >= MIN_PROBES else None


def probe_floor_problem(baseline: BaselineEntry, new: Timed) -> str | None:
    """Why the baseline's host-probe floor cannot be divided out against ``new``'s (more than
    MAX_PROBE_FACTOR apart), or None. Call it before ``decide``."""
    probes = _probe(baseline, new)
    if probes is None or baseline.host_probe_ms is None:
        return None
    old, fresh = baseline.host_probe_ms.floor, float(probes[1].min())
    if old > 0 and fresh > 0 and 1.0 / MAX_PROBE_FACTOR <= fresh / old <= MAX_PROBE_FACTOR:
        return None
    apart = f"{max(fresh / old, old / fresh):.3g}x apart" if old > 0 and fresh > 0 else "one of them not > 0"
    return (
        f"host_probe_ms.quantiles.p0 is {old:.4g} ms, this run's probe floor {fresh:.4g} ms ({apart}): on one "
        "hardware class a "
        f"host speed state moves it far less than {MAX_PROBE_FACTOR:g}x, so the stored probe times are not "
        "this hardware's and dividing by them would hide a slowdown"
    )


def assess(
    baseline: BaselineEntry,
    new: Timed,
    threshold: float,
    *,
    percentile: float = COMPARED_PERCENTILE,
) -> RegressionVerdict:
    """Compare one measurement with a stored baseline entry (see the module docstring for the rule:
    a "regressed" here only asks for the re-measurement that ``decide`` takes)."""
    if not threshold > 0:
        raise ValueError(f"regression threshold must be a positive fraction, got {threshold!r}")
    base = baseline_sample(baseline.latency_ms)
    samples = np.asarray(new.samples_ms, dtype=np.float64)
    label = statistic_label(percentile)
    median_change = float(np.median(samples) / np.median(base) - 1.0) if samples.size else float("nan")
    if samples.size < MIN_SAMPLES:
        return RegressionVerdict(
            Verdict.INCONCLUSIVE, median_change, float("nan"), float("nan"), threshold, False,
            f"only {samples.size} iterations measured; need {MIN_SAMPLES} to compare with the baseline", label,
            float("nan"),
        )
    raw = float(np.percentile(samples, percentile) / np.percentile(base, percentile) - 1.0)
    probes = _probe(baseline, new)
    numerators, denominators = [(samples, percentile)], [(base, percentile)]
    change, host, spread = raw, None, None
    if probes is not None:
        base_probe, new_probe = probes
        host = float(np.percentile(new_probe, PROBE_LEVEL) / np.percentile(base_probe, PROBE_LEVEL) - 1.0)
        spread = float(np.percentile(new_probe, STATE_QUANTILE) / new_probe.min() - 1.0)
        change = (1.0 + raw) / _divided_out(host) - 1.0
        if abs(host) > PROBE_NOISE:
            # The probe levels are resampled too: they carry noise of their own.
            numerators.append((base_probe, PROBE_LEVEL))
            denominators.append((new_probe, PROBE_LEVEL))
    low, high = bootstrap_ratio_ci(numerators, denominators, CONFIDENCE, RESAMPLES)
    # Divided by the whole probe ratio, the interval gets back the part within PROBE_NOISE.
    within_noise = (1.0 + math.copysign(PROBE_NOISE, host)) if host is not None and abs(host) > PROBE_NOISE else 1.0
    low, high = low * within_noise - 1.0, high * within_noise - 1.0
    host_margin = HOST_UNCERTAINTY * abs(host) if host is not None and abs(host) > PROBE_NOISE else 0.0
    mixed_margin = MIXED_UNCERTAINTY * spread if spread is not None and spread > HOST_STATE else 0.0
    margin = host_margin + mixed_margin
    bound = threshold + margin
    status = Verdict.REGRESSED if change > bound else Verdict.IMPROVED if change < -bound else Verdict.UNCHANGED
    message = (
        f"{label} {_percent(change)} vs baseline ({CONFIDENCE:.0%} CI {_percent(low)}..{_percent(high)}, "
        f"threshold {threshold * 100:g}%)"
    )
    if host is not None and abs(host) > PROBE_NOISE:
        pace = "slower" if host > 0 else "faster"
        message += (
            f"; the host ran {abs(host) * 100:.0f}% {pace} than when the baseline was recorded "
            f"(host probe), divided out beyond the probe's own {PROBE_NOISE:.0%}: raw {label} {_percent(raw)}, "
            f"and {host_margin * 100:.1f}% added to the threshold for what the division may miss"
        )
    if mixed_margin and spread is not None:
        message += (
            f"; the probe floor came from brief fast moments ({100 - STATE_QUANTILE:g}% of the probe times "
            f"ran {spread * 100:.0f}% or more slower), so {mixed_margin * 100:.1f}% added to the threshold"
        )
    return RegressionVerdict(
        status, median_change, low, high, threshold, False, message, label, change,
        normalized=host is not None, raw_change=raw, host_change=host, margin=margin, probe_spread=spread,
    )


def _divided_out(host: float) -> float:
    """The factor a floor is divided by for a probe that reads the host ``host`` slower (a
    fraction; negative: faster): the part of the change beyond PROBE_NOISE, continuous at it."""
    if abs(host) <= PROBE_NOISE:
        return 1.0
    return (1.0 + host) / (1.0 + math.copysign(PROBE_NOISE, host))


def probe_floor(timed: Timed) -> float | None:
    probes = timed.probe_ms or ()
    return float(np.min(probes)) if len(probes) >= MIN_PROBES else None


def probe_level(timed: Timed) -> float | None:
    """The host's speed during ``timed`` as the comparison reads it (PROBE_LEVEL of its probe times)."""
    probes = timed.probe_ms or ()
    return float(np.percentile(probes, PROBE_LEVEL)) if len(probes) >= MIN_PROBES else None


def normalized_floor(timed: Timed) -> float:
    """The floor in probe units where the probe ran, else in ms: what orders recordings."""
    floor = float(np.min(timed.samples_ms))
    probe = probe_level(timed)
    return floor / probe if probe is not None else floor


def middle_recording(measurements: Sequence[TimedT]) -> TimedT:
    """The measurement whose (probe-normalized) floor is the median (the lower middle of an even
    number)."""
    if not measurements:
        raise ValueError("no measurement to record")
    ranked = sorted(measurements, key=normalized_floor)
    return ranked[(len(ranked) - 1) // 2]


def at_usual_speed(measurements: Sequence[TimedT], fastest_probe_ms: float = float("inf")) -> list[TimedT]:
    """The measurements not taken in a slow host state: those without probe times, and those
    with at least STATE_QUANTILE percent of their probe times within HOST_STATE of the fastest
    probe (``fastest_probe_ms`` or their own). A floor set by a few fast moments of a mostly
    slow measurement does not count: there the model's and the probe's floors need not match."""
    floors = [probe_floor(m) for m in measurements]
    fastest = min([fastest_probe_ms, *(f for f in floors if f is not None)])
    return [
        m for m, f in zip(measurements, floors, strict=True)
        if f is None or np.percentile(m.probe_ms or (), STATE_QUANTILE) <= (1.0 + HOST_STATE) * fastest
    ]


@dataclass
class Recording(Generic[TimedT]):
    """What ``record`` keeps: the middle of ``used`` measurements out of ``taken``."""

    kept: TimedT
    used: int
    taken: int
    host_slow: bool = False  # none was at the usual speed: the middle of all was kept

    @property
    def note(self) -> str:
        kept = "one measurement" if self.used == 1 else f"middle of {self.used} measurements"
        note = f"baseline recorded ({kept}"
        if self.host_slow:
            note += (
                ", all taken while the host ran slower than the fastest probe of this test run: later runs "
                "that meet the usual speed add the host-speed margin; record it again on a quieter host"
            )
        elif self.taken > self.used:
            note += f"; {self.taken - self.used} more taken while the host ran slow, set aside"
        return note + ")"


def record(
    first: TimedT, remeasure: Callable[[], TimedT], fastest_probe_ms: float = float("inf")
) -> Recording[TimedT]:
    """A baseline from ``first`` and more measurements: measure until RECORDINGS were taken at the
    usual host speed (``at_usual_speed``; ``fastest_probe_ms``, the fastest probe this process
    has timed, tells a host that runs slow for all of them), at most MAX_RECORDINGS in all, and
    keep the middle of those. If none was at the usual speed, the middle of all is kept, probe
    times and all: the division by the probe is then off by a few percent (the margin in
    ``assess`` covers that), where raw floors would be off by the whole slow state."""
    taken = [first]
    while len(at_usual_speed(taken, fastest_probe_ms)) < RECORDINGS and len(taken) < MAX_RECORDINGS:
        taken.append(remeasure())
    used = at_usual_speed(taken, fastest_probe_ms)
    if used:
        return Recording(middle_recording(used), len(used), len(taken))
    return Recording(middle_recording(taken), len(taken), len(taken), host_slow=True)


@dataclass
class Measurement:
    """A plain ``Timed``: latency samples and, where the probe ran, its times."""

    samples_ms: list[float]
    probe_ms: list[float] | None = None


def decide(
    baseline: BaselineEntry,
    first: Timed,
    remeasure: Callable[[], Timed],
    threshold: float,
    *,
    percentile: float = COMPARED_PERCENTILE,
) -> RegressionVerdict:
    """``assess``; when that finds the test slower by more than the threshold (regressed, or
    within the host-speed margin), or the host running more than HOST_STATE slower than at
    recording (a state whose wide margin could hide a slowdown), call ``remeasure()`` once and
    keep one of the two verdicts (``_kept``). A floor measured in an odd moment of the host (a
    speed state the probe does not track well, a burst) is then replaced by the other
    measurement's, while a real slowdown is in both and stays. Each is judged on its own rather
    than pooled: a pooled probe level across two host states would be neither state's."""
    verdict = assess(baseline, first, threshold, percentile=percentile)
    slower = verdict.change > threshold
    host_change = verdict.host_change or 0.0
    host_slow = host_change > HOST_STATE
    if not (slower or host_slow):
        return verdict
    again = assess(baseline, remeasure(), threshold, percentile=percentile)
    kept = _kept(verdict, again)
    kept.remeasured = True
    other = verdict if kept is again else again
    if not slower:
        why = f"re-measured as the host ran {host_change * 100:.0f}% slow"
    elif kept.status is Verdict.REGRESSED:
        why = "confirmed by a re-measurement"
    else:
        why = "not confirmed by a re-measurement"
    which = "first" if kept is verdict else "second"
    kept.message += f"; {why}, {which} kept (the other: {other.statistic} {_percent(other.change)})"
    return kept


def _kept(first: RegressionVerdict, second: RegressionVerdict) -> RegressionVerdict:
    """Which of two verdicts on one test stands. Where one was measured at a host speed nearer the
    recording's by more than HOST_STATE, that one: the division by the probe is good between
    like states only, and the other's margin only approximates its error. Otherwise the one less
    far beyond its threshold, so that an odd moment in one measurement cannot fail the test."""
    first_host, second_host = abs(first.host_change or 0.0), abs(second.host_change or 0.0)
    if abs(first_host - second_host) > HOST_STATE:
        return first if first_host < second_host else second
    beyond = [v.change - v.threshold - v.margin for v in (first, second)]
    return second if beyond[1] <= beyond[0] else first
