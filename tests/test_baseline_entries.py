"""Every number of a stored baseline entry is checked before a comparison reads it: an invalid
entry fails its test with the file, the test id and the field, never a traceback or a pass."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections.abc import Callable

import pytest
from test_baseline import make_record
from test_baseline_plugin import MEASURE, baseline_files, slower_mlp, write_tests

from pytest_trt.baselines.entry import BaselineEntry, entry_from_measurement
from pytest_trt.baselines.regression import MAX_PROBE_FACTOR, Measurement, probe_floor_problem
from pytest_trt.baselines.store import BaselineStore
from pytest_trt.baselines.validation import BaselineEntryError, validate_entry

CPU = "cpu-amd-epyc-2c"


def probed_entry() -> dict:
    """A recorded entry with probe times, as the baseline file holds it."""
    record = make_record()
    record = dataclasses.replace(record, perf=dataclasses.replace(record.perf, probe_ms=[0.1 + 0.001 * i for i in range(40)]))
    return entry_from_measurement(record, None).to_file()


def changed(path: str, value: object) -> Callable[[dict], None]:
    """Set the dotted ``path`` of an entry to ``value`` (or delete it for ``...``)."""
    *parents, last = path.split(".")

    def change(entry: dict) -> None:
        target = entry
        for key in parents:
            target = target[key]
        if value is ...:
            del target[last]
        else:
            target[last] = value

    return change


def all_probe_quantiles(value: float) -> Callable[[dict], None]:
    def change(entry: dict) -> None:
        entry["host_probe_ms"]["quantiles"] = {k: value for k in entry["host_probe_ms"]["quantiles"]}

    return change


def test_a_recorded_entry_is_valid():
    assert validate_entry(probed_entry()) == []
    assert validate_entry(entry_from_measurement(make_record(), None).to_file()) == []  # no probe: fine


@pytest.mark.parametrize(
    ("change", "problems"),
    [
        (all_probe_quantiles(0.0), [f"host_probe_ms.quantiles.{k} is 0, must be > 0" for k in (
            "p0", "p0.5", "p1", "p2", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99", "p100")]),
        (changed("host_probe_ms.quantiles.p0", -0.1), ["host_probe_ms.quantiles.p0 is -0.1, must be > 0"]),
        (changed("host_probe_ms.n", 0), ["host_probe_ms.n is 0, must be a positive integer"]),
        (changed("latency_ms", ...), ["latency_ms is missing"]),
        (changed("latency_ms", [1, 2]), ["latency_ms is [1, 2], must be an object"]),
        (changed("latency_ms.quantiles", ...), ["latency_ms.quantiles is None, must be an object"]),
        (changed("latency_ms.quantiles.p0", ...), ["latency_ms.quantiles.p0 is missing (the floor that is compared)"]),
        (changed("latency_ms.quantiles.p50", math.nan), ["latency_ms.quantiles.p50 is nan, must be finite"]),
        (changed("latency_ms.quantiles.p99", math.inf), [
            "latency_ms.quantiles.p99 is inf, must be finite"]),
        (changed("latency_ms.quantiles.p50", "1.2"), ["latency_ms.quantiles.p50 is '1.2', must be a number"]),
        (changed("latency_ms.quantiles.p50", True), ["latency_ms.quantiles.p50 is True, must be a number"]),
        (changed("latency_ms.quantiles.p0", -1.0), ["latency_ms.quantiles.p0 is -1, must be >= 0"]),
        (changed("latency_ms.quantiles.p50", 0.5), [
            f"latency_ms.quantiles.p50 is 0.5, below p25 ({probed_entry()['latency_ms']['quantiles']['p25']:g}): "
            "quantiles must not decrease with the percentile",
        ]),
        (changed("latency_ms.quantiles.median", 1.2), [
            "latency_ms.quantiles has the key 'median', not a percentile like 'p50'"]),
        (changed("latency_ms.quantiles.p101", 9.0), [
            "latency_ms.quantiles has the key 'p101', not a percentile like 'p50'"]),
        (changed("latency_ms.quantiles", {"p0": 1.0}), [
            "latency_ms.quantiles has 1 percentile(s), needs at least two"]),
        (changed("latency_ms.n", 0), ["latency_ms.n is 0, must be a positive integer"]),
        (changed("latency_ms.n", 2.5), ["latency_ms.n is 2.5, must be a positive integer"]),
        (changed("latency_ms.n", "500"), ["latency_ms.n is '500', must be a positive integer"]),
        (changed("latency_ms.mean", -3), ["latency_ms.mean is -3, must be >= 0"]),
        (changed("throughput_qps", -1.0), ["throughput_qps is -1, must be >= 0"]),
        (changed("throughput_qps", math.nan), ["throughput_qps is nan, must be finite"]),
        (changed("device_memory_bytes", -1), ["device_memory_bytes is -1, must be a whole number of bytes >= 0"]),
        (changed("device_memory_bytes", 2.5e8), [
            "device_memory_bytes is 250000000.0, must be a whole number of bytes >= 0"]),
        (changed("accuracy.y.max_abs", -1e-6), ["accuracy.y.max_abs is -1e-06, must be >= 0"]),
        (changed("accuracy.y", 3), ["accuracy.y is 3, must be an object"]),
        (changed("model", "mlp.onnx"), ["model is 'mlp.onnx', must be an object"]),
    ],
)
def test_invalid_numbers_are_named_by_their_field(change, problems):
    entry = copy.deepcopy(probed_entry())
    change(entry)
    assert validate_entry(entry) == problems


def test_a_non_object_entry_is_invalid():
    assert validate_entry(3) == ["the entry is 3, must be an object"]


def test_lookup_names_the_file_the_test_and_at_most_three_fields(tmp_path):
    entry = probed_entry()
    store = BaselineStore(tmp_path, CPU)
    store.stage("tests/t.py", "tests/t.py::test_a", BaselineEntry.from_file(entry))
    (path,) = store.write().written
    data = json.loads(path.read_text())
    all_probe_quantiles(0.0)(data["tests"]["tests/t.py::test_a"])
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineEntryError) as caught:
        BaselineStore(tmp_path, CPU).lookup("tests/t.py", "tests/t.py::test_a")
    assert str(caught.value) == (
        f"baseline file {path}: entry 'tests/t.py::test_a': host_probe_ms.quantiles.p0 is 0, must be > 0; "
        "host_probe_ms.quantiles.p0.5 is 0, must be > 0; host_probe_ms.quantiles.p1 is 0, must be > 0; and 10 more"
    )


def test_a_probe_floor_far_from_this_runs_is_not_divided_by():
    entry = BaselineEntry.from_file(probed_entry())
    assert probe_floor_problem(entry, Measurement([1.0] * 50, [0.1] * 50)) is None
    assert probe_floor_problem(entry, Measurement([1.0] * 50, [0.1 * MAX_PROBE_FACTOR * 0.99] * 50)) is None
    assert probe_floor_problem(entry, Measurement([1.0] * 50)) is None  # nothing to divide by
    probe = entry.host_probe_ms
    tiny = dataclasses.replace(
        entry, host_probe_ms=dataclasses.replace(probe, quantiles={k: v * 1e-5 for k, v in probe.quantiles.items()})
    )
    assert probe_floor_problem(tiny, Measurement([1.0] * 50, [0.1] * 50)) == (
        "host_probe_ms.quantiles.p0 is 1e-06 ms, this run's probe floor 0.1 ms (1e+05x apart): on one hardware "
        "class a host speed state moves it far less than 3x, so the stored probe times are not this hardware's "
        "and dividing by them would hide a slowdown"
    )
    assert "apart" in probe_floor_problem(entry, Measurement([1.0] * 50, [0.1 / MAX_PROBE_FACTOR / 1.01] * 50))


# ---- as users meet it ---------------------------------------------------------------------------


def _record_then_edit(trt_pytester, edit: Callable[[dict], None]):
    write_tests(trt_pytester, tests=(TEST_A_ONLY,))
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=1)
    (path,) = baseline_files(trt_pytester.path)
    data = json.loads(path.read_text())
    edit(data["tests"]["test_perf.py::test_a"])
    path.write_text(json.dumps(data))
    return path


TEST_A_ONLY = """
@pytest.mark.trt_model("mlp.onnx", shapes={{"x": {shape}}}, intra_op_threads=1)
@pytest.mark.trt_perf(backend="onnxruntime")
def test_a(trt_engine):
    pass
"""


def test_a_zero_probe_floor_fails_the_test_instead_of_hiding_a_slowdown(trt_pytester):
    # Before the check, this +800% model passed as "unchanged, min -100.0% ... host ran inf% slower".
    path = _record_then_edit(trt_pytester, all_probe_quantiles(0.0))
    (trt_pytester.path / "mlp.onnx").write_bytes(slower_mlp().SerializeToString())
    result = trt_pytester.run(*MEASURE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"*baseline: baseline file {path}: entry 'test_perf.py::test_a': host_probe_ms.quantiles.p0 is 0, must be > 0; "
        "host_probe_ms.quantiles.p0.5 is 0, must be > 0; host_probe_ms.quantiles.p1 is 0, must be > 0; and 10 more; "
        "not compared: fix the entry, or re-record it with --trt-update-baselines",
        "baseline: test_perf.py::test_a: baseline entry invalid",
    ])
    assert "Traceback" not in result.stdout.str() and "inf%" not in result.stdout.str()


def test_a_tiny_probe_floor_fails_the_test(trt_pytester):
    def tiny(entry: dict) -> None:
        probe = entry["host_probe_ms"]
        probe["quantiles"] = {k: v * 1e-4 for k, v in probe["quantiles"].items()}
        probe["mean"] *= 1e-4

    path = _record_then_edit(trt_pytester, tiny)
    result = trt_pytester.run(*MEASURE)
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([
        rf".*baseline: baseline file {re.escape(str(path))}: entry 'test_perf.py::test_a': "
        r"host_probe_ms.quantiles.p0 is \S+ ms, this run's probe floor \S+ ms \(\S+x apart\): on one hardware "
        r"class a host speed state moves it far less than 3x, so the stored probe times are not this hardware's "
        r"and dividing by them would hide a slowdown; not compared: re-record it with --trt-update-baselines",
    ])


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (changed("latency_ms.quantiles.p50", math.nan), "latency_ms.quantiles.p50 is nan, must be finite"),
        (changed("latency_ms.quantiles.p0", -1.0), "latency_ms.quantiles.p0 is -1, must be >= 0"),
        (changed("latency_ms.quantiles.p99", 0.0), "latency_ms.quantiles.p99 is 0, below p95 (*): quantiles must "
                                                    "not decrease with the percentile"),
        (changed("latency_ms.quantiles.p0", ...), "latency_ms.quantiles.p0 is missing (the floor that is compared)"),
        (changed("latency_ms.n", 0), "latency_ms.n is 0, must be a positive integer"),
        (changed("latency_ms", ...), "latency_ms is missing"),
    ],
)
def test_an_invalid_latency_entry_fails_its_test_naming_the_field(trt_pytester, edit, problem):
    path = _record_then_edit(trt_pytester, edit)
    result = trt_pytester.run(*MEASURE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"*baseline: baseline file {path}: entry 'test_perf.py::test_a': {problem}; not compared*",
    ])
    assert "Traceback" not in result.stdout.str()
    # Re-recording replaces the invalid entry: the file itself is readable.
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=1)
    trt_pytester.run(*MEASURE).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (changed("build.precision", 3), "build.precision: expected str, got 3"),
        (changed("workload.batch", "8"), "workload.batch: expected a whole number, got '8'"),
        (changed("software.driver", 550), "software.driver: expected str, got 550"),
    ],
)
def test_a_value_of_the_wrong_type_is_named_by_its_field(tmp_path, change, problem):
    data = probed_entry()
    change(data)
    path = tmp_path / CPU / "tests__t.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema": 1, "hardware": CPU, "module": "tests/t.py", "tests": {"tests/t.py::a": data}}))
    with pytest.raises(BaselineEntryError) as caught:
        BaselineStore(tmp_path, CPU).lookup("tests/t.py", "tests/t.py::a")
    assert str(caught.value) == f"baseline file {path}: entry 'tests/t.py::a': {problem}"


# ---- numbers that are each valid but do not belong together (a hand-edited entry) ---------------


def _scaled(key: str, factor: float, *, mean: bool = True) -> Callable[[dict], None]:
    def change(entry: dict) -> None:
        summary = entry[key]
        summary["quantiles"] = {k: v * factor for k, v in summary["quantiles"].items()}
        if mean:
            summary["mean"] *= factor

    return change


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        # The edit: latency scaled 3.4x, throughput left alone.
        (_scaled("latency_ms", 3.4), "throughput_qps is *, 3.4x of the * that batch 1 per latency_ms.mean (* ms) "
                                     "gives: the latency and the throughput were not measured together"),
        (_scaled("latency_ms", 0.25), "throughput_qps is *, 1/4.0 of the * that batch 1 per latency_ms.mean *"),
        (_scaled("latency_ms", 3.4, mean=False), "latency_ms.mean is *, outside its quantiles (* to *)*"),
        (_scaled("host_probe_ms", 0.34, mean=False), "host_probe_ms.mean is *, outside its quantiles (* to *)*"),
        (changed("host_probe_ms.n", 1), "host_probe_ms.n is 1, but its quantiles spread from * to *: one sample has "
                                        "one value"),
        (changed("latency_ms.n", 1), "latency_ms.n is 1, but its quantiles spread *"),
    ],
)
def test_numbers_that_do_not_belong_together_make_the_entry_invalid(change, problem):
    import fnmatch

    entry = copy.deepcopy(probed_entry())
    change(entry)
    problems = validate_entry(entry)
    assert len(problems) == 1 and fnmatch.fnmatch(problems[0], problem), problems


def test_throughput_below_latency_is_sound_on_a_gpu_clock():
    # A GPU-clocked entry's iterations may idle between them (a tiny kernel, a slow enqueue):
    # throughput far below batch / latency is what such models measure, not an edit.
    entry = copy.deepcopy(probed_entry())
    entry["workload"]["clock"] = "cuda-events"
    entry["throughput_qps"] /= 10
    assert validate_entry(entry) == []
    entry["throughput_qps"] *= 40  # but never above it: iterations do not overlap on the stream
    assert len(validate_entry(entry)) == 1


def test_a_summary_of_one_sample_is_valid():
    entry = copy.deepcopy(probed_entry())
    value = entry["latency_ms"]["quantiles"]["p50"]
    entry["latency_ms"] = {"n": 1, "mean": value, "quantiles": {k: value for k in entry["latency_ms"]["quantiles"]}}
    entry["throughput_qps"] = 1000.0 / value
    assert validate_entry(entry) == []


def test_a_hand_scaled_latency_entry_is_invalid_and_not_compared(trt_pytester):
    path = _record_then_edit(trt_pytester, _scaled("latency_ms", 3.4))
    (trt_pytester.path / "mlp.onnx").write_bytes(slower_mlp().SerializeToString())
    result = trt_pytester.run(*MEASURE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"*baseline: baseline file {path}: entry 'test_perf.py::test_a': throughput_qps is *; not compared*",
        "baseline: test_perf.py::test_a: baseline entry invalid",
    ])
    assert "unchanged" not in result.stdout.str()
