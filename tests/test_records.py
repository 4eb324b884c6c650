"""TestRecord to JSON and back: the JSON report's entries (schema 3) and the xdist message both
rebuild the same typed record, every optional part included."""

from __future__ import annotations

import json
from dataclasses import replace

from pytest_trt.baselines.regression import RegressionVerdict, Verdict
from pytest_trt.baselines.subject import (
    BuildFacts,
    InputFacts,
    InputRange,
    InputSource,
    ModelRef,
    TensorSignature,
    TestSubject,
    Workload,
)
from pytest_trt.judge.accuracy import AccuracyResult, OutputReport
from pytest_trt.judge.baseline_gate import BaselineNote
from pytest_trt.judge.output_errors import OutputStats
from pytest_trt.judge.records import BudgetOutcome, BudgetState, TestRecord, TestStatus
from pytest_trt.reports.ci import write_json
from pytest_trt.reports.notes import SummaryNote
from pytest_trt.run.session import not_written, summary_notes
from pytest_trt.run.xdist import WorkerReport
from pytest_trt.serde import dumps
from pytest_trt.store.cache import CacheStats
from pytest_trt.timing.gpu_clock import ClockSource, GpuClock, Settled
from pytest_trt.timing.measure import PerfClock, PerfResult
from pytest_trt.timing.stats import summarize
from pytest_trt.types import GpuPlacement

SAMPLES = [1.0 + 0.01 * (i % 17) for i in range(60)]  # 60 samples: short of a p99's 100

# The keys of a JSON report entry (schema 3), which users' tools read.
ENTRY_KEYS = {
    "nodeid", "module", "backend", "runtime_version", "model", "build", "workload", "engine", "feed",
    "accuracy", "perf", "budgets", "regression", "baseline_note", "baseline_state", "status", "warnings",
    "doubts", "failures", "step", "at_setup", "history", "gpu", "layers",
}
PERF_KEYS = {
    "backend", "clock", "mode", "batch", "iterations", "duration_s", "latency", "compute", "h2d", "d2h",
    "enqueue", "throughput", "samples_ms", "warnings", "probe_ms", "fastest_probe_ms", "after_probe",
    "budget_samples", "short_percentiles", "sample_notes", "lock_wait_s", "gpu_clock", "contention",
}


def full_record() -> TestRecord:
    """A record with every optional part filled, its numbers finite (a NaN reads back as NaN,
    which equals nothing)."""
    subject = TestSubject(
        nodeid="tests/test_m.py::test_cnn[fp16]",
        module="tests/test_m.py",
        backend="tensorrt",
        runtime_version="TensorRT 11.4.0",
        model=ModelRef("models/cnn.onnx", "3f2a" * 16),
        build=BuildFacts("fp16", {"image": (8, 3, 32, 32)}, {"workspace_mb": 256}),
        workload=Workload(
            inputs={"image": TensorSignature((None, 3, 32, 32), "float32"), "ids": TensorSignature((8,), "int64")},
            outputs={"logits": TensorSignature((8, 10), "float32")},
            batch=8,
            precision="fp16",
        ),
        engine={"how": "built", "seconds": 12.5, "cache": {"outcome": "miss"}, "export": None, "quantization": None},
        feed={
            "image": InputFacts(InputSource.GENERATED, range=InputRange.DEFAULT, min=-0.99, max=0.98),
            "ids": InputFacts(InputSource.FILE, file="inputs.npz", min=0, max=9),
        },
    )
    perf = PerfResult(
        backend="tensorrt", clock=PerfClock.CUDA_EVENTS, mode={"clock": "cuda-events", "cuda_graph": True},
        batch=8, iterations=len(SAMPLES), duration_s=0.07, latency=summarize(SAMPLES[1:]),
        compute=summarize(SAMPLES), h2d=summarize([0.1, 0.2]), d2h=summarize([0.05, 0.06]), enqueue=summarize([0.3]),
        throughput=6857.1, samples_ms=SAMPLES, warnings=["transfer-bound: copies dominate"], probe_ms=[0.5, 0.6],
        fastest_probe_ms=0.5, after_probe=[0], lock_wait_s=0.25,
        gpu_clock=GpuClock(ClockSource.NVML, Settled.CLOCK_AT_MAX, 410.0, 1980.0, 1965.0, 1950.0, 1980.0),
    )
    accuracy = AccuracyResult(False, [
        OutputReport("logits", False, "output 'logits': 2 of 80 elements outside\n  worst |d|=0.41",
                     OutputStats(n_total=80, n_bad=2, frac_bad=0.025, max_abs=0.41, cosine=0.99), [3, 7]),
        OutputReport("aux", True, stats=OutputStats(max_abs=2e-7)),
    ], ["batch consistency: row 3 differs"])
    verdict = RegressionVerdict(
        Verdict.REGRESSED, 0.15, 0.11, 0.175, 0.10, True, "min +14.2% vs baseline", "min", 0.142,
        True, 0.2, 0.05, 0.01, 0.03,
    )
    return TestRecord(
        subject=subject,
        status=TestStatus.FAILED,
        accuracy=accuracy,
        perf=perf,
        budgets=(
            BudgetOutcome("tensorrt", "p99 <= 1.00 ms", BudgetState.FAILED, "p99 latency 1.16 ms > budget 1.00 ms"),
            BudgetOutcome("onnxruntime", "p50 <= 9 ms", BudgetState.NOT_ENFORCED, "not enforced (running tensorrt)"),
        ),
        regression=verdict,
        baseline_note="model 3f2a.. -> 91c0..",
        baseline_state=BaselineNote.CHANGED,
        warnings=("accuracy drift: output 'logits' max_abs 0.41 vs baseline 0.1",),
        doubts=("p99 1.16 ms is too close to its budget 1.00 ms to judge",),
        failures=("perf (tensorrt): p99 latency 1.16 ms > budget 1.00 ms", "accuracy: output 'logits': bad"),
        gpu=GpuPlacement(1, "NVIDIA H100 80GB HBM3", "ab" * 16, "gw3"),
    )


def test_a_json_report_entry_reads_back_as_the_same_record(tmp_path):
    record = full_record()
    write_json(tmp_path / "report.json", [record], {})
    (entry,) = json.loads((tmp_path / "report.json").read_text())["tests"]
    assert TestRecord.from_dict(entry) == record
    # The computed keys follow from the fields, and are written again as they were.
    assert TestRecord.from_dict(entry).as_dict() == entry


def test_the_gpu_a_test_ran_on_is_in_its_entry_and_older_entries_without_it_still_read():
    entry = json.loads(dumps(full_record().as_dict()))
    assert entry["gpu"] == {"index": 1, "name": "NVIDIA H100 80GB HBM3", "uuid": "ab" * 16, "worker": "gw3"}
    del entry["gpu"]  # an entry written before records named their GPU
    assert TestRecord.from_dict(entry).gpu is None


def test_a_json_report_entry_keeps_the_schema_4_shape():
    entry = json.loads(dumps(full_record().as_dict()))
    assert set(entry) == ENTRY_KEYS and set(entry["perf"]) == PERF_KEYS
    assert entry["status"] == "failed" and entry["baseline_state"] == "changed"
    assert entry["budgets"][0] == {
        "backend": "tensorrt", "description": "p99 <= 1.00 ms", "state": "failed", "enforced": True,
        "passed": False, "message": "p99 latency 1.16 ms > budget 1.00 ms",
        "max_latency_ms": None, "percentile": None, "min_throughput": None,
    }
    assert entry["budgets"][1]["enforced"] is False and entry["budgets"][1]["passed"] is None
    assert entry["perf"]["clock"] == "cuda-events" and entry["perf"]["gpu_clock"]["settled"] == "clock-at-max"
    assert entry["perf"]["budget_samples"] == 59 and entry["perf"]["short_percentiles"] == ["p99"]
    assert entry["regression"]["status"] == "regressed"
    # A feed's facts only where they apply: a file input has no range.
    assert entry["feed"]["ids"] == {"source": "file", "file": "inputs.npz", "min": 0, "max": 9}
    assert entry["workload"]["inputs"]["image"]["shape"] == [None, 3, 32, 32]
    assert entry["accuracy"]["outputs"][0]["stats"]["n_total"] == 80


def test_non_finite_statistics_are_null_in_the_report_and_none_when_read_back():
    record = full_record()
    inf_stats = AccuracyResult(True, [OutputReport("y", True, stats=OutputStats(n_total=4, min_rtol=float("inf")))])
    entry = json.loads(dumps(replace(record, accuracy=inf_stats).as_dict()))
    written = entry["accuracy"]["outputs"][0]["stats"]
    assert written["min_rtol"] is None and written["n_total"] == 4 and written["cosine"] is None
    stats = TestRecord.from_dict(entry).accuracy.outputs[0].stats
    assert stats.min_rtol is None and stats.n_total == 4 and isinstance(stats.n_total, int)


def test_an_xdist_worker_report_rebuilds_typed_records():
    record = full_record()
    sent = WorkerReport(
        records=[record],
        staged_baselines={"tests/test_m.py": {record.nodeid: {"latency_ms": {"n": 60}}}},
        measured={"tests/test_m.py": {record.nodeid, "tests/test_m.py::test_other"}},
        cache=CacheStats(root="/cache", hits=2, builds=1, build_s=12.5),
    )
    received = WorkerReport.from_json(sent.to_json())
    assert received == sent
    assert isinstance(received.records[0], TestRecord) and received.records[0].perf.clock is PerfClock.CUDA_EVENTS


def test_a_baseline_not_written_is_said_so_in_the_record():
    record = not_written(full_record())
    assert record.baseline_state is BaselineNote.NOT_RECORDED
    assert record.baseline_note.startswith("baseline not recorded")
    assert record.perf == full_record().perf


def test_session_end_lines_become_notes_with_their_listed_items():
    lines = [
        "baselines recorded for 2 test(s) in 1 file(s) under baselines/cpu",
        "unused baselines (their tests are gone or no longer measured; remove with --trt-prune-baselines):",
        "  tests/test_a.py::test_gone",
        "  tests/test_b.py::test_gone",
        SummaryNote("baselines pruned: 0 unused"),
    ]
    assert summary_notes(lines) == [
        SummaryNote("baselines recorded for 2 test(s) in 1 file(s) under baselines/cpu"),
        SummaryNote(
            "unused baselines (their tests are gone or no longer measured; remove with --trt-prune-baselines):",
            ("tests/test_a.py::test_gone", "tests/test_b.py::test_gone"),
        ),
        SummaryNote("baselines pruned: 0 unused"),
    ]


def test_a_record_with_layers_and_a_diagnosis_crosses_to_the_controller_and_the_report(tmp_path):
    from pytest_trt.backends.layer_profile import LayerProfile, LayerTime
    from pytest_trt.judge.diagnosis import Diagnosis, DiagnosisState, ErrorOrigin, TensorError

    layers = LayerProfile("onnxruntime profiler (CPUExecutionProvider)", 10, 0.5, 3,
                          (LayerTime("enc/MatMul", "MatMul", 0.4, "CPUExecutionProvider", "8x256->8x64"),))
    origin = ErrorOrigin("ln_pow", "Pow", "squared", TensorError(1.0, 3.9e5, 0.25, False), 6.5e-4)
    diagnosis = Diagnosis(DiagnosisState.FIXED, "fp16", origin, ("ln_pow", "ln_variance"), (("ln_pow",), ("ln_variance",)), 0.6)
    record = full_record()
    record = replace(record, layers=layers, accuracy=replace(record.accuracy, diagnosis=diagnosis))
    received = WorkerReport.from_json(WorkerReport(records=[record]).to_json()).records[0]
    assert received == record
    write_json(tmp_path / "report.json", [record], {})
    (entry,) = json.loads((tmp_path / "report.json").read_text())["tests"]
    assert entry["layers"]["layers"][0]["name"] == "enc/MatMul"
    assert entry["accuracy"]["diagnosis"]["keep_fp32_nodes"] == ["ln_pow", "ln_variance"]
    assert TestRecord.from_dict(entry) == record
