"""The baselines/ store: files, entries, staleness vs changes, corrupt files, merge and prune."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_trt.baselines.comparability import changes, staleness
from pytest_trt.baselines.entry import BaselineInput as Record
from pytest_trt.baselines.entry import EntryModel, entry_from_measurement
from pytest_trt.baselines.hardware import hardware_class, module_file_name
from pytest_trt.baselines.regression import Doubt, Verdict
from pytest_trt.baselines.store import SCHEMA, BaselineFileError, BaselineStore
from pytest_trt.baselines.subject import BuildFacts, ModelRef, TensorSignature, TestSubject, Workload
from pytest_trt.judge.baseline_gate import BaselineMode, BaselineNote, BaselineOutcome, BaselinePolicy, judge_baseline
from pytest_trt.timing.measure import PerfResult
from pytest_trt.timing.stats import summarize

CPU = "cpu-amd-epyc-2c"


def make_record(
    samples_ms: Any = None,
    *,
    nodeid: str = "tests/test_m.py::test_a",
    model_hash: str = "3f2a" + "0" * 60,
    runtime: str = "onnxruntime 1.31.0",
    shape: tuple[int, ...] = (1, 256),
    precision: str = "fp32",
    errors: dict[str, float] | None = None,
    options: dict[str, Any] | None = None,
) -> Record:
    """A record as the plugin fills it, with a real PerfResult."""
    samples = list(np.random.default_rng(0).gamma(4.0, 0.05, 500) + 1.0 if samples_ms is None else samples_ms)
    perf = PerfResult(
        backend="onnxruntime", clock="host", mode={"clock": "host"}, batch=shape[0], iterations=len(samples),
        duration_s=sum(samples) / 1000, latency=summarize(samples), compute=None, h2d=None, d2h=None,
        enqueue=None, throughput=1000.0 * len(samples) / sum(samples), samples_ms=samples,
    )
    subject = TestSubject(
        nodeid=nodeid,
        module=nodeid.split("::")[0],
        backend="onnxruntime",
        runtime_version=runtime,
        model=ModelRef("models/mlp.onnx", model_hash),
        build=BuildFacts(precision, {"x": tuple(shape)}, options or {}),
        workload=Workload(
            inputs={"x": TensorSignature(tuple(shape), "float32")},
            outputs={"y": TensorSignature((shape[0], 10), "float32")},
            batch=shape[0],
            precision=precision,
        ),
    )
    return Record(subject, perf=perf, accuracy={"y": errors or {"max_abs": 1e-6, "mean_abs": 1e-7}})


def test_hardware_class_is_a_safe_stable_folder_name():
    gpu = {"gpu_name": "NVIDIA H100 80GB HBM3", "total_memory_gb": 79.6, "compute_capability": (9, 0),
           "sm_count": 132, "driver": "550.1", "clock_mhz": 1980}
    assert hardware_class(gpu) == "nvidia-h100-80gb-hbm3-80gb-cc9.0-132sm"
    # Driver and clocks are not hardware: they do not move the folder.
    assert hardware_class({**gpu, "driver": "560.2", "clock_mhz": 1500}) == hardware_class(gpu)
    assert hardware_class({"cpu_model": "AMD EPYC 7B13 (64-Core)", "cpu_count": 2}) == "cpu-amd-epyc-7b13-64-core-2c"
    with pytest.raises(ValueError, match="sm_count"):
        hardware_class({"gpu_name": "X", "total_memory_gb": 8, "compute_capability": "8.6"})
    with pytest.raises(ValueError, match="cpu_model"):
        hardware_class({})


def test_module_file_names_are_flat_and_refuse_escapes():
    assert module_file_name("tests/perf/test_x.py") == "tests__perf__test_x.json"
    for bad in ("/abs/test.py", "C:\\abs\\test.py", "C:/abs/test.py", "\\\\host\\share\\test.py", "../test.py",
                "a//b.py", ""):
        with pytest.raises(ValueError, match="relative path"):
            module_file_name(bad)


def test_round_trip_keeps_a_small_sorted_entry(tmp_path):
    record = make_record()
    entry = entry_from_measurement(record, commit="abc123", software={"driver": "550.1"})
    store = BaselineStore(tmp_path, CPU)
    store.stage(record.subject.module, record.subject.nodeid, entry)
    (path,) = store.write().written
    assert path == tmp_path / CPU / "tests__test_m.json"
    text = path.read_text()
    data = json.loads(text)
    assert data["schema"] == SCHEMA and data["module"] == "tests/test_m.py" and data["hardware"] == CPU
    assert text == json.dumps(data, sort_keys=True, indent=1) + "\n"  # sorted, stable formatting
    assert len(text) < 3000  # quantiles, not the 500 raw samples

    got = BaselineStore(tmp_path, CPU).lookup(record.subject.module, record.subject.nodeid)
    assert got == entry
    latency = got.latency_ms
    assert latency.n == 500
    assert latency.quantiles["p50"] == pytest.approx(np.median(record.perf.samples_ms), rel=1e-5)
    assert latency.floor == pytest.approx(min(record.perf.samples_ms), rel=1e-5)
    assert got.software == {"backend": "onnxruntime", "runtime": "onnxruntime 1.31.0", "driver": "550.1"}
    assert got.model == EntryModel("mlp.onnx", record.subject.model.content_hash)
    assert got.accuracy == {"y": {"max_abs": 1e-6, "mean_abs": 1e-7}}
    assert got.commit == "abc123" and got.recorded_at is not None and got.recorded_at.endswith("+00:00")
    assert got.workload is not None and got.workload.batch == 1 and got.workload.mode == {"clock": "host"}


def test_rewriting_the_same_entries_gives_the_same_bytes(tmp_path):
    record = make_record()
    entry = entry_from_measurement(record, None)
    store = BaselineStore(tmp_path, CPU)
    store.stage(record.subject.module, record.subject.nodeid, entry)
    (path,) = store.write().written
    first = path.read_bytes()
    store.stage(record.subject.module, record.subject.nodeid, entry)
    store.write()
    assert path.read_bytes() == first


def test_entry_needs_a_latency_sample():
    record = dataclasses.replace(make_record(), perf=None)
    with pytest.raises(ValueError, match="test_a: no latency sample"):
        entry_from_measurement(record, None)


def test_two_workers_writing_the_same_file_keep_both_entries(tmp_path):
    a, b = make_record(nodeid="tests/test_m.py::test_a"), make_record(nodeid="tests/test_m.py::test_b")
    first, second = BaselineStore(tmp_path, CPU), BaselineStore(tmp_path, CPU)
    assert first.lookup(a.subject.module, a.subject.nodeid) is None  # caches "no file" state before the other write
    second.stage(b.subject.module, b.subject.nodeid, entry_from_measurement(b, None))
    second.write()
    first.stage(a.subject.module, a.subject.nodeid, entry_from_measurement(a, None))
    first.write()
    assert BaselineStore(tmp_path, CPU).known() == {"tests/test_m.py": {a.subject.nodeid, b.subject.nodeid}}


def test_update_replaces_only_the_tests_that_ran(tmp_path):
    store = BaselineStore(tmp_path, CPU)
    for name in ("test_a", "test_b"):
        record = make_record(nodeid=f"tests/test_m.py::{name}")
        store.stage(record.subject.module, record.subject.nodeid, entry_from_measurement(record, "old"))
    store.write()
    again = make_record(nodeid="tests/test_m.py::test_a")
    store.stage(again.subject.module, again.subject.nodeid, entry_from_measurement(again, "new"))
    store.write()
    fresh = BaselineStore(tmp_path, CPU)
    assert fresh.lookup("tests/test_m.py", "tests/test_m.py::test_a").commit == "new"
    assert fresh.lookup("tests/test_m.py", "tests/test_m.py::test_b").commit == "old"


def test_a_corrupt_file_is_named_and_not_overwritten_without_force(tmp_path):
    path = tmp_path / CPU / "tests__test_m.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": 1, "tests": {')
    store = BaselineStore(tmp_path, CPU)
    with pytest.raises(BaselineFileError, match=r"tests__test_m\.json: not valid JSON \(line 1"):
        store.lookup("tests/test_m.py", "tests/test_m.py::test_a")
    record = make_record()
    store.stage(record.subject.module, record.subject.nodeid, entry_from_measurement(record, None))
    outcome = store.write()
    assert outcome.written == [] and outcome.recorded == 0
    (problem,) = outcome.problems
    assert problem.startswith(f"baseline file {path}: not valid JSON (line 1")
    assert problem.endswith(
        "left as it is, 1 test(s) not recorded (tests/test_m.py::test_a): fix or remove it, or pass "
        "--trt-replace-unreadable-baselines to replace it with this run's entries"
    )
    assert path.read_text() == '{"schema": 1, "tests": {'
    store.stage(record.subject.module, record.subject.nodeid, entry_from_measurement(record, None))
    outcome = store.write(replace_unreadable=True)
    assert outcome.written == [path] and outcome.problems == []
    (replaced,) = outcome.replaced
    assert "not valid JSON" in replaced and replaced.endswith(
        "replaced (--trt-replace-unreadable-baselines) by this run's 1 entry"
    )
    assert BaselineStore(tmp_path, CPU).known() == {"tests/test_m.py": {record.subject.nodeid}}
    assert [p.name for p in path.parent.iterdir()] == ["tests__test_m.json"]  # no temp files left


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"schema": 1}', "expected an object with a 'tests' object"),
        ('{"tests": {}}', "missing or invalid 'schema'"),
        ('{"schema": 99, "tests": {}}', "schema 99 is newer"),
        ('{"schema": 1, "tests": {"t::a": 3}}', "entry for 't::a' is not an object"),
    ],
)
def test_malformed_files_say_what_is_wrong(tmp_path, content, problem):
    path = tmp_path / CPU / "tests__test_m.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(BaselineFileError, match=problem):
        BaselineStore(tmp_path, CPU).lookup("tests/test_m.py", "t::a")


def test_unused_only_judges_collected_modules_and_prune_removes_them(tmp_path):
    store = BaselineStore(tmp_path, CPU)
    for nodeid in ("tests/test_m.py::test_a", "tests/test_m.py::test_gone", "tests/test_other.py::test_x"):
        record = make_record(nodeid=nodeid)
        store.stage(record.subject.module, nodeid, entry_from_measurement(record, None))
    store.write()
    # This run collected only test_m.py, which still has test_a.
    unused = store.unused({"tests/test_m.py": {"tests/test_m.py::test_a"}})
    assert unused == {"tests/test_m.py": {"tests/test_m.py::test_gone"}}
    assert store.prune(unused) == 1
    assert BaselineStore(tmp_path, CPU).known() == {
        "tests/test_m.py": {"tests/test_m.py::test_a"},
        "tests/test_other.py": {"tests/test_other.py::test_x"},
    }
    # A module whose last baseline goes loses its file.
    assert store.prune({"tests/test_other.py": {"tests/test_other.py::test_x"}}) == 1
    assert not (tmp_path / CPU / "tests__test_other.json").exists()


def test_other_hardware_classes_are_separate(tmp_path):
    record = make_record()
    store = BaselineStore(tmp_path, CPU)
    store.stage(record.subject.module, record.subject.nodeid, entry_from_measurement(record, None))
    store.write()
    other = BaselineStore(tmp_path, "nvidia-h100-80gb-cc9.0-132sm")
    assert other.lookup(record.subject.module, record.subject.nodeid) is None and other.known() == {}
    with pytest.raises(ValueError, match="hardware_class"):
        BaselineStore(tmp_path, "Not A/Slug")


def test_workload_changes_make_a_baseline_stale():
    entry = entry_from_measurement(make_record(), None)
    assert staleness(entry, make_record()) is None
    reason = staleness(entry, make_record(shape=(8, 256)))
    assert reason is not None and reason.startswith("workload changed: ")
    assert "batch 1 -> 8" in reason and "inputs.x.shape [1, 256] -> [8, 256]" in reason
    assert "precision fp32 -> fp16" in staleness(entry, make_record(precision="fp16"))
    assert staleness(dataclasses.replace(entry, workload=None), make_record()) == "baseline entry has no workload"


def test_model_and_runtime_changes_are_reported_not_stale():
    entry = entry_from_measurement(make_record(), None, software={"driver": "550.1"})
    newer = make_record(model_hash="91c0" + "1" * 60, runtime="onnxruntime 1.32.0",
                        options={"graph_optimization_level": "basic"})
    assert staleness(entry, newer) is None
    assert changes(entry, newer, software={"driver": "560.2"}) == [
        "model 3f2a0000.. -> 91c01111..",
        "onnxruntime 1.31.0 -> 1.32.0",
        "driver 550.1 -> 560.2",
        'build options {} -> {"graph_optimization_level": "basic"}',
    ]
    assert changes(entry, make_record(), software={"driver": "550.1"}) == []


def _compared_with_a_faster_baseline(tmp_path: Path, mode: BaselineMode, **changed: Any) -> BaselineOutcome:
    """A test compared with a baseline recorded twice as fast, its record made with ``changed``
    (make_record's keywords; ``backend`` replaces the backend of both)."""
    backend = changed.pop("backend", "onnxruntime")

    def on_backend(record: Record) -> Record:
        subject = dataclasses.replace(record.subject, backend=backend)
        return dataclasses.replace(record, subject=subject, perf=dataclasses.replace(record.perf, backend=backend))

    recorded = on_backend(make_record(np.linspace(0.5, 0.6, 300)))
    store = BaselineStore(tmp_path, CPU)
    store.stage(recorded.subject.module, recorded.subject.nodeid, entry_from_measurement(recorded, None))
    store.write()
    slower = on_backend(make_record(np.linspace(1.0, 1.2, 300), **changed))
    return judge_baseline(BaselineStore(tmp_path, CPU), slower, lambda: slower.perf,
                          BaselinePolicy(mode=mode, update=False, threshold=0.03))


def test_a_slower_floor_with_nothing_recorded_changed_is_inconclusive_not_regressed(tmp_path):
    outcome = _compared_with_a_faster_baseline(tmp_path, BaselineMode.COMPARE)
    assert outcome.state is BaselineNote.COMPARED and not outcome.failures
    assert outcome.verdict is not None and outcome.verdict.status is Verdict.INCONCLUSIVE
    assert outcome.verdict.doubt is Doubt.NOTHING_CHANGED
    (line,) = [w for w in outcome.warnings if w.startswith("regression check inconclusive (onnxruntime): min +100.0%")]
    assert "; nothing the baseline records changed since it was recorded (model, runtime, driver, build options, " in line
    strict = _compared_with_a_faster_baseline(tmp_path / "strict", BaselineMode.STRICT)
    assert len(strict.failures) == 1 and strict.failures[0].endswith("(--trt-baseline=strict)")


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"runtime": "onnxruntime 1.32.0"}, "(changed since the baseline: onnxruntime 1.31.0 -> 1.32.0)"),
        ({"model_hash": "91c0" + "1" * 60}, "(changed since the baseline: model 3f2a0000.. -> 91c01111..)"),
        ({"options": {"intra_op_threads": 1}}, '(changed since the baseline: build options {} -> {"intra_op_threads": 1})'),
        # TensorRT picks tactics by timing them at each build: a rebuilt engine is not "nothing changed".
        ({"backend": "tensorrt"}, ""),
    ],
)
def test_a_slower_floor_after_a_recorded_change_or_on_a_tactic_timing_backend_is_a_regression(tmp_path, changed, named):
    outcome = _compared_with_a_faster_baseline(tmp_path, BaselineMode.COMPARE, **changed)
    assert outcome.verdict is not None and outcome.verdict.status is Verdict.REGRESSED, outcome.verdict
    (failure,) = outcome.failures
    assert failure.startswith("regression (") and failure.endswith(named)


@pytest.mark.parametrize("update", [False, True])
def test_a_test_file_outside_the_rootdir_fails_with_the_likely_cause(tmp_path, update):
    # pytest picks the rootdir from path arguments, so "--trt-baseline-dir /elsewhere" (with a
    # space) can leave the test file outside it, where the store has no name for its module.
    record = make_record()
    record = dataclasses.replace(record, subject=dataclasses.replace(record.subject, module="/work/project/tests/test_m.py"))
    store = BaselineStore(tmp_path, CPU)
    outcome = judge_baseline(store, record, lambda: pytest.fail("nothing is measured for it"),
                             BaselinePolicy(mode=BaselineMode.COMPARE, update=update, threshold=0.1))
    assert outcome.failures == ((
        "baseline: the test file /work/project/tests/test_m.py is outside pytest's rootdir, so it has no name "
        "in the baseline store. pytest may have chosen the rootdir from the value of a path option written "
        "after a space: write --trt-baseline-dir=PATH, with '=', or pass --rootdir"
    ),)
    assert outcome.state is BaselineNote.OUTSIDE_ROOTDIR and outcome.note == "test file outside the rootdir"
    assert outcome.staged is None and not store.staged


def test_a_policy_takes_its_mode_as_an_enum_or_its_value():
    assert BaselinePolicy(mode="strict", update=False, threshold=0.1).mode is BaselineMode.STRICT
    assert BaselinePolicy(mode=BaselineMode.OFF, update=False, threshold=0.1).mode == "off"
    with pytest.raises(ValueError, match="'sometimes' is not a valid BaselineMode"):
        BaselinePolicy(mode="sometimes", update=False, threshold=0.1)
