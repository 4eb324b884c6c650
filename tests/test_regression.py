"""The regression test on synthetic samples: verdicts, message format, re-measurement, drift."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from test_baseline import make_record

from pytest_trt.baselines import regression
from pytest_trt.baselines.comparability import accuracy_drift
from pytest_trt.baselines.entry import BaselineEntry, SampleSummary, entry_from_measurement
from pytest_trt.baselines.regression import (
    BUSY_EXTRA_RECORDINGS,
    HOST_UNCERTAINTY,
    MAX_RECORDINGS,
    PROBE_NOISE,
    RECORDINGS,
    Doubt,
    Measurement,
    Verdict,
    assess,
    at_usual_speed,
    baseline_sample,
    decide,
    floors_at_speed_of,
    middle_recording,
    normalized_floor,
    nothing_changed,
    record,
)
from pytest_trt.timing import contention
from pytest_trt.timing.contention import Contention

MESSAGE = re.compile(r"min [+-]\d+\.\d% vs baseline \(threshold \d+%\)")


def skewed(scale: float, seed: int, n: int) -> list[float]:
    """Times with a hard floor at ``scale`` and right-skewed noise above it, like real ones."""
    return list(scale * (1.0 + np.random.default_rng(seed).gamma(2.0, 0.05, n)))


def sample(scale: float, seed: int, n: int = 2000, host: float | None = None) -> Measurement:
    """A measurement; with ``host``, the host ran that much slower (model and probe alike: the
    probe's times are the same draw, scaled)."""
    if host is None:
        return Measurement(skewed(scale, seed, n))
    return Measurement(skewed(scale * host, seed, n), skewed(0.1 * host, 100, 400))


@pytest.fixture
def baseline() -> BaselineEntry:
    return entry_from_measurement(make_record(sample(1.0, seed=0).samples_ms), None)


@pytest.fixture
def probed_baseline() -> BaselineEntry:
    recorded = sample(1.0, seed=0, host=1.0)
    record = make_record(recorded.samples_ms)
    record = dataclasses.replace(record, perf=dataclasses.replace(record.perf, probe_ms=recorded.probe_ms))
    return entry_from_measurement(record, None)


def test_baseline_sample_rebuilds_the_stored_distribution(baseline):
    rebuilt = baseline_sample(baseline.latency_ms)
    assert rebuilt.size == 2000
    assert np.median(rebuilt) == pytest.approx(baseline.latency_ms.quantiles["p50"], rel=1e-3)
    assert rebuilt.min() == pytest.approx(baseline.latency_ms.floor, rel=1e-3)
    for broken in (SampleSummary(5, {}), SampleSummary(5, {"px": 1.0}), SampleSummary(0, {"p0": 1.0, "p50": 2.0})):
        with pytest.raises(ValueError, match="baseline summary has no usable quantiles"):
            baseline_sample(broken)


def test_a_clear_regression_fails_with_the_documented_message(baseline):
    verdict = assess(baseline, sample(1.2, seed=1), threshold=0.10)
    assert verdict.status == "regressed"
    assert verdict.change == pytest.approx(0.2, abs=0.01)
    # One session: the printed range is its one reading, so the verdict cannot contradict it.
    assert verdict.ci_low == verdict.change == verdict.ci_high and verdict.sessions == [verdict.change]
    assert MESSAGE.fullmatch(verdict.message), verdict.message
    assert verdict.message.startswith("min +20.0% vs baseline") or verdict.message.startswith("min +19.")
    assert verdict.message.endswith("threshold 10%)")
    assert verdict.bound == pytest.approx(0.10) and verdict.doubt is None


def test_nothing_changed_leaves_a_regression_inconclusive_and_every_other_verdict_as_it_was(baseline):
    regressed = assess(baseline, sample(1.2, seed=1), threshold=0.10)
    doubted = nothing_changed(regressed)
    assert doubted.status is Verdict.INCONCLUSIVE and doubted.doubt is Doubt.NOTHING_CHANGED
    assert doubted.message.startswith(regressed.message + "; nothing the baseline records changed since it was recorded")
    assert (doubted.change, doubted.bound, doubted.sessions) == (regressed.change, regressed.bound, regressed.sessions)
    for other in (sample(1.0, seed=2), sample(0.5, seed=3), sample(1.0, seed=4, n=5)):
        verdict = assess(baseline, other, threshold=0.10)
        assert verdict.status is not Verdict.REGRESSED and nothing_changed(verdict) == verdict


def test_the_same_distribution_is_unchanged(baseline):
    for seed in range(1, 6):
        verdict = assess(baseline, sample(1.0, seed=seed), threshold=0.05)
        assert verdict.status == "unchanged", verdict.message
        assert abs(verdict.change) < 0.01


def test_a_large_improvement_is_reported(baseline):
    verdict = assess(baseline, sample(0.8, seed=1), threshold=0.10)
    assert verdict.status == "improved"
    assert verdict.ci_high < 0 and verdict.median_change == pytest.approx(-0.2, abs=0.02)


def test_a_change_below_the_threshold_is_unchanged(baseline):
    assert assess(baseline, sample(1.05, seed=1), threshold=0.10).status == "unchanged"
    assert assess(baseline, sample(1.05, seed=1), threshold=0.03).status == "regressed"


def test_too_few_iterations_are_inconclusive(baseline):
    verdict = assess(baseline, sample(2.0, seed=1, n=5), threshold=0.10)
    assert verdict.status == "inconclusive" and "only 5 iterations" in verdict.message


def test_threshold_must_be_positive(baseline):
    with pytest.raises(ValueError, match="threshold must be a positive fraction"):
        assess(baseline, sample(1.0, seed=1), threshold=0)


def test_the_median_can_be_compared_instead(baseline):
    verdict = assess(baseline, sample(1.2, seed=1), threshold=0.10, percentile=50.0)
    assert verdict.statistic == "median" and verdict.message.startswith("median +")


class Remeasure:
    def __init__(self, *samples: Measurement) -> None:
        self.samples = list(samples)
        self.calls = 0

    def __call__(self) -> Measurement:
        self.calls += 1
        return self.samples.pop(0)


def test_decide_does_not_remeasure_an_unchanged_test(baseline):
    remeasure = Remeasure(sample(1.0, seed=9))
    verdict = decide(baseline, sample(1.0, seed=1), remeasure, threshold=0.10)
    assert verdict.status == "unchanged" and not verdict.remeasured and remeasure.calls == 0


def test_decide_does_not_remeasure_too_few_iterations(baseline):
    remeasure = Remeasure(sample(2.0, seed=2, n=5))
    verdict = decide(baseline, sample(2.0, seed=1, n=5), remeasure, threshold=0.10)
    assert verdict.status == "inconclusive" and remeasure.calls == 0 and not verdict.remeasured
    assert "nan" not in verdict.message


def test_decide_fails_when_a_fresh_session_agrees(baseline):
    remeasure = Remeasure(sample(1.2, seed=2), sample(1.2, seed=3))
    verdict = decide(baseline, sample(1.2, seed=1), remeasure, threshold=0.10)
    assert remeasure.calls == 1
    assert verdict.status == "regressed" and verdict.remeasured
    assert MESSAGE.match(verdict.message), verdict.message
    assert re.search(r"; 2 sessions read \+\d+\.\d%, \+\d+\.\d%, two agree$", verdict.message), verdict.message
    # The printed range is the sessions' readings, and every one of them is beyond the bound.
    assert verdict.ci_low == min(verdict.sessions) > verdict.bound and verdict.ci_high == max(verdict.sessions)


def test_decide_passes_a_burst_that_fresh_sessions_do_not_confirm(baseline):
    remeasure = Remeasure(sample(1.0, seed=2), sample(1.0, seed=3))
    verdict = decide(baseline, sample(1.3, seed=1), remeasure, threshold=0.10)
    assert remeasure.calls == 2  # regressed, then unchanged: a third session breaks the tie
    assert verdict.status == "unchanged" and verdict.remeasured
    assert verdict.message.endswith(", not confirmed by a fresh session"), verdict.message
    assert verdict.as_dict()["remeasured"] is True


def test_sessions_that_never_agree_are_inconclusive(probed_baseline):
    remeasure = Remeasure(sample(1.0, seed=2, host=1.0), sample(1.0, seed=3, host=1.35))
    verdict = decide(probed_baseline, sample(1.2, seed=5, host=1.0), remeasure, threshold=0.05)
    # regressed, unchanged, and a host 35% slower whose raw floor is beyond the bound: no two agree
    assert remeasure.calls == 2 and verdict.status == "inconclusive"
    assert verdict.doubt is Doubt.SESSIONS_DISAGREE and "no two agree" in verdict.message


def test_a_slower_host_is_divided_out_by_the_probe(probed_baseline):
    # The whole host 35% slower (another tenant on the core): the raw floor says +35%, and the
    # probe, slowed alike, takes it back out, all but the PROBE_NOISE it may read on its own.
    # A raw floor that much slower is not called unchanged on the probe's word: it is in doubt.
    verdict = assess(probed_baseline, sample(1.0, seed=1, host=1.35), threshold=0.05)
    assert verdict.normalized and verdict.status == "inconclusive", verdict.message
    assert verdict.doubt is Doubt.HOST_SPEED
    # The verdict's change is the raw floor's: the division only doubts it.
    assert verdict.change == verdict.raw_change == pytest.approx(0.35, abs=0.01)
    assert verdict.host_change == pytest.approx(0.35, abs=0.01)
    assert re.search(r"^min \+3[45]\.\d% vs baseline \(threshold 5%\); the host probe ran 35% slower than when the "
                     r"baseline was recorded; divided by the host's speed beyond the probe's own 2% it reads \+[0-3]\.\d%, "
                     r"within 10\.\d% \(the bound plus 5\.\d% for what the division may miss\): the host may be what "
                     r"slowed$", verdict.message), verdict.message
    assert verdict.margin == pytest.approx(HOST_UNCERTAINTY * 0.35, abs=0.005)


def test_a_real_slowdown_stays_visible_on_a_slower_host(probed_baseline):
    # Divided by the host's speed it still reads +27.5%, beyond the bound and the host margin.
    verdict = assess(probed_baseline, sample(1.25, seed=1, host=1.35), threshold=0.10)
    assert verdict.status == "regressed"
    assert verdict.change == pytest.approx(1.25 * 1.35 - 1, abs=0.01)
    assert MESSAGE.match(verdict.message), verdict.message


def test_a_host_speed_change_widens_the_threshold_by_what_the_probe_may_miss(probed_baseline):
    # The model and the probe never slow down by quite the same factor, so across a 30% host
    # speed change a +6% reading could be the division's error: HOST_UNCERTAINTY (15%) of the
    # change is added.
    on_slower_host = assess(probed_baseline, sample(1.04, seed=1, host=1.3), threshold=0.03)
    assert on_slower_host.margin == pytest.approx(HOST_UNCERTAINTY * 0.3, abs=0.005)
    assert on_slower_host.status == "inconclusive" and on_slower_host.doubt is Doubt.HOST_SPEED
    assert re.search(r"it reads \+[56]\.\d%, within 7\.5% \(the bound plus 4\.5% for what the division may miss\)",
                     on_slower_host.message), on_slower_host.message
    same_host = assess(probed_baseline, sample(1.06, seed=1, host=1.0), threshold=0.03)
    assert same_host.margin == 0.0 and same_host.status == "regressed"


def test_a_floor_that_reads_as_the_slow_state_of_a_mostly_slow_measurement_is_in_doubt(probed_baseline):
    # Mostly 60% slow, with 2% of the probe times at the usual speed: the probe's floor comes from
    # those moments; a model whose iteration outlasts them has its floor in the slow state.
    mixed = sample(1.04, seed=2, host=1.0)
    mixed.samples_ms = [1.6 * t for t in mixed.samples_ms]
    mixed.probe_ms = skewed(0.16, seed=3, n=400)
    mixed.probe_ms[:8] = sorted(sample(1.0, seed=0, host=1.0).probe_ms)[:8]  # the baseline's fastest
    verdict = assess(probed_baseline, mixed, threshold=0.03)
    assert verdict.raw_change == pytest.approx(1.6 * 1.04 - 1, abs=0.015)
    assert verdict.host_change == pytest.approx(0.0, abs=0.01)  # read at the probe's floor
    assert verdict.probe_spread == pytest.approx(0.6, abs=0.05)
    assert verdict.status == "inconclusive" and verdict.doubt is Doubt.HOST_SPEED
    assert re.search(r"; the probe floor came from brief fast moments \(95% of the probe times ran 6\d% or more "
                     r"slower\); against the slow state most of its probe times ran in \(\+6\d\.\d%\) it reads "
                     r"[+-]\d\.\d%, within 1[23]\.\d% either way", verdict.message), verdict.message
    # The same mostly slow measurement with a floor at the usual speed plus 4%: the model's floor
    # caught the fast moments as the probe's did, and the probe's floor holds: a regression.
    caught = dataclasses.replace(mixed, samples_ms=sample(1.04, seed=2, host=1.0).samples_ms)
    assert assess(probed_baseline, caught, threshold=0.03).status == "regressed"
    # And from a measurement at one speed throughout.
    steady = assess(probed_baseline, sample(1.04, seed=2, host=1.0), threshold=0.03)
    assert steady.probe_spread < 0.1 and steady.margin == 0.0 and steady.status == "regressed"
    assert "fast moments" not in steady.message


def test_a_reading_within_the_host_margin_is_remeasured_and_a_real_slowdown_caught(probed_baseline):
    # First measured on a slower host (within the margin), then at the usual speed: the second,
    # at the usual speed, is the lower reading, and the +6% stands.
    remeasure = Remeasure(sample(1.06, seed=2, host=1.0))
    verdict = decide(probed_baseline, sample(1.06, seed=1, host=1.2), remeasure, threshold=0.03)
    assert remeasure.calls == 1 and verdict.remeasured
    assert verdict.status == "regressed" and verdict.margin == 0.0, verdict.message


def test_the_probe_cannot_hide_a_slowdown_the_raw_floor_shows(probed_baseline):
    # On a host 40% slower, the probe over-corrects and reads a real +10% as -10%: in doubt, so
    # fresh sessions at the usual speed are measured, and they show it.
    first = sample(1.0, seed=1, host=1.4)
    first.samples_ms = [t * 1.08 for t in first.samples_ms]  # the probe slowed more than the model
    first.probe_ms = [t * 1.2 for t in first.probe_ms]
    remeasure = Remeasure(sample(1.10, seed=2, host=1.0), sample(1.10, seed=3, host=1.0))
    verdict = decide(probed_baseline, first, remeasure, threshold=0.03)
    assert remeasure.calls == 2 and verdict.status == "regressed", verdict.message
    assert 0 < verdict.bound < min(verdict.sessions[1:])


def test_the_probe_cannot_make_a_regression_the_raw_floor_does_not_show(probed_baseline):
    # The probe reads the host 12% faster than at recording; the model's raw floor is unchanged.
    # Divided, that would be +14%: never a regression on the probe's word alone.
    new = sample(1.0, seed=6, host=1.0)
    new.probe_ms = [t / 1.12 for t in new.probe_ms]
    verdict = assess(probed_baseline, new, threshold=0.03)
    assert verdict.change == verdict.raw_change < verdict.bound
    assert verdict.host_change == pytest.approx(1 / 1.12 - 1, abs=0.01)
    assert verdict.status == "unchanged" and "probe ran 11% faster" in verdict.message, verdict.message


def test_without_a_probe_on_either_side_the_raw_floors_are_compared(baseline, probed_baseline):
    # A baseline without probe times (e.g. --trt-no-host-probe) against a probed sample, and the reverse.
    for entry, new in ((baseline, sample(1.35, seed=1, host=1.0)), (probed_baseline, sample(1.35, seed=1))):
        verdict = assess(entry, new, threshold=0.10)
        assert not verdict.normalized and verdict.host_change is None
        assert verdict.status == "regressed" and "host ran" not in verdict.message


def test_a_recording_keeps_the_middle_of_its_measurements():
    assert RECORDINGS % 2 == 1  # an odd count has a middle
    fast, middle, slow = sample(1.0, seed=1, host=1.0), sample(1.1, seed=2, host=1.0), sample(1.3, seed=3, host=1.0)
    assert middle_recording([slow, fast, middle]) is middle
    # Ordered by the probe-normalized floor: a measurement on a slow host is not "slow".
    on_slow_host = sample(1.0, seed=4, host=1.4)
    assert normalized_floor(on_slow_host) == pytest.approx(normalized_floor(fast), rel=0.01)
    assert middle_recording([on_slow_host, slow, middle]) is middle
    with pytest.raises(ValueError, match="no measurement"):
        middle_recording([])


def test_a_baseline_is_recorded_from_three_measurements_at_the_usual_host_speed():
    first, middle, slow = sample(1.0, seed=1, host=1.0), sample(1.1, seed=2, host=1.0), sample(1.3, seed=3, host=1.0)
    remeasure = Remeasure(slow, middle, sample(1.0, seed=4, host=1.0))
    recording = record(first, remeasure)
    assert remeasure.calls == RECORDINGS - 1 and recording.kept is middle
    assert (recording.used, recording.taken) == (3, 3)
    assert recording.floors_ms == pytest.approx([min(m.samples_ms) for m in (first, slow, middle)])
    assert recording.spread == pytest.approx(0.3 / 1.1, abs=0.01)
    assert recording.note == f"baseline recorded (middle of 3 sessions, their floors {recording.spread * 100:.1f}% apart)"


def test_the_spread_between_recorded_sessions_is_read_with_the_host_s_speed_divided_out():
    # One session ran on a host 6% slower, model and probe alike: its floor is read at the kept
    # session's host speed beyond the probe's own noise, as a comparison divides it, so of the
    # host's 6% only PROBE_NOISE is left in the spread.
    same = [sample(1.0, seed=1, host=1.0), sample(1.0, seed=2, host=1.06), sample(1.0, seed=3, host=1.0)]
    recording = record(same[0], Remeasure(*same[1:]))
    raw = [min(m.samples_ms) for m in same]
    assert (max(raw) - min(raw)) / min(raw) > 0.05
    assert recording.spread == pytest.approx(PROBE_NOISE, abs=0.005)
    # Across a host state (probe floors more than HOST_STATE apart) the floors stay raw: there the
    # model's and the probe's floors need not come from the same moments.
    slow_state = sample(1.0, seed=2, host=1.3)
    assert floors_at_speed_of(same[0], [slow_state]) == [min(slow_state.samples_ms)]
    assert floors_at_speed_of(same[0], [Measurement(same[2].samples_ms)]) == [min(same[2].samples_ms)]  # no probe


def test_measurements_taken_while_the_host_runs_slow_are_set_aside_and_replaced():
    # The probe divides out most of a slow host state, not all of it (the model and the probe
    # slow down by different amounts), so a baseline is made of measurements at the usual speed.
    on_slow_host = sample(0.9, seed=1, host=1.35)  # normalized, it would look fastest
    usual = [sample(1.0, seed=2, host=1.0), sample(1.1, seed=3, host=1.02), sample(1.2, seed=4, host=1.0)]
    assert at_usual_speed([on_slow_host, *usual]) == usual
    remeasure = Remeasure(*usual)
    recording = record(on_slow_host, remeasure)
    assert remeasure.calls == 3 and recording.kept is usual[1]
    assert recording.note.startswith("baseline recorded (middle of 3 sessions, their floors ")
    assert recording.note.endswith("; 1 more taken while the host ran slow, set aside)")


def test_a_floor_set_by_a_few_fast_moments_is_not_the_usual_speed():
    usual = sample(1.0, seed=1, host=1.0)
    # Mostly slow (+35%), with 2% of the probe times at the usual speed: the floors look usual,
    # but the model's and the probe's floors need not come from the same moments.
    mixed = sample(1.0, seed=2, host=1.35)
    mixed.probe_ms[: len(mixed.probe_ms) // 50] = usual.probe_ms[: len(mixed.probe_ms) // 50]
    assert min(mixed.probe_ms) < 1.1 * min(usual.probe_ms)
    assert at_usual_speed([usual, mixed]) == [usual]


def test_a_host_slow_for_every_recording_is_told_by_the_fastest_probe_of_the_process():
    slow = [sample(1.0 + i / 10, seed=i, host=1.35) for i in range(MAX_RECORDINGS)]
    # On their own, all of them look alike ...
    assert at_usual_speed(slow) == slow
    # ... but the process has timed the probe faster: measure up to the cap, then keep the
    # middle of all.
    remeasure = Remeasure(*slow[1:])
    recording = record(slow[0], remeasure, fastest_probe_ms=0.1)
    assert remeasure.calls == MAX_RECORDINGS - 1 and recording.taken == MAX_RECORDINGS
    assert recording.host_slow and recording.used == MAX_RECORDINGS
    # Kept with its probe times: divided by the probe it is off by a few percent, by raw floors
    # it would be off by the whole slow state.
    assert recording.kept is slow[(MAX_RECORDINGS - 1) // 2]
    assert "all taken while the host ran slower than the fastest probe of this test run: later runs that " \
        "meet the usual speed add the host-speed margin; record it again on a quieter host" in recording.note


def test_without_probe_times_every_measurement_counts_as_usual_speed():
    plain = [sample(1.0 + i / 10, seed=i) for i in range(RECORDINGS)]
    remeasure = Remeasure(*plain[1:])
    recording = record(plain[0], remeasure, fastest_probe_ms=0.001)
    assert remeasure.calls == RECORDINGS - 1 and recording.kept is plain[1]


def test_an_odd_first_session_is_outvoted_by_fresh_ones(probed_baseline):
    # The first measurement ran in a host state the probe tracks badly (the model slowed 30%,
    # the probe not at all); two fresh sessions in a normal one outvote it.
    odd = sample(1.0, seed=1, host=1.0)
    odd.samples_ms = [1.3 * t for t in odd.samples_ms]
    remeasure = Remeasure(sample(1.0, seed=2, host=1.0), sample(1.0, seed=5, host=1.0))
    verdict = decide(probed_baseline, odd, remeasure, threshold=0.05)
    assert remeasure.calls == 2 and verdict.remeasured and verdict.status == "unchanged"
    assert abs(verdict.change) < 0.01
    # A real slowdown is in both measurements, whichever host state each met, so it stays.
    slower = Remeasure(sample(1.2, seed=3, host=1.35))
    verdict = decide(probed_baseline, sample(1.2, seed=4, host=1.0), slower, threshold=0.05)
    assert verdict.status == "regressed" and verdict.change == pytest.approx(0.2, abs=0.01)


def test_accuracy_drift_flags_errors_well_above_the_baseline():
    entry = entry_from_measurement(make_record(errors={"max_abs": 1e-5, "mean_abs": 1e-6}), None)
    assert accuracy_drift(entry, make_record(errors={"max_abs": 1.5e-5, "mean_abs": 1e-6}).accuracy) == []
    lines = accuracy_drift(entry, make_record(errors={"max_abs": 5e-5, "mean_abs": 1e-6}).accuracy)
    assert lines == ["accuracy drift: output 'y' max_abs 5e-05 vs baseline 1e-05 (5.0x), still within tolerance"]
    # Tiny absolute moves from an exact match are rounding, not drift.
    exact = entry_from_measurement(make_record(errors={"max_abs": 0.0}), None)
    assert accuracy_drift(exact, make_record(errors={"max_abs": 1e-8}).accuracy) == []
    assert "from 0" in accuracy_drift(exact, make_record(errors={"max_abs": 1e-3}).accuracy)[0]


@pytest.mark.parametrize("host", [1.01, 0.985])
def test_a_probe_within_its_own_noise_leaves_the_raw_floors_compared(probed_baseline, host):
    # A transient load that slows the probe 1.5% and not the model's floor must not hide a +4%
    # slowdown, nor a probe reading fast raise a false one: within PROBE_NOISE nothing is divided.
    new = sample(1.04, seed=1, host=1.0)
    new.probe_ms = [t * host for t in new.probe_ms]
    verdict = assess(probed_baseline, new, threshold=0.03)
    assert verdict.normalized and verdict.host_change == pytest.approx(host - 1, abs=0.002)
    assert verdict.change == pytest.approx(verdict.raw_change) and verdict.status == "regressed"
    assert verdict.margin == 0.0 and "the host ran" not in verdict.message


def test_beyond_the_probe_noise_the_division_is_continuous(probed_baseline):
    # Just past PROBE_NOISE only the part beyond it is divided out: no jump at the edge.
    changes = []
    for host in (1 + PROBE_NOISE - 1e-4, 1 + PROBE_NOISE + 1e-4):
        new = sample(1.04, seed=1, host=1.0)
        new.probe_ms = [t * host for t in new.probe_ms]
        changes.append(assess(probed_baseline, new, threshold=0.03).change)
    assert changes[0] == pytest.approx(changes[1], abs=5e-4)


BUSY = Contention(1.0, pressure=0.4, steal=0.0, runnable_per_cpu=0.0)


@dataclasses.dataclass
class Contended(Measurement):
    """A measurement timed while the CPUs were contended."""

    contention: Contention = BUSY


def busy(m: Measurement) -> Contended:
    return Contended(m.samples_ms, m.probe_ms)


def test_a_session_timed_on_a_busy_host_never_votes_regressed(baseline):
    verdict = assess(baseline, busy(sample(1.3, seed=1)), threshold=0.05)
    assert verdict.status == "inconclusive" and verdict.doubt is Doubt.BUSY
    assert "tasks waited for a CPU 40% of the time" in verdict.message
    # Unchanged on a busy host still says unchanged: noise only adds time, so it hides nothing.
    assert assess(baseline, busy(sample(1.0, seed=2)), threshold=0.05).status == "unchanged"


def test_a_baseline_recorded_on_a_busy_host_never_calls_a_test_unchanged(baseline):
    entry = dataclasses.replace(baseline, recorded_busy=["tasks waited for a CPU 40% of the time"])
    # Its floor may read slow: a real slowdown can hide under it, so "unchanged" is not said ...
    verdict = assess(entry, sample(1.0, seed=1), threshold=0.05)
    assert verdict.status == "inconclusive" and verdict.doubt is Doubt.BASELINE_BUSY
    assert "re-record it on a quiet host" in verdict.message
    assert assess(entry, sample(0.8, seed=1), threshold=0.05).doubt is Doubt.BASELINE_BUSY
    # ... while slower than even that floor is a regression.
    assert assess(entry, sample(1.3, seed=1), threshold=0.05).status == "regressed"


def test_a_recording_prefers_quiet_sessions_and_says_when_it_found_none(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(contention, "wait_for_quiet", lambda limit: waits.append(limit) or False)
    quiet = [sample(1.0 + i / 10, seed=i) for i in range(RECORDINGS)]
    remeasure = Remeasure(*quiet)
    recording = record(busy(sample(0.9, seed=9)), remeasure)
    assert recording.kept is quiet[1] and not recording.busy and waits == [regression.QUIET_WAIT_S]
    # Busy throughout: a few more tries, each after a wait for quiet, then the middle is kept and
    # the entry says why it may read slow.
    loud = [busy(sample(1.0 + i / 10, seed=i)) for i in range(MAX_RECORDINGS)]
    remeasure = Remeasure(*loud[1:])
    recording = record(loud[0], remeasure)
    assert recording.taken == RECORDINGS + BUSY_EXTRA_RECORDINGS and recording.busy
    assert "recorded while the host was busy" in recording.note


def test_a_recording_left_with_one_session_keeps_the_spread_of_all_it_took():
    # One session at the usual speed, the rest slow: the spread still comes from two or more.
    slow = [sample(1.0, seed=i, host=1.35) for i in range(1, MAX_RECORDINGS)]
    usual = sample(1.0, seed=0, host=1.0)
    recording = record(usual, Remeasure(*slow))
    assert recording.used == 1 and recording.kept is usual
    assert len(recording.floors_ms) == MAX_RECORDINGS and recording.spread == pytest.approx(0.35 / 1.35, abs=0.01)


def test_a_slower_session_is_confirmed_after_a_gap(monkeypatch, baseline):
    slept: list[float] = []
    monkeypatch.setattr(regression, "CONFIRM_GAP_S", 2.0)
    monkeypatch.setattr(regression.time, "sleep", slept.append)
    verdict = decide(baseline, sample(1.2, seed=1), Remeasure(sample(1.2, seed=2)), threshold=0.05)
    assert verdict.status == "regressed" and slept == [2.0]
    # An unchanged first session settles it at once: no gap, no fresh session.
    slept.clear()
    decide(baseline, sample(1.0, seed=1), Remeasure(), threshold=0.05)
    assert slept == []


def test_the_floor_compared_is_the_stored_floor_not_the_rebuilt_samples_lowest():
    # Few samples with one fast outlier: the rebuilt sample's lowest point sits at the
    # (0.5 / n)-th percentile, well above the stored floor; the stored floor is what is compared.
    times = [1.0] + [1.1] * 39
    entry = entry_from_measurement(make_record(times), None)
    assert baseline_sample(entry.latency_ms).min() > 1.04
    verdict = assess(entry, Measurement(list(times)), threshold=0.03)
    assert verdict.change == 0.0 and verdict.status == "unchanged"


def test_a_slowdown_within_the_recorded_sessions_spread_is_inconclusive_never_unchanged(monkeypatch, baseline):
    monkeypatch.setattr(regression.time, "sleep", lambda _s: None)
    spread = dataclasses.replace(baseline, session_floors_ms=[1.0, 1.05, 1.1])  # 9.5% apart
    # +6% is beyond the 3% threshold, inside the 12.5% bound: two sessions read it, neither verdict holds.
    verdict = decide(spread, sample(1.06, seed=1), Remeasure(sample(1.06, seed=2)), threshold=0.03)
    assert verdict.status == "inconclusive" and verdict.doubt is Doubt.WITHIN_SPREAD
    assert verdict.bound == pytest.approx(0.03 + 0.1 / 1.05) and verdict.ci_low > 0.03
    assert "within the 9.5% the baseline's sessions varied" in verdict.message
    # A fresh session at the baseline's speed, twice, calls it unchanged.
    remeasure = Remeasure(sample(1.0, seed=2), sample(1.0, seed=3))
    verdict = decide(spread, sample(1.06, seed=1), remeasure, threshold=0.03)
    assert verdict.status == "unchanged" and remeasure.calls == 2
    # Within the threshold itself the spread changes nothing: unchanged at once.
    verdict = decide(spread, sample(1.02, seed=1), Remeasure(), threshold=0.03)
    assert verdict.status == "unchanged" and not verdict.remeasured
    # Without a recorded spread the bound is the threshold, and +6% is a regression.
    verdict = decide(baseline, sample(1.06, seed=1), Remeasure(sample(1.06, seed=2)), threshold=0.03)
    assert verdict.status == "regressed"
