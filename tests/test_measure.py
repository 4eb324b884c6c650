"""The measurement loop, driven by a scripted TimedSession (no sleeping, no timing asserts)."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

from pytest_trt.backends.base import BackendError, IterationTimes
from pytest_trt.baselines import regression
from pytest_trt.judge.budgets import budget_failures
from pytest_trt.measure_defaults import FEWEST_ITERATIONS
from pytest_trt.specs import MeasureSettings, PerfBudget
from pytest_trt.timing.measure import (
    HostTimedSession,
    PerfResult,
    measure,
    wanted_iterations,
)
from pytest_trt.timing.stats import summarize

PHASE_NAMES = ("compute", "h2d", "d2h", "enqueue")


class ScriptedSession:
    """Iteration i (counted over the session's life, warm-up included) takes ``latency(i)`` ms;
    each phase is a fixed number of ms; a chunk's span is ``span_factor`` x its latencies."""

    clock = "cuda-events"

    def __init__(
        self,
        latency: Callable[[int], float],
        phases: Mapping[str, float] | None = None,
        span_factor: float = 1.0,
        warnings: list[str] | None = None,
        clock: str = "cuda-events",
    ) -> None:
        self.clock = clock
        self.latency = latency
        self.phases = dict(phases or {})
        self.span_factor = span_factor
        self.mode = {"cuda_graph": False, "transfers": True}
        self.warnings = list(warnings or [])
        self.chunks: list[int] = []
        self.produced: list[float] = []
        self.spans: list[float] = []
        self.closed = False

    def run(self, iterations: int) -> IterationTimes:
        start = len(self.produced)
        latency = [self.latency(i) for i in range(start, start + iterations)]
        self.chunks.append(iterations)
        self.produced.extend(latency)
        self.spans.append(sum(latency) * self.span_factor)
        return IterationTimes(
            latency=latency,
            span_ms=self.spans[-1],
            **{name: [self.phases[name]] * iterations for name in PHASE_NAMES if name in self.phases},
        )

    def close(self) -> None:
        self.closed = True


class FakeRunner:
    backend = "tensorrt"
    inputs: list = []
    outputs: list = []

    def __init__(self, session: Any) -> None:
        self.session = session
        self.settings: MeasureSettings | None = None

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise AssertionError("measure must not call infer")

    def timed_session(self, feed: Mapping[str, np.ndarray], settings: MeasureSettings) -> Any:
        self.settings = settings
        return self.session

    def close(self) -> None:
        pass


def settings(**kw: Any) -> MeasureSettings:
    base = {"warmup_ms": 0.0, "min_iterations": 1, "min_duration_ms": 0.0, "max_duration_ms": 10_000.0}
    return MeasureSettings(**{**base, **kw})


def run(session: ScriptedSession, batch: int = 1, percentiles: tuple[float, ...] = (), **kw: Any) -> PerfResult:
    return measure(FakeRunner(session), {"x": np.zeros(1)}, settings(**kw), batch=batch, percentiles=percentiles)


def constant(ms: float) -> Callable[[int], float]:
    return lambda i: ms


def test_stops_exactly_at_min_iterations_with_growing_chunks() -> None:
    session = ScriptedSession(constant(1.0))
    result = run(session, min_iterations=50, min_duration_ms=10.0)
    assert result.iterations == 50
    assert session.chunks == [1, 2, 4, 8, 16, 19]
    assert len(result.samples_ms) == 50


def test_keeps_going_until_min_duration() -> None:
    session = ScriptedSession(constant(0.01))
    result = run(session, min_iterations=10, min_duration_ms=100.0)
    assert result.duration_s >= 0.1
    assert result.iterations == pytest.approx(10_000, abs=2)
    assert result.warnings == []


def test_max_duration_caps_a_slow_model_and_warns() -> None:
    session = ScriptedSession(constant(100.0))
    result = run(session, min_iterations=1000, max_duration_ms=1000.0)
    # Chunks shrink to what fits in the time left instead of doubling past the cap.
    assert session.chunks == [1, 2, 4, 3]
    assert result.iterations == 10
    assert result.duration_s == pytest.approx(1.0)
    # At 100 ms per iteration, the slow-model rule wants what fits in SLOW_MODEL_MS (30).
    assert result.warnings == [
        "stopped at max_duration_ms 1000 after 10 iterations and 1000 ms; "
        "wanted at least 30 iterations and 0 ms"
    ]


def test_max_duration_below_min_duration_warns() -> None:
    result = run(ScriptedSession(constant(1.0)), min_duration_ms=500.0, max_duration_ms=200.0)
    assert result.duration_s == pytest.approx(0.2)
    assert "wanted at least 1 iterations and 500 ms" in result.warnings[0]


def test_zero_max_duration_still_takes_one_chunk() -> None:
    result = run(ScriptedSession(constant(1.0)), min_iterations=5, max_duration_ms=0.0)
    assert result.iterations == 1
    assert result.warnings[0].startswith("stopped at max_duration_ms 0 after 1 iterations")


def test_warm_up_is_run_and_left_out_of_the_sample() -> None:
    session = ScriptedSession(lambda i: 1.0 + i * 1e-3)  # every iteration distinct
    result = run(session, warmup_ms=50.0, min_iterations=20)
    warm_iterations = len(session.produced) - result.iterations
    assert warm_iterations > 0
    assert sum(session.produced[:warm_iterations]) >= 50.0
    assert result.samples_ms == session.produced[warm_iterations:]
    assert result.duration_s * 1000 == pytest.approx(sum(result.samples_ms))


def test_measuring_resumes_at_warm_up_chunk_size() -> None:
    # On the host clock warm-up is warmup_ms alone (a GPU's continues to its working clock:
    # tests/test_gpu_clock.py).
    session = ScriptedSession(constant(1.0), clock="host")
    result = run(session, warmup_ms=7.0, min_iterations=100)
    # Warm-up: 1 + 2 + 4 = 7 ms, then measuring begins at 4 and doubles.
    assert session.chunks[:4] == [1, 2, 4, 4]
    assert result.iterations == 100


def test_no_warm_up_measures_from_the_first_iteration() -> None:
    session = ScriptedSession(lambda i: float(i + 1))
    result = run(session, min_iterations=3)
    assert result.samples_ms == [1.0, 2.0, 3.0]


def test_phases_are_merged_across_chunks() -> None:
    phases = {"compute": 0.5, "h2d": 0.1, "d2h": 0.05, "enqueue": 0.2}
    result = run(ScriptedSession(constant(1.0), phases=phases), min_iterations=40)
    assert result.compute is not None and result.compute.n == 40 and result.compute.mean == 0.5
    assert result.h2d is not None and result.h2d.median == 0.1
    assert result.d2h is not None and result.d2h.max == 0.05
    assert result.enqueue is not None and result.enqueue.n == 40


def test_missing_phases_are_none() -> None:
    result = run(ScriptedSession(constant(1.0)), min_iterations=5)
    assert (result.compute, result.h2d, result.d2h, result.enqueue) == (None, None, None, None)


def test_throughput_is_queries_over_summed_spans() -> None:
    # Pipelined GPU: spans are half the summed latencies, so throughput beats 1 / latency.
    session = ScriptedSession(constant(2.0), span_factor=0.5)
    result = run(session, batch=8, min_iterations=64)
    span_s = sum(session.spans) / 1000.0
    assert result.duration_s == pytest.approx(span_s)
    assert result.throughput == pytest.approx(8 * 64 / span_s)
    assert result.throughput == pytest.approx(8000.0)


def test_a_noisy_sample_gets_no_warning_of_its_own() -> None:
    # CV 33%: the blanket "latency CV > 10%" warning fired here, though no verdict was in doubt
    # (budgets.budget_doubts says when one is).
    result = run(ScriptedSession(lambda i: 1.0 if i % 2 else 2.0), min_iterations=100)
    assert summarize(result.samples_ms).cv > 0.3
    assert result.warnings == []


def test_enqueue_and_transfer_bound_warnings() -> None:
    phases = {"compute": 1.0, "h2d": 0.6, "d2h": 0.5, "enqueue": 0.9}
    result = run(ScriptedSession(constant(2.1), phases=phases, warnings=["graph capture failed"]), min_iterations=10)
    assert result.warnings[0] == "graph capture failed"
    assert result.warnings[1].startswith("enqueue-bound: mean enqueue 0.900 ms > 0.8 x mean compute 1.000 ms")
    assert result.warnings[2].startswith("transfer-bound: mean H2D+D2H 1.100 ms > mean compute 1.000 ms")
    assert len(result.warnings) == 3


def test_an_enqueue_bound_run_already_in_a_cuda_graph_is_not_told_to_use_one() -> None:
    session = ScriptedSession(constant(2.1), phases={"compute": 1.0, "enqueue": 0.9})
    plain = run(session, min_iterations=10).warnings[0]
    assert plain.endswith("the host may be starving the GPU (try cuda_graph=True)")
    graphed = ScriptedSession(constant(2.1), phases={"compute": 1.0, "enqueue": 0.9})
    graphed.mode = {"cuda_graph": True, "transfers": True}
    assert run(graphed, min_iterations=10).warnings[0].endswith("the host may be starving the GPU")


def test_balanced_gpu_run_has_no_warnings() -> None:
    phases = {"compute": 1.0, "h2d": 0.2, "d2h": 0.2, "enqueue": 0.3}
    assert run(ScriptedSession(constant(1.4), phases=phases), min_iterations=10).warnings == []


def test_result_records_session_facts_and_serializes() -> None:
    session = ScriptedSession(constant(1.0), phases={"compute": 0.8})
    runner = FakeRunner(session)
    chosen = settings(min_iterations=4)
    result = measure(runner, {"x": np.zeros(1)}, chosen, batch=2)
    assert runner.settings is chosen
    assert session.closed
    assert (result.backend, result.clock, result.batch) == ("tensorrt", "cuda-events", 2)
    assert result.mode == {"cuda_graph": False, "transfers": True}
    data = json.loads(json.dumps(result.as_dict()))
    assert data["samples_ms"] == [1.0] * 4
    assert data["latency"]["n"] == 4 and data["compute"]["mean"] == 0.8 and data["h2d"] is None


def test_session_is_closed_when_a_run_fails() -> None:
    def boom(i: int) -> float:
        raise RuntimeError("device lost")

    session = ScriptedSession(boom)
    with pytest.raises(RuntimeError, match="device lost"):
        run(session)
    assert session.closed


class MalformedSession(ScriptedSession):
    def __init__(self, change: Callable[[IterationTimes], None]) -> None:
        super().__init__(constant(1.0), phases={"compute": 1.0})
        self.change = change

    def run(self, iterations: int) -> IterationTimes:
        times = super().run(iterations)
        self.change(times)
        return times


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.latency.append(1.0), r"returned 2 latencies for run\(1\)"),
        (lambda t: setattr(t, "span_ms", 0.0), r"span_ms=0.0 for run\(1\); it must be > 0"),
        (lambda t: setattr(t, "span_ms", float("nan")), r"span_ms=nan for run\(1\)"),
        (lambda t: t.compute.clear(), r"returned 0 compute times for run\(1\)"),
    ],
)
def test_malformed_timings_are_a_backend_error(change: Callable[[IterationTimes], None], message: str) -> None:
    session = MalformedSession(change)
    with pytest.raises(BackendError, match=message):
        run(session)
    assert session.closed


@pytest.mark.parametrize("batch", [0, -1, True, 2.0])
def test_batch_must_be_a_positive_int(batch: Any) -> None:
    with pytest.raises(ValueError, match="batch must be a positive int"):
        run(ScriptedSession(constant(1.0)), batch=batch)


def result_with(samples: list[float], throughput: float = 1e6) -> PerfResult:
    return PerfResult(
        backend="tensorrt", clock="cuda-events", mode={}, batch=1, iterations=len(samples),
        duration_s=1.0, latency=summarize(samples), compute=None, h2d=None, d2h=None, enqueue=None,
        throughput=throughput, samples_ms=samples,
    )


def test_latency_at_uses_the_stored_samples() -> None:
    result = result_with([1.0, 2.0, 3.0, 4.0])
    assert result.latency_at(50) == 2.5
    assert result.latency_at(100) == 4.0


def test_host_timed_session_times_each_call() -> None:
    calls: list[None] = []
    session = HostTimedSession(lambda: calls.append(None))
    assert (session.clock, session.mode, session.warnings) == ("host", {"clock": "host"}, [])
    times = session.run(25)
    assert len(calls) == 25
    assert len(times.latency) == 25 and all(t > 0 for t in times.latency)
    assert times.span_ms == pytest.approx(sum(times.latency))
    assert times.compute is None
    with pytest.raises(ValueError, match="iterations must be a positive int, got 0"):
        session.run(0)
    session.close()
    with pytest.raises(RuntimeError, match="HostTimedSession is closed"):
        session.run(1)


def busy(ms: float) -> Callable[[], None]:
    """A call that spins for ``ms`` of wall time."""
    def call() -> None:
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass
    return call


def test_the_host_probe_runs_between_iterations_and_outside_their_times() -> None:
    session = HostTimedSession(busy(0.5), probe=True)
    started = time.perf_counter()
    times = session.run(40)
    wall_ms = (time.perf_counter() - started) * 1000
    assert times.probe and all(p > 0 for p in times.probe)
    # Probed at most every SPACING probe-durations of model time, and at least once per few calls.
    assert 40 / 8 <= len(times.probe) <= 40
    # The span is the model's own time: the probe is in the wall time but not in throughput.
    assert times.span_ms == pytest.approx(sum(times.latency))
    assert wall_ms >= times.span_ms + sum(times.probe) * 0.99
    assert min(times.latency) >= 0.5
    session.close()


def test_measure_keeps_the_probe_times_of_measured_chunks_only() -> None:
    result = run(HostTimedSession(busy(0.2), probe=True), warmup_ms=5.0, min_iterations=30, min_duration_ms=10.0)  # type: ignore[arg-type]
    assert result.probe_ms and len(result.probe_ms) <= result.iterations
    assert result.as_dict()["probe_ms"] == result.probe_ms
    plain = run(HostTimedSession(busy(0.2)), min_iterations=30, min_duration_ms=10.0)  # type: ignore[arg-type]
    assert plain.probe_ms is None and plain.as_dict()["probe_ms"] is None


def test_measure_over_a_host_session() -> None:
    calls: list[None] = []
    result = run(HostTimedSession(lambda: calls.append(None)), min_iterations=30, min_duration_ms=1.0, max_duration_ms=5000.0)  # type: ignore[arg-type]
    assert result.clock == "host" and result.mode == {"clock": "host"}
    assert result.iterations >= 30 and len(calls) == result.iterations
    assert result.latency.min > 0 and result.throughput > 0


# ---- the garbage collector ---------------------------------------------------------------------


class GcWatchingSession(ScriptedSession):
    """Records whether the garbage collector was on during each run() and fails on request."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__(constant(1.0))
        self.gc_during: list[bool] = []
        self.fail_at = fail_at

    def run(self, iterations: int) -> IterationTimes:
        self.gc_during.append(gc.isenabled())
        if self.fail_at is not None and len(self.gc_during) > self.fail_at:
            raise RuntimeError("device lost")
        return super().run(iterations)


class GcAtCloseRunner(FakeRunner):
    """Notes whether the collector is on between chunks: when the session is made and closed."""

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.gc_between: list[bool] = []

    def timed_session(self, feed: Mapping[str, np.ndarray], settings: MeasureSettings) -> Any:
        self.gc_between.append(gc.isenabled())
        return super().timed_session(feed, settings)


def test_gc_is_off_inside_every_timed_chunk_and_on_again_after(monkeypatch: pytest.MonkeyPatch) -> None:
    session = GcWatchingSession()
    runner = GcAtCloseRunner(session)
    assert gc.isenabled()
    measure(runner, {"x": np.zeros(1)}, settings(warmup_ms=3.0, min_iterations=30), batch=1)
    assert len(session.gc_during) > 3 and not any(session.gc_during)  # warm-up and timed chunks
    assert runner.gc_between == [True]
    assert gc.isenabled()


def test_gc_is_restored_when_a_chunk_fails() -> None:
    session = GcWatchingSession(fail_at=2)
    with pytest.raises(RuntimeError, match="device lost"):
        run(session, min_iterations=30)
    assert gc.isenabled() and session.closed


def test_gc_stays_off_after_measuring_where_the_caller_had_it_off() -> None:
    gc.disable()
    try:
        run(GcWatchingSession(), min_iterations=30)
        assert not gc.isenabled()
    finally:
        gc.enable()


# ---- how many iterations --------------------------------------------------------------------


def test_a_slow_model_measures_20_iterations_in_under_4_s_with_default_settings() -> None:
    session = ScriptedSession(constant(170.0))  # PP-OCRv4 det on a 2-core VM
    result = measure(FakeRunner(session), {"x": np.zeros(1)}, MeasureSettings(), batch=1)
    assert result.iterations == FEWEST_ITERATIONS == 20
    assert sum(session.produced) <= 4000.0  # warm-up included
    assert result.warnings == []


def test_the_slow_model_rule_takes_what_fits_and_never_more_than_min_iterations() -> None:
    defaults = MeasureSettings()
    assert wanted_iterations(defaults, 0.3) == 50  # a fast model: min_iterations
    assert wanted_iterations(defaults, 100.0) == 30  # 30 fit in SLOW_MODEL_MS
    assert wanted_iterations(defaults, 170.0) == 20  # 17 would fit: FEWEST_ITERATIONS
    assert wanted_iterations(defaults, 5000.0) == 20
    assert wanted_iterations(MeasureSettings(min_iterations=5), 170.0) == 5  # asked for fewer
    assert run(ScriptedSession(constant(100.0)), min_iterations=50).iterations == 30
    # A baseline comparison accepts no fewer samples than the slow-model rule takes.
    assert FEWEST_ITERATIONS >= regression.MIN_SAMPLES


def test_a_p99_budget_takes_the_100_samples_a_p99_needs() -> None:
    session = ScriptedSession(constant(20.0))
    plain = run(session, min_iterations=50)
    assert plain.iterations == 50
    result = run(ScriptedSession(constant(20.0)), min_iterations=50, percentiles=(99.0,))
    assert result.iterations == 100 and result.samples_for(99) == 100
    assert not result.short_of(99) and result.warnings == []
    assert run(ScriptedSession(constant(20.0)), min_iterations=5, percentiles=(95.0,)).iterations == 20


def test_a_p99_budget_short_of_samples_at_max_duration_says_so() -> None:
    session = ScriptedSession(constant(170.0))
    result = measure(FakeRunner(session), {"x": np.zeros(1)}, MeasureSettings(), batch=1, percentiles=(99.0,))
    assert result.iterations == 59 and result.duration_s == pytest.approx(10.03)
    assert result.warnings == [
        "stopped at max_duration_ms 10000 after 59 iterations and 10030 ms; wanted at least 20 iterations "
        "and 300 ms, and 100 samples for the p99 budget",
        "the p99 latency budget is judged on p99 from 59 samples, fewer than the 100 a p99 needs: it reads "
        "low; raise max_duration_ms (--trt-max-duration-ms) or budget a lower percentile",
    ]


def test_percentiles_say_how_many_samples_they_came_from() -> None:
    result = result_with([170.0] * 23 + [180.0])
    assert result.samples_for(99) == result.samples_for(50) == 24
    # A p95 needs 20 samples, a p99 100, a p1 100 (it reads high).
    assert result.short_of(99) and result.short_of(1) and not result.short_of(95) and not result.short_of(50)
    assert result.sample_note(99) == "p99 from 24 samples, fewer than the 100 a p99 needs: it reads low"
    assert result.sample_note(1) == "p1 from 24 samples, fewer than the 100 a p1 needs: it reads high"
    assert result.sample_note(95) == result.sample_note(50) == ""
    data = result.as_dict()
    assert data["budget_samples"] == 24
    assert data["short_percentiles"] == ["p99"]
    assert data["sample_notes"] == ["p99 from 24 samples, fewer than the 100 a p99 needs: it reads low"]
    assert result_with([1.0] * 100).as_dict()["short_percentiles"] == []


# ---- iterations right after a probe ------------------------------------------------------------


class ProbedScriptedSession(ScriptedSession):
    """Every 4th iteration runs right after a probe, and is slowed by it (10 ms instead of 1 ms)."""

    def run(self, iterations: int) -> IterationTimes:
        start = len(self.produced)
        marked = [i for i in range(iterations) if (start + i) % 4 == 0]
        latency = [10.0 if i in marked else 1.0 for i in range(iterations)]
        self.chunks.append(iterations)
        self.produced.extend(latency)
        return IterationTimes(latency=latency, span_ms=sum(latency), probe=[0.1], after_probe=marked)


def test_latency_budgets_leave_out_the_iterations_right_after_a_probe() -> None:
    result = run(ProbedScriptedSession(constant(1.0)), min_iterations=40, percentiles=(99.0,))
    assert result.after_probe == list(range(0, result.iterations, 4))
    assert all(result.samples_ms[i] == 10.0 for i in result.after_probe)
    # The floor a baseline reads keeps every iteration; budgets and shown percentiles do not.
    assert len(result.samples_ms) == result.iterations
    assert result.budget_samples_ms == [1.0] * (result.iterations - len(result.after_probe))
    assert result.latency_at(99) == 1.0 and result.latency.p99 == 1.0 and result.latency.max == 1.0
    # The p99 needs 100 samples not right after a probe: 134 iterations, a quarter of them marked.
    assert result.samples_for(99) >= 100 and result.iterations >= 133
    assert budget_failures(result, PerfBudget(max_latency_ms=2, percentile=99)) == []
    assert result.as_dict()["after_probe"] == result.after_probe


def test_marks_outside_the_chunk_are_a_backend_error() -> None:
    session = MalformedSession(lambda t: setattr(t, "after_probe", [5]))
    with pytest.raises(BackendError, match=r"marked iterations outside run\(1\)"):
        run(session)


class FakeClock:
    """time.perf_counter_ns that moves only when told: each read costs 1 µs, a call 1 ms."""

    def __init__(self) -> None:
        self.now = 0
        self.reads = 0

    def read(self) -> int:
        self.reads += 1
        self.now += 1_000
        return self.now

    def call(self) -> None:
        self.now += 1_000_000


def test_probed_and_unprobed_iterations_are_timed_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter_ns", clock.read)
    monkeypatch.setattr("pytest_trt.timing.host_cpu.measuring_cpu", lambda probe: None)
    plain = HostTimedSession(clock.call)
    unprobed = plain.run(40)
    assert clock.reads == 41  # one clock read per iteration
    probed_session = HostTimedSession(clock.call, probe=True)
    clock.reads = 0
    probed = probed_session.run(40)
    assert probed.probe and probed.after_probe
    # One read per iteration there too; each probe adds its own two and one after it.
    assert clock.reads == 41 + 3 * len(probed.probe)
    # So every iteration, right after a probe or not, reads the same quantity: the call plus one read.
    assert probed.latency == unprobed.latency == [1.001] * 40
    assert probed.span_ms == unprobed.span_ms == pytest.approx(40 * 1.001)
    plain.close()
    probed_session.close()


def test_the_probe_runs_at_most_every_gap_iterations_and_marks_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter_ns", clock.read)
    monkeypatch.setattr("pytest_trt.timing.host_cpu.measuring_cpu", lambda probe: None)
    session = HostTimedSession(clock.call, probe=True, spacing=1.0, gap=4)
    # A probe (1 µs) is due after every 1 ms call; the gap makes it every 4th iteration, counted
    # across chunks: probed after iterations 0, 4, 8 of the session, the iteration after each marked.
    first = session.run(5)
    assert first.after_probe == [1] and len(first.probe or []) == 2  # the second probe ends the chunk
    second = session.run(3)
    assert second.after_probe == [0] and second.probe == []
    third = session.run(2)
    assert third.after_probe == [1] and len(third.probe or []) == 1
    session.close()


def test_a_sparse_spacing_probes_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter_ns", clock.read)
    monkeypatch.setattr("pytest_trt.timing.host_cpu.measuring_cpu", lambda probe: None)
    # The probe takes 1 µs (its second clock read); spacing 4000 waits 4 ms of model time.
    session = HostTimedSession(clock.call, probe=True, spacing=4000.0, gap=1)
    times = session.run(20)
    assert times.after_probe == [1, 5, 9, 13, 17]
    session.close()


def test_lock_wait_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(ScriptedSession(constant(1.0)), min_iterations=5)
    assert result.lock_wait_s >= 0.0 and result.as_dict()["lock_wait_s"] == result.lock_wait_s


def test_one_slow_probe_does_not_stop_probing(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter_ns", clock.read)
    monkeypatch.setattr("pytest_trt.timing.host_cpu.measuring_cpu", lambda probe: None)
    session = HostTimedSession(clock.call, probe=True, spacing=4000.0, gap=1)
    probe = session._probe
    assert probe is not None
    real_probe = probe.probe
    # Iterations 0-5: a 1 µs probe every 4 ms of model time, after iterations 0 and 4.
    assert session.run(6).after_probe == [1, 5]

    def preempted() -> float:  # the probe after iteration 8 takes 50 ms
        start_read = clock.read
        reads = iter([0, 50_000_000])

        def read() -> int:
            clock.now += next(reads, 0)
            return start_read()

        monkeypatch.setattr(time, "perf_counter_ns", read)
        try:
            return real_probe()
        finally:
            monkeypatch.setattr(time, "perf_counter_ns", start_read)

    monkeypatch.setattr(probe, "probe", preempted)
    session.run(3)  # iterations 6-8, probed after 8
    assert probe.last_ms > 50
    monkeypatch.setattr(probe, "probe", real_probe)
    # Still every 4 ms (4000 x the fastest probe), not every 4000 x 50 ms: after 12, 16 and 20,
    # and the one after 8 marks this chunk's first iteration.
    assert session.run(12).after_probe == [0, 4, 8]
    session.close()


class EveryIterationProbed(ScriptedSession):
    def run(self, iterations: int) -> IterationTimes:
        times = super().run(iterations)
        times.after_probe = list(range(iterations))
        return times


def test_where_every_iteration_follows_a_probe_budgets_judge_them_all() -> None:
    result = run(EveryIterationProbed(constant(2.0)), min_iterations=3)
    assert result.budget_samples_ms == result.samples_ms == [2.0] * 3
    assert result.latency.n == 3 and budget_failures(result, PerfBudget(max_latency_ms=1)) != []


def test_a_runner_measured_a_moment_ago_rewarms_briefly_at_the_same_shape_and_fully_at_a_new_one(monkeypatch) -> None:
    from pytest_trt.measure_defaults import REWARM_MS
    from pytest_trt.specs import MeasureSettings
    from pytest_trt.timing import measure as measuring

    runner = object()
    settings = MeasureSettings(warmup_ms=500)
    monkeypatch.setattr(measuring._Recent, "runner", runner)
    monkeypatch.setattr(measuring._Recent, "shapes", {"x": (8, 256)})
    monkeypatch.setattr(measuring._Recent, "ended", measuring.time.monotonic())
    same = {"x": np.zeros((8, 256), np.float32)}
    other = {"x": np.zeros((32, 256), np.float32)}
    assert measuring._still_warm(runner, settings, same).warmup_ms == REWARM_MS
    # The first runs after a shape change are slower: a sweep point warms up in full.
    assert measuring._still_warm(runner, settings, other).warmup_ms == 500


def test_a_first_probe_slowed_by_a_preemption_does_not_stop_probing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first probe of a session sets its spacing: preempted for 50 ms (1 µs of CPU time), it
    # must not put the next probe 4000 x 50 ms of model time away.
    clock = FakeClock()
    cpu = iter(range(0, 10**9, 1000))  # the thread's CPU clock: 1 µs per probe
    monkeypatch.setattr(time, "thread_time_ns", lambda: next(cpu))
    monkeypatch.setattr("pytest_trt.timing.host_cpu.measuring_cpu", lambda probe: None)
    reads = iter([0, 0, 0, 50_000_000])  # the first probe's closing clock read comes 50 ms late

    def read() -> int:
        clock.now += next(reads, 0)
        return clock.read()

    monkeypatch.setattr(time, "perf_counter_ns", read)
    session = HostTimedSession(clock.call, probe=True, spacing=4000.0, gap=1)
    assert session._probe is not None
    # Probed after iteration 0 (the 50 ms one), then every 4 ms of model time again.
    times = session.run(10)
    assert times.probe is not None and times.probe[0] > 50 and max(times.probe[1:]) < 1
    assert times.after_probe == [1, 5, 9]
    session.close()
