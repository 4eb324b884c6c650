"""Records with every part the HTML report draws, for its tests and its size benchmark: a latency
sample with budgets and a baseline, GPU phases, a regression verdict, float outputs compared for
real, a baseline history, and the optional batch sweep and per-layer profile."""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_trt.backends.layer_profile import LayerProfile, LayerTime
from pytest_trt.baselines.history import HistoryPoint
from pytest_trt.baselines.regression import RegressionVerdict, Verdict
from pytest_trt.baselines.subject import BuildFacts, ModelRef, TensorSignature, TestSubject, Workload
from pytest_trt.judge.accuracy import AccuracyResult, compare_output
from pytest_trt.judge.baseline_gate import BaselineNote
from pytest_trt.judge.records import BudgetOutcome, BudgetState, SweepPoint, TestRecord, TestStatus
from pytest_trt.specs import OutputTolerance
from pytest_trt.timing.measure import PerfClock, PerfResult
from pytest_trt.timing.stats import summarize


def subject(nodeid: str, backend: str = "tensorrt") -> TestSubject:
    return TestSubject(
        nodeid=nodeid, module=nodeid.split("::")[0], backend=backend, runtime_version="TensorRT 11.4.0",
        model=ModelRef("models/cnn.onnx", "3f2a" * 16), build=BuildFacts("fp16", {"x": (8, 3, 32, 32)}, {}),
        workload=Workload(inputs={"x": TensorSignature((8, 3, 32, 32), "float32")},
                          outputs={"y": TensorSignature((8, 10), "float32")}, batch=8, precision="fp16"),
    )


def perf(seed: int, scale: float = 1.0, n: int = 2000) -> PerfResult:
    rng = np.random.default_rng(seed)
    samples = list(scale * (1.0 + rng.gamma(3.0, 0.02, n)))
    phase = summarize(list(np.asarray(samples) * 0.8))
    return PerfResult(
        backend="tensorrt", clock=PerfClock.CUDA_EVENTS, mode={"clock": "cuda-events"}, batch=8, iterations=n,
        duration_s=sum(samples) / 1000, latency=summarize(samples), compute=phase,
        h2d=summarize(list(np.asarray(samples) * 0.12)), d2h=summarize(list(np.asarray(samples) * 0.05)),
        enqueue=None, throughput=8000.0 * n / sum(samples), samples_ms=samples,
    )


def accuracy(seed: int, noise: float) -> AccuracyResult:
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((8, 1000)).astype(np.float32)
    out = ref + rng.standard_normal(ref.shape).astype(np.float32) * noise
    outputs = [compare_output("logits", out, ref, OutputTolerance(rtol=1e-3, atol=1e-4)),
               compare_output("features", ref * 1.00001, ref, OutputTolerance(rtol=1e-3, atol=1e-5))]
    return AccuracyResult(all(o.passed for o in outputs), outputs)


def verdict(change: float, status: Verdict, baseline_ms: float) -> RegressionVerdict:
    return RegressionVerdict(
        status, change, change - 0.01, change + 0.01, 0.03, True, f"min {change * 100:+.1f}% vs baseline", "min",
        change, raw_change=change, bound=0.045, sessions=[change - 0.01, change + 0.01], baseline_ms=baseline_ms,
    )


def history(recordings: int, start_ms: float = 1.0, drift: float = 0.01) -> tuple[HistoryPoint, ...]:
    return tuple(
        HistoryPoint(start_ms * (1 + drift * i), start_ms * (1 + drift * i) * 1.05, f"2026-11-{i + 1:02d}T10:00:00Z",
                     f"{i:02d}c0ffee{i:02d}", 8000.0 / start_ms)
        for i in range(recordings)
    )


def sweep_point(batch: int) -> SweepPoint:
    ms = 0.4 + 0.1 * batch
    return SweepPoint(batch, summarize([ms] * 50), 1000 * batch / ms, iterations=50, duration_s=ms * 50 / 1000)


def layer_profile(count: int = 20) -> LayerProfile:
    layers = tuple(LayerTime(f"/backbone/conv{i}/Conv", "Conv", 0.3 / (i + 1)) for i in range(count))
    return LayerProfile("onnxruntime profiler (CPUExecutionProvider)", 10, sum(t.ms for t in layers), count, layers)


def failed_record(nodeid: str = "tests/test_models.py::test_cnn[fp16]", seed: int = 1) -> TestRecord:
    """A failed test with everything: over its p99 budget, regressed, an output off its tolerance."""
    measured = perf(seed, scale=1.3)
    return TestRecord(
        subject=subject(nodeid), status=TestStatus.FAILED, accuracy=accuracy(seed, noise=2e-3), perf=measured,
        budgets=(BudgetOutcome("tensorrt", "p99 <= 1.20 ms", BudgetState.FAILED, "p99 latency 1.5 ms > budget 1.20 ms",
                               max_latency_ms=1.2, percentile=99.0),),
        regression=verdict(0.12, Verdict.REGRESSED, min(measured.samples_ms) / 1.12),
        baseline_state=BaselineNote.COMPARED, failures=("perf (tensorrt): p99 latency 1.5 ms > budget 1.20 ms",),
        history=history(10),
        sweep=tuple(sweep_point(b) for b in (1, 2, 4, 8, 16, 32)),
        layers=layer_profile(),
    )


def passed_record(nodeid: str = "tests/test_models.py::test_mlp", seed: int = 2) -> TestRecord:
    """A test that passed its budget, its baseline and its accuracy, with three recordings."""
    measured = perf(seed, scale=0.5)
    return TestRecord(
        subject=subject(nodeid), status=TestStatus.PASSED, accuracy=accuracy(seed, noise=1e-6), perf=measured,
        budgets=(BudgetOutcome("tensorrt", "p50 <= 2.00 ms", BudgetState.PASSED, max_latency_ms=2.0, percentile=50.0),),
        regression=verdict(0.004, Verdict.UNCHANGED, min(measured.samples_ms)),
        baseline_state=BaselineNote.COMPARED, history=history(3, start_ms=0.5, drift=0.0),
    )


def many_records(count: int) -> list[Any]:
    """``count`` records, a fifth of them failed, for the size of a large run's report."""
    return [
        failed_record(f"tests/test_zoo.py::test_model[{i}]", seed=i) if i % 5 == 0
        else passed_record(f"tests/test_zoo.py::test_model[{i}]", seed=i)
        for i in range(count)
    ]
