"""Is a new latency sample slower than its baseline? A rule built to be trusted on shared CI runners.

docs/regression.md says why each part is there; bench/regression_processes.py measures it.

* The compared statistic is the sample's floor (``COMPARED_PERCENTILE`` = 0): noise on a shared
  machine only adds time, so the floor is what the code itself costs. The baseline's side is its
  stored floor, not the lowest point of the sample rebuilt from its quantiles.
* Sessions are the unit of replication. Each session of a model (an onnxruntime session, a
  TensorRT context) has a speed of its own, a few percent apart on a CPU, and keeps it while it
  runs. ``record`` measures fresh sessions and the entry keeps their floors; their spread, or the
  spread between the baseline's recordings of the same model where it holds enough and it is
  larger (spread.py), is added to the threshold, so a model whose floor varies on this host is
  gated no finer than it allows; ``decide`` measures fresh sessions until two agree. A reading
  beyond the threshold that only that spread keeps within the bound is INCONCLUSIVE
  (``Doubt.WITHIN_SPREAD``), never unchanged: a slowdown of that size is there or not, and the
  gate cannot tell which.
* The raw floor decides; the host-speed probe (host_probe.py) can only put a slower one in doubt.
  The host's speed is read at the probe's floor, as the model's is. Where both sides timed it and
  the probe reads the host slower beyond ``PROBE_NOISE``, a raw change beyond the bound that the
  division by the host's speed brings within the bound (plus a margin for what the division may
  miss) is INCONCLUSIVE (``Doubt.HOST_SPEED``), never unchanged; so is one that reads as the slow
  state of a mostly slow measurement does. A probe reading the host faster never makes a floor
  read slower. The spread between recorded sessions is read with the host's speed divided out
  (``floors_at_speed_of``), as a comparison divides it.
* A baseline recorded on a contended host (``BaselineEntry.recorded_busy``) may read slow: a
  comparison with it is never unchanged (``Doubt.BASELINE_BUSY``).
* A measurement whose CPUs were contended (timing/contention.py: pressure stall, steal, run queue)
  never votes regressed: it is INCONCLUSIVE (``Doubt.BUSY``), and ``decide`` waits a bounded time
  for quiet before the next session.
* Where nothing the baseline records changed since it was recorded (model, runtime, driver, build
  options, workload, hardware class) and the backend builds alike every time, a regression can
  only be the host's speed, or something the baseline does not record: it is INCONCLUSIVE
  (``Doubt.NOTHING_CHANGED``, ``nothing_changed``), which fails under --trt-baseline=strict.
* The printed range is the judged sessions' readings (``ci_low``..``ci_high``), so a verdict never
  contradicts the interval it prints.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from pytest_trt.baselines.entry import BaselineEntry, SampleSummary
from pytest_trt.baselines.spread import Spread, relative_range, widest
from pytest_trt.timing import contention
from pytest_trt.timing.stats import percentile_label, sample_from_quantiles

COMPARED_PERCENTILE = 0.0
MAX_SESSIONS = 3  # sessions measured at most for one comparison: the first and two fresh ones
QUIET_WAIT_S = 1.0  # before a fresh session after a busy one, wait this long at most for quiet
# Before a fresh session confirms a slower reading, wait this long: a shared VM runs 15-25% slow
# for seconds at a time (docs/regression.md), a state two sessions a moment apart both fall in.
CONFIRM_GAP_S = 2.0
MIN_SAMPLES = 20  # fewer iterations than this say nothing about a floor
MIN_PROBES = 5  # fewer probe times than this say nothing about the host's speed
RECORDINGS = 3  # measurements per recorded baseline; the middle one is kept
MAX_RECORDINGS = 10  # measurements an update may take to find RECORDINGS at the usual host speed
# Sessions beyond RECORDINGS a recording takes while every one so far was timed on a busy host,
# each after a bounded wait for quiet: a host busy that long will not calm down within a recording.
BUSY_EXTRA_RECORDINGS = 2
HOST_STATE = 0.10  # probe times this far above the fastest one mark a slow host state
STATE_QUANTILE = 5.0  # percent of a recording's probe times that must be at the usual speed
# The margin trades false alarms for detection; bench/LOG.md ("Runs C and D, and a margin for the
# host speed change") shows how it was chosen.
HOST_UNCERTAINTY = 0.15  # share of a host speed change the probe may fail to divide out
# How far the probe's floor moves between measurements of an unchanged host (the probe's own
# noise). Within it the host is taken as unchanged and raw floors are compared; beyond it only the
# part past it is divided out, so the probe cannot explain away a slowdown by its own noise
# (docs/regression.md).
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
    of the compared statistic (``statistic``, the floor by default): ``change`` and ``raw_change``
    are the same reading, the one the verdict stands on. Where ``normalized`` (both sides timed
    the host probe), ``host_change`` is the probe floor's change, which can only put a slower
    reading in doubt. ``median_change`` is the medians' change, shown for context."""

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
    spread_margin: float = 0.0  # added for the spread of the baseline's sessions or recordings (``spread`` says which)
    spread: Spread | None = None  # what spread_margin was read from; None where nothing was added
    bound: float = 0.0  # threshold + margins: the smallest change this comparison can call a regression
    sessions: list[float] = field(default_factory=list)  # each judged session's change
    doubt: Doubt | None = None  # why the verdict is INCONCLUSIVE
    baseline_ms: float | None = None  # the baseline's compared statistic, for reports that draw it
    # The floors of the baseline's own model, where it was timed beside the new one (interleaved.py).
    baseline_model_floors_ms: list[float] = field(default_factory=list)

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


def _probe(baseline: BaselineEntry, new: Timed) -> tuple[float, np.ndarray] | None:
    """The baseline's stored probe floor and the new probe times, or None unless both timed
    enough of them to compare."""
    stored = baseline.host_probe_ms
    if stored is None or stored.n < MIN_PROBES or new.probe_ms is None or len(new.probe_ms) < MIN_PROBES:
        return None
    return stored.floor, np.asarray(new.probe_ms, dtype=np.float64)


def probe_floor_problem(baseline: BaselineEntry, new: Timed) -> str | None:
    """Why the baseline's host-probe floor cannot be divided out against ``new``'s (more than
    MAX_PROBE_FACTOR apart), or None. Call it before ``decide``."""
    probes = _probe(baseline, new)
    if probes is None:
        return None
    old, fresh = probes[0], float(probes[1].min())
    if old > 0 and fresh > 0 and 1.0 / MAX_PROBE_FACTOR <= fresh / old <= MAX_PROBE_FACTOR:
        return None
    apart = f"{max(fresh / old, old / fresh):.3g}x apart" if old > 0 and fresh > 0 else "one of them not > 0"
    return (
        f"host_probe_ms.quantiles.p0 is {old:.4g} ms, this run's probe floor {fresh:.4g} ms ({apart}): on one "
        "hardware class a "
        f"host speed state moves it far less than {MAX_PROBE_FACTOR:g}x, so the stored probe times are not "
        "this hardware's and dividing by them would hide a slowdown"
    )


class Doubt(str, Enum):
    """Why a comparison was not judged (its verdict is INCONCLUSIVE)."""

    FEW_SAMPLES = "few-samples"  # too few iterations to read a floor
    HOST_SPEED = "host-speed"  # slower in raw time, not once the host's speed is divided out
    BUSY = "busy"  # the CPUs were contended while it was timed
    SESSIONS_DISAGREE = "sessions-disagree"  # no two of the sessions measured gave the same verdict
    BASELINE_BUSY = "baseline-busy"  # the baseline was recorded on a contended host: it may read slow
    # Slower beyond the threshold, but within the spread between the baseline's recorded sessions:
    # a fresh session of an unchanged model reads as far, so neither verdict can be given.
    WITHIN_SPREAD = "within-spread"
    # Slower beyond the bound, but nothing the baseline records changed since it was recorded: no
    # change of the test's made it slower, the host ran slower (or something unrecorded changed).
    NOTHING_CHANGED = "nothing-changed"


SLOWER_DOUBTS = (Doubt.HOST_SPEED, Doubt.WITHIN_SPREAD)  # doubts of a reading slower than the threshold


def assess(
    baseline: BaselineEntry,
    new: Timed,
    threshold: float,
    *,
    percentile: float = COMPARED_PERCENTILE,
) -> RegressionVerdict:
    """One session's measurement against a stored baseline entry (the module docstring gives the
    rule): regressed where the raw floor is beyond the bound, the probe does not explain it by a
    slower host, and the CPUs were not contended while timing."""
    if not threshold > 0:
        raise ValueError(f"regression threshold must be a positive fraction, got {threshold!r}")
    base = baseline_sample(baseline.latency_ms)
    baseline_ms = _stored(baseline.latency_ms, base, percentile)
    samples = np.asarray(new.samples_ms, dtype=np.float64)
    label = statistic_label(percentile)
    median_change = float(np.median(samples) / np.median(base) - 1.0) if samples.size else float("nan")
    if samples.size < MIN_SAMPLES:
        return RegressionVerdict(
            Verdict.INCONCLUSIVE, median_change, float("nan"), float("nan"), threshold, False,
            f"only {samples.size} iterations measured; need {MIN_SAMPLES} to compare with the baseline", label,
            float("nan"), doubt=Doubt.FEW_SAMPLES, baseline_ms=baseline_ms,
        )
    raw = float(np.percentile(samples, percentile) / baseline_ms - 1.0)
    reading = _host_reading(baseline, new, raw)
    varied = widest(baseline)
    bound = threshold + varied.fraction
    status, doubt, host_doubt = _status(raw, reading, threshold, bound)
    busy = contended(new)
    if status is Verdict.REGRESSED and busy:
        status, doubt = Verdict.INCONCLUSIVE, Doubt.BUSY
    elif status is not Verdict.REGRESSED and baseline.recorded_busy:
        # A floor timed on a contended host reads slow: "unchanged" against it may hide a slowdown.
        status, doubt = Verdict.INCONCLUSIVE, Doubt.BASELINE_BUSY
    message = f"{label} {_percent(raw)} vs baseline (threshold {threshold * 100:g}%"
    if varied.fraction:
        message += f" + {varied.fraction * 100:.1f}% for {varied.words()}"
    message += ")" + reading.words()
    if doubt is Doubt.HOST_SPEED:
        message += host_doubt
    if doubt is Doubt.WITHIN_SPREAD:
        message += (
            f"; a slowdown this size is within the {varied.fraction * 100:.1f}% {varied.varied()} varied, so it is "
            "not told from an unchanged model's"
        )
    if doubt is Doubt.BUSY:
        message += f"; the host was busy while it was timed: {'; '.join(busy)}"
    if doubt is Doubt.BASELINE_BUSY:
        message += (
            f"; the baseline was recorded while the host was busy ({'; '.join(baseline.recorded_busy or ())}), so "
            "its floor may read slow: re-record it on a quiet host with --trt-update-baselines"
        )
    return RegressionVerdict(
        status, median_change, raw, raw, threshold, False, message, label, raw,
        normalized=reading.host is not None, raw_change=raw, host_change=reading.host, margin=reading.margin,
        probe_spread=reading.spread, spread_margin=varied.fraction, bound=bound, sessions=[raw], doubt=doubt,
        spread=varied if varied.fraction else None,
        baseline_ms=baseline_ms,
    )


def _stored(summary: SampleSummary, rebuilt: np.ndarray, percentile: float) -> float:
    """The baseline's ``percentile`` as it was stored where it was (the floor always is); the
    rebuilt pseudo-sample's otherwise. Its smallest point sits at the (0.5 / n)-th percentile,
    above the stored floor wherever the low tail is steep."""
    stored = summary.quantiles.get(percentile_label(percentile))
    return float(stored) if stored is not None else float(np.percentile(rebuilt, percentile))


def _status(raw: float, reading: _HostReading, threshold: float, bound: float) -> tuple[Verdict, Doubt | None, str]:
    """The verdict, why it is in doubt, and the words of a host-speed doubt ("" for none). The raw
    floors decide; the probe can only doubt. A slower floor on a host the probe reads slower, that
    the division by the host's speed brings within the bound (plus what the division may miss), is
    in doubt; so is one that matches the slow state a mostly slow measurement ran in; so is one
    beyond the threshold that only the spread between the baseline's sessions keeps within the
    bound (never unchanged: it may be a real slowdown). An improvement on a host the probe reads
    faster that the division takes back is unchanged. A probe reading the host faster never makes
    a floor read slower."""
    if raw > bound:
        words = reading.doubt(raw, bound)
        return (Verdict.INCONCLUSIVE, Doubt.HOST_SPEED, words) if words else (Verdict.REGRESSED, None, "")
    if raw > threshold:
        return Verdict.INCONCLUSIVE, Doubt.WITHIN_SPREAD, ""
    if raw < -bound and not (reading.faster and reading.change >= -(bound + reading.margin)):
        return Verdict.IMPROVED, None, ""
    return Verdict.UNCHANGED, None, ""


def contended(new: Timed) -> tuple[str, ...]:
    """Why the host counted as busy while ``new`` was timed (empty: quiet, or not read)."""
    window = getattr(new, "contention", None)
    return window.reasons() if window is not None else ()


@dataclass(frozen=True)
class _HostReading:
    """What the host probe says of one measurement against the baseline's."""

    change: float  # the floor's change, divided by the host's speed beyond PROBE_NOISE
    host: float | None = None  # the probe floor's change; None where the probe did not run
    spread: float | None = None  # the new probe times' STATE_QUANTILE over their floor, minus 1
    margin: float = 0.0  # what the division by the host's speed may miss

    @property
    def mixed(self) -> bool:
        """The probe's floor came from brief fast moments of a mostly slow measurement."""
        return self.spread is not None and self.spread > HOST_STATE

    @property
    def slow_state(self) -> float:
        """A mixed measurement's slow state against the baseline's probe floor (0 where not mixed)."""
        if not self.mixed or self.host is None or self.spread is None:
            return 0.0
        return (1.0 + self.host) * (1.0 + self.spread) - 1.0

    def doubt(self, raw: float, bound: float) -> str | None:
        """Why a raw floor beyond the bound may be the host's doing (words for the message), or
        None. Either the division by the probe's floor brings it within the bound plus what the
        division may miss, or the measurement was mostly slow and the floor reads as its slow state
        does: the model's floor may have missed the fast moments the probe's caught (an iteration
        longer than they last). A floor well below the slow state's caught them, as the probe's
        did, and the probe's floor holds."""
        if self.slower and self.change <= bound + self.margin:
            return (
                f"; divided by the host's speed beyond the probe's own {PROBE_NOISE:.0%} it reads {_percent(self.change)}, "
                f"within {(bound + self.margin) * 100:.1f}% (the bound plus {self.margin * 100:.1f}% for what the "
                "division may miss): the host may be what slowed"
            )
        if not self.mixed:
            return None
        state, missed = self.slow_state, HOST_UNCERTAINTY * self.slow_state
        at_state = (1.0 + raw) / (1.0 + state) - 1.0
        if abs(at_state) > bound + missed:
            return None
        return (
            f"; against the slow state most of its probe times ran in ({_percent(state)}) it reads {_percent(at_state)}, "
            f"within {(bound + missed) * 100:.1f}% either way (the bound plus {missed * 100:.1f}% for what the division "
            "may miss): the host may be what slowed"
        )

    @property
    def slower(self) -> bool:
        """The probe reads the host slower than at recording, beyond its own noise."""
        return self.host is not None and self.host > PROBE_NOISE

    @property
    def faster(self) -> bool:
        return self.host is not None and self.host < -PROBE_NOISE

    def words(self) -> str:
        text = ""
        if self.slower or self.faster:
            pace = "slower" if self.slower else "faster"
            text += f"; the host probe ran {abs(self.host or 0.0) * 100:.0f}% {pace} than when the baseline was recorded"
        if self.mixed and self.spread is not None:
            text += (
                f"; the probe floor came from brief fast moments ({100 - STATE_QUANTILE:g}% of the probe times "
                f"ran {self.spread * 100:.0f}% or more slower)"
            )
        return text


def _host_reading(baseline: BaselineEntry, new: Timed, raw: float) -> _HostReading:
    probes = _probe(baseline, new)
    if probes is None:
        return _HostReading(raw)
    base_floor, new_probe = probes
    host = float(new_probe.min() / base_floor - 1.0)
    spread = float(np.percentile(new_probe, STATE_QUANTILE) / new_probe.min() - 1.0)
    change = (1.0 + raw) / _divided_out(host) - 1.0
    margin = HOST_UNCERTAINTY * abs(host) if abs(host) > PROBE_NOISE else 0.0
    return _HostReading(change, host, spread, margin)


def _divided_out(host: float) -> float:
    """The factor a floor is divided by for a probe that reads the host ``host`` slower (a
    fraction; negative: faster): the part of the change beyond PROBE_NOISE, continuous at it."""
    if abs(host) <= PROBE_NOISE:
        return 1.0
    return (1.0 + host) / (1.0 + math.copysign(PROBE_NOISE, host))


def probe_floor(timed: Timed) -> float | None:
    """The host's speed during ``timed`` as a comparison reads it: the floor of its probe times,
    the statistic the model is compared by, so that both come from the host's fastest moments."""
    probes = timed.probe_ms or ()
    return float(np.min(probes)) if len(probes) >= MIN_PROBES else None


def normalized_floor(timed: Timed) -> float:
    """The floor in probe units where the probe ran, else in ms: what orders recordings."""
    floor = float(np.min(timed.samples_ms))
    probe = probe_floor(timed)
    return floor / probe if probe is not None else floor


def floors_at_speed_of(kept: Timed, measurements: Sequence[Timed]) -> list[float]:
    """Each measurement's floor in ms at the host speed ``kept`` was timed at: divided by how much
    slower or faster the probe read it than ``kept``, beyond PROBE_NOISE, as ``assess`` divides a
    comparison (``_divided_out``); the spread between sessions that is left is the sessions' own.
    Raw where either did not probe, or where the probe floors are more than HOST_STATE apart: a
    different host state, in which the model's and the probe's floors need not come from the
    same moments."""
    at = probe_floor(kept)
    floors = []
    for m in measurements:
        floor, probe = float(np.min(m.samples_ms)), probe_floor(m)
        if at is None or probe is None or abs(math.log(probe / at)) > math.log1p(HOST_STATE):
            floors.append(floor)
        else:
            floors.append(floor / _divided_out(probe / at - 1.0))
    return floors


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
    floors_ms: list[float] = field(default_factory=list)  # the sessions' floors (at least two where taken)

    @property
    def spread(self) -> float:
        """The used sessions' floors: (max - min) / median, 0 for one."""
        return relative_range(self.floors_ms)

    @property
    def busy(self) -> tuple[str, ...]:
        return contended(self.kept)

    @property
    def note(self) -> str:
        kept = "one session" if self.used == 1 else f"middle of {self.used} sessions"
        note = f"baseline recorded ({kept}"
        if self.used > 1:
            note += f", their floors {self.spread * 100:.1f}% apart"
        if self.busy:
            note += f"; recorded while the host was busy ({'; '.join(self.busy)}): record it again on a quiet host"
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
    """A baseline from ``first`` and more measurements (``remeasure``: each in a fresh session, so
    that the spread between sessions is recorded with the baseline): measure until RECORDINGS were
    taken at the usual host speed (``at_usual_speed``; ``fastest_probe_ms``, the fastest probe this
    process has timed, tells a host that runs slow for all of them) on uncontended CPUs, at most
    MAX_RECORDINGS in all, and keep the middle of those. If none was at the usual speed, the
    middle of all is kept, probe times and all: the division by the probe is then off by a few
    percent (the margin in ``assess`` covers that), where raw floors would be off by the whole
    slow state. Where the filters leave one session, every session taken gives the spread: a
    baseline is never kept without one."""
    taken = [first]
    while _more_needed(taken, fastest_probe_ms):
        if contended(taken[-1]):
            contention.wait_for_quiet(QUIET_WAIT_S)
        taken.append(remeasure())
    usual = at_usual_speed(taken, fastest_probe_ms)
    used = [m for m in usual if not contended(m)] or usual or taken
    kept = middle_recording(used)
    floors = floors_at_speed_of(kept, used if len(used) >= 2 else taken)
    return Recording(kept, len(used), len(taken), host_slow=not usual, floors_ms=floors)


def _more_needed(taken: Sequence[Timed], fastest_probe_ms: float) -> bool:
    """Whether ``record`` measures another session."""
    usual = at_usual_speed(taken, fastest_probe_ms)
    if len(taken) >= MAX_RECORDINGS or len([m for m in usual if not contended(m)]) >= RECORDINGS:
        return False
    return not (len(usual) >= RECORDINGS and len(taken) >= RECORDINGS + BUSY_EXTRA_RECORDINGS)


@dataclass
class Measurement:
    """A plain ``Timed``: latency samples and, where the probe ran, its times."""

    samples_ms: list[float]
    probe_ms: list[float] | None = None


def decide(
    baseline: BaselineEntry,
    first: Timed,
    fresh_session: Callable[[], Timed],
    threshold: float,
    *,
    percentile: float = COMPARED_PERCENTILE,
) -> RegressionVerdict:
    """``assess`` the first measurement; where it is not plainly unchanged or improved (regressed,
    or in doubt), measure fresh sessions (``fresh_session()``: a new runner of the same engine)
    until two sessions agree, at most MAX_SESSIONS in all. Each session of a model has a speed of
    its own, so a verdict stands only when two sessions give it: an odd session, or a moment of
    a busy host, is outvoted, while a real slowdown is in every session. Before a fresh session
    after a busy one, the host is given up to QUIET_WAIT_S to calm down; after a slower one,
    CONFIRM_GAP_S passes first, so that the two do not share one slow moment of the host."""
    verdicts = [assess(baseline, first, threshold, percentile=percentile)]
    while not _settled(verdicts) and len(verdicts) < MAX_SESSIONS:
        if verdicts[-1].doubt is Doubt.BUSY:
            contention.wait_for_quiet(QUIET_WAIT_S)
        elif verdicts[-1].status is Verdict.REGRESSED or verdicts[-1].doubt in SLOWER_DOUBTS:
            time.sleep(CONFIRM_GAP_S)
        verdicts.append(assess(baseline, fresh_session(), threshold, percentile=percentile))
    return _combined(verdicts)


def nothing_changed(verdict: RegressionVerdict) -> RegressionVerdict:
    """``verdict`` for a test where nothing the baseline records changed since it was recorded (and
    the backend builds alike every time): a regression is INCONCLUSIVE (``Doubt.NOTHING_CHANGED``).
    Its model, engine and settings are those the baseline measured, so the slower floor is the
    host's, or the doing of something no entry records (system libraries, the kernel, clocks);
    either way not a change the test's commit made. Other verdicts stand."""
    if verdict.status is not Verdict.REGRESSED:
        return verdict
    message = (
        f"{verdict.message}; nothing the baseline records changed since it was recorded (model, runtime, "
        "driver, build options, workload, hardware class), so this host ran slower than when it was "
        "recorded, or something the baseline does not record changed (system libraries, the kernel, clocks): "
        "if it persists on a quiet host, find what changed, or record the baseline again"
    )
    return dataclasses.replace(verdict, status=Verdict.INCONCLUSIVE, doubt=Doubt.NOTHING_CHANGED, message=message)


def _settled(verdicts: Sequence[RegressionVerdict]) -> bool:
    """One plainly unchanged or improved session settles it (the floor only reads high on a
    noisy host, never low); else two sessions must agree."""
    if len(verdicts) == 1:
        # Too few iterations to compare: a fresh session, measured with the same settings, has as few.
        return verdicts[0].status in (Verdict.UNCHANGED, Verdict.IMPROVED) or verdicts[0].doubt is Doubt.FEW_SAMPLES
    statuses = [v.status for v in verdicts]
    return any(statuses.count(s) >= 2 for s in statuses)


def _combined(verdicts: Sequence[RegressionVerdict]) -> RegressionVerdict:
    """The verdict two sessions agree on (inconclusive where no two do), with every session's
    reading, so the printed range is the one the verdict was read from."""
    if len(verdicts) == 1:
        return verdicts[0]
    statuses = [v.status for v in verdicts]
    agreed = next((s for s in statuses if statuses.count(s) >= 2), None)
    readings = [v.change for v in verdicts]
    shown = ", ".join(_percent(r) for r in readings)
    if agreed is None:
        kept = dataclasses.replace(verdicts[-1], status=Verdict.INCONCLUSIVE, doubt=Doubt.SESSIONS_DISAGREE)
        message = kept.message + f"; {len(verdicts)} sessions read {shown} and no two agree"
    else:
        # Of the sessions that agree, the mildest reading is shown: it is the one every other exceeds.
        kept = min((v for v in verdicts if v.status is agreed), key=lambda v: abs(v.change))
        message = kept.message + f"; {len(verdicts)} sessions read {shown}"
        if agreed is Verdict.REGRESSED:
            message += ", two agree"
        elif Verdict.REGRESSED in statuses:
            message += ", not confirmed by a fresh session"
    return dataclasses.replace(
        kept, remeasured=True, message=message, sessions=readings, ci_low=min(readings), ci_high=max(readings),
    )

