"""Baselines and regression gates as users meet them: real test files run through pytester."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from make_models import make_mlp

from pytest_trt.baselines.regression import HOST_STATE, PROBE_NOISE
from pytest_trt.timing import host_probe, measure

# Enough iterations for a floor; a threshold wide enough that a shared 2-core runner never trips
# it on an unchanged model, narrow enough that an 8x slower one always does.
MEASURE = ("--trt-backend=onnxruntime", "--trt-min-iterations=300", "--trt-regression-threshold=0.9")  # no false alarm on a busy machine

TEST_A = """
@pytest.mark.trt_model("mlp.onnx", shapes={{"x": {shape}}}, intra_op_threads=1)
@pytest.mark.trt_perf(backend="onnxruntime")
def test_a(trt_engine):
    pass
"""
TEST_B = """
@pytest.mark.trt_model("mlp.onnx", shapes={{"x": {shape}}}, intra_op_threads=1)
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
@pytest.mark.trt_perf(backend="onnxruntime")
def test_b(trt_engine):
    pass
"""


def write_tests(trt_pytester, shape=(8, 256), tests=(TEST_A, TEST_B)) -> None:
    trt_pytester.pytester.makepyfile(test_perf="import pytest\n" + "".join(t.format(shape=shape) for t in tests))


def slower_mlp() -> onnx.ModelProto:
    """The example MLP, same IO, plus a dead-end side branch about 8x its work."""
    model = make_mlp()
    rng = np.random.default_rng(0)
    model.graph.initializer.extend([
        numpy_helper.from_array(rng.standard_normal((256, 4096)).astype(np.float32), "side.w1"),
        numpy_helper.from_array(rng.standard_normal((4096, 10)).astype(np.float32), "side.w2"),
        numpy_helper.from_array(np.zeros((), np.float32), "side.zero"),
    ])
    for node in model.graph.node:
        node.output[:] = ["y.main" if o == "y" else o for o in node.output]
    model.graph.node.extend([
        helper.make_node("MatMul", ["x", "side.w1"], ["side.h"]),
        helper.make_node("MatMul", ["side.h", "side.w2"], ["side.out"]),
        helper.make_node("Mul", ["side.out", "side.zero"], ["side.zeroed"]),
        helper.make_node("Add", ["y.main", "side.zeroed"], ["y"]),
    ])
    return model


def baseline_files(root: Path) -> list[Path]:
    return sorted((root / "baselines").glob("*/*.json"))


def stored(root: Path) -> dict:
    (path,) = baseline_files(root)
    return json.loads(path.read_text())


def faster(entry: dict, factor: float) -> None:
    """A baseline entry (its file's JSON) made ``factor`` times faster than it was recorded."""
    latency = entry["latency_ms"]
    latency["quantiles"] = {k: v / factor for k, v in latency["quantiles"].items()}
    latency["mean"] /= factor
    if "session_floors_ms" in entry:  # recordings of several sessions keep their floors
        entry["session_floors_ms"] = [f / factor for f in entry["session_floors_ms"]]
    entry["throughput_qps"] *= factor


def report(trt_pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run(*MEASURE, f"--trt-report-json={path}", *args)
    return result, {t["nodeid"]: t for t in json.loads(path.read_text())["tests"]}


def test_first_run_without_baseline_passes_and_says_so(trt_pytester):
    write_tests(trt_pytester)
    result, tests = report(trt_pytester)
    result.assert_outcomes(passed=2)
    assert {t["baseline_note"] for t in tests.values()} == {"no baseline"}
    assert not (trt_pytester.path / "baselines").exists()  # a compare run writes nothing, not even a lock
    result.stdout.fnmatch_lines(["baseline: 2 measured test(s) have no baseline here (record with --trt-update-baselines)"])


def test_strict_mode_fails_a_missing_baseline(trt_pytester):
    write_tests(trt_pytester)
    result = trt_pytester.run(*MEASURE, "--trt-baseline=strict")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*baseline: no baseline for this test on *(--trt-baseline=strict)*"])


def test_update_then_compare_clean_over_repeated_runs(trt_pytester):
    write_tests(trt_pytester)
    result, recorded = report(trt_pytester, "--trt-update-baselines")
    result.assert_outcomes(passed=2)
    data = stored(trt_pytester.path)
    assert data["schema"] == 1 and data["module"] == "test_perf.py"
    assert sorted(data["tests"]) == ["test_perf.py::test_a", "test_perf.py::test_b"]
    entry = data["tests"]["test_perf.py::test_b"]
    assert entry["latency_ms"]["n"] >= 300 and "y" in entry["accuracy"]
    note = recorded["test_perf.py::test_b"]["baseline_note"]
    # How many measurements it took depends on the host's speed while recording.
    assert re.match(r"baseline recorded \((one session|middle of \d+ sessions, their floors \d+\.\d% apart)", note), note
    assert len(entry["session_floors_ms"]) >= 2  # fresh sessions, their floors kept (two where a busy host left two)
    # The host-speed probe ran alongside, and its times are kept for dividing out.
    assert entry["host_probe_ms"]["n"] >= 5 and entry["host_probe_ms"]["quantiles"]["p0"] > 0
    for _ in range(3):
        result, tests = report(trt_pytester)
        result.assert_outcomes(passed=2)
        # Never "regressed"; on a busy host a comparison may be left inconclusive, never failed.
        assert {t["regression"]["status"] for t in tests.values()} <= {"unchanged", "improved", "inconclusive"}
        result.stdout.re_match_lines([r"baseline: test_perf.py::test_a: (unchanged|improved|inconclusive), min [+-]\d+\.\d% vs baseline"])


def test_a_slower_model_with_the_same_io_fails_with_the_regression_message(trt_pytester, quiet_host):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    (trt_pytester.path / "mlp.onnx").write_bytes(slower_mlp().SerializeToString())
    result, tests = report(trt_pytester)
    result.assert_outcomes(failed=2)
    verdict = tests["test_perf.py::test_a"]["regression"]
    assert verdict["status"] == "regressed" and verdict["remeasured"] and verdict["change"] > 1.0
    # The message says what the kept verdict holds. Whether the host ran slower or faster than at
    # recording depends on the machine's load, so the notes on it are expected where the report's
    # numbers call for them, not by wording alone.
    host_note = r"; the host probe ran \d+% (slower|faster) than when the baseline was recorded"
    mixed_note = r"; the probe floor came from brief fast moments \(95% of the probe times ran \d+% or more slower\)"
    host_moved = verdict["host_change"] is not None and abs(verdict["host_change"]) > PROBE_NOISE
    mixed = verdict["probe_spread"] is not None and verdict["probe_spread"] > HOST_STATE
    result.stdout.re_match_lines([
        r"regression \(onnxruntime\): min \+\d+\.\d% vs baseline \(threshold 90%"
        r"( \+ \d+\.\d% for the spread between the sessions it was recorded in)?\)"
        + (host_note if host_moved else "")
        + (mixed_note if mixed else "")
        + r"; 2 sessions read \+\d+\.\d%, \+\d+\.\d%, two agree "
        r"\(changed since the baseline: model [0-9a-f]{8}\.\. -> [0-9a-f]{8}\.\.\)$",
    ])
    # The failure is the item's own: JUnit/--lf see it as a failed test, not a session error.
    assert re.search(r"FAILED test_perf.py::test_a", result.stdout.str())


def test_a_slower_floor_with_nothing_changed_warns_fails_under_strict_and_a_new_runtime_is_judged(
    trt_pytester, quiet_host
):
    write_tests(trt_pytester, tests=(TEST_A,))
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=1)
    (path,) = baseline_files(trt_pytester.path)
    data = json.loads(path.read_text())
    entry = data["tests"]["test_perf.py::test_a"]
    faster(entry, 20.0)  # recorded 20x faster
    path.write_text(json.dumps(data))
    result, tests = report(trt_pytester)
    result.assert_outcomes(passed=1)
    verdict = tests["test_perf.py::test_a"]["regression"]
    assert verdict["status"] == "inconclusive" and verdict["doubt"] == "nothing-changed" and verdict["change"] > 5
    assert ("; nothing the baseline records changed since it was recorded (model, runtime, driver, build options, "
            "workload, hardware class), so this host ran slower than when it was recorded") in verdict["message"]
    result.stdout.fnmatch_lines([  # the terminal wraps the warning's long line
        "warning: test_perf.py::test_a: regression check inconclusive (onnxruntime): min +*% vs baseline *",
        "*1 gated test, 0 failed, 0 regressed, 1 inconclusive*",
    ])
    trt_pytester.run(*MEASURE, "--trt-baseline=strict").assert_outcomes(failed=1)
    runtime = entry["software"]["runtime"]
    entry["software"]["runtime"] = "onnxruntime 1.0.0"  # recorded on an older onnxruntime
    path.write_text(json.dumps(data))
    result, tests = report(trt_pytester)
    result.assert_outcomes(failed=1)
    assert tests["test_perf.py::test_a"]["regression"]["status"] == "regressed"
    result.stdout.fnmatch_lines([f"*regression (onnxruntime): min +*(changed since the baseline: onnxruntime 1.0.0 -> {runtime.split()[-1]})"])


def test_a_recordings_further_sessions_take_half_the_warm_up_and_window_a_comparisons_take_all(
    trt_pytester, quiet_host, monkeypatch: pytest.MonkeyPatch
):
    settings: list[tuple[float, int, float]] = []
    real = measure.measure

    def spied(runner, feed, how, *args, **kwargs):
        settings.append((how.warmup_ms, how.min_iterations, how.min_duration_ms))
        return real(runner, feed, how, *args, **kwargs)

    monkeypatch.setattr(measure, "measure", spied)
    write_tests(trt_pytester, tests=(TEST_A,))
    full = ("--trt-warmup-ms=100", "--trt-min-duration-ms=300")
    trt_pytester.run(*MEASURE, *full, "--trt-update-baselines").assert_outcomes(passed=1)
    first, *further = settings
    assert first == (100.0, 300, 300.0) and further and set(further) == {(50.0, 300, 150.0)}, settings
    assert stored(trt_pytester.path)["tests"]["test_perf.py::test_a"]["latency_ms"]["n"] >= 300
    settings.clear()
    (trt_pytester.path / "mlp.onnx").write_bytes(slower_mlp().SerializeToString())
    trt_pytester.run(*MEASURE, *full).assert_outcomes(failed=1)
    assert len(settings) >= 2 and set(settings) == {(100.0, 300, 300.0)}, settings  # a confirmation measures in full


def test_without_the_host_probe_raw_floors_are_recorded_and_compared(trt_pytester):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-no-host-probe", "--trt-update-baselines").assert_outcomes(passed=2)
    assert all("host_probe_ms" not in e for e in stored(trt_pytester.path)["tests"].values())
    result, tests = report(trt_pytester)
    result.assert_outcomes(passed=2)
    assert tests["test_perf.py::test_a"]["perf"]["probe_ms"]  # probed now, but nothing to divide by
    assert tests["test_perf.py::test_a"]["regression"]["normalized"] is False


def test_changed_shapes_make_the_baseline_stale_not_compared(trt_pytester):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    write_tests(trt_pytester, shape=(2, 256))
    result, tests = report(trt_pytester)
    result.assert_outcomes(passed=2)
    note = tests["test_perf.py::test_a"]["baseline_note"]
    assert note.startswith("stale: workload changed: ") and "batch 8 -> 2" in note
    assert tests["test_perf.py::test_a"]["regression"] is None
    strict = trt_pytester.run(*MEASURE, "--trt-baseline=strict")
    strict.assert_outcomes(failed=2)
    strict.stdout.fnmatch_lines(["*baseline: stale baseline, not compared (workload changed: *batch 8 -> 2*"])


def test_a_baseline_timed_with_another_host_probe_is_stale_not_divided_by(trt_pytester):
    # Baselines recorded before the probe's buffers were aligned (no "probe" in host_probe_ms)
    # timed another workload: dividing by their probe times would shift every verdict.
    write_tests(trt_pytester, tests=(TEST_A,))
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=1)
    (path,) = baseline_files(trt_pytester.path)
    data = json.loads(path.read_text())
    entry = data["tests"]["test_perf.py::test_a"]
    assert entry["host_probe_ms"]["probe"] == host_probe.KIND
    del entry["host_probe_ms"]["probe"]
    path.write_text(json.dumps(data))
    result, tests = report(trt_pytester)
    result.assert_outcomes(passed=1)
    assert tests["test_perf.py::test_a"]["baseline_note"] == (
        f"stale: host probe changed: an earlier probe -> {host_probe.KIND} (its times are not comparable; "
        "record the baseline again with --trt-update-baselines)"
    )
    assert tests["test_perf.py::test_a"]["regression"] is None
    trt_pytester.run(*MEASURE, "--trt-baseline=strict").assert_outcomes(failed=1)
    # Re-recorded, it is compared again.
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=1)
    result, tests = report(trt_pytester)
    assert tests["test_perf.py::test_a"]["regression"]["normalized"] is True


def test_unused_baselines_are_listed_and_pruned(trt_pytester):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    write_tests(trt_pytester, tests=(TEST_A,))
    result = trt_pytester.run(*MEASURE)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*unused baselines*--trt-prune-baselines*", "*test_perf.py::test_b"])
    assert "test_perf.py::test_b" in stored(trt_pytester.path)["tests"]
    # A -k run that does not select test_a still judges the module it collected, and keeps test_a.
    trt_pytester.run(*MEASURE, "--trt-prune-baselines", "-k", "nothing").assert_outcomes(deselected=1)
    assert sorted(stored(trt_pytester.path)["tests"]) == ["test_perf.py::test_a"]


def test_a_corrupt_baseline_file_names_the_file_and_is_kept(trt_pytester):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    (path,) = baseline_files(trt_pytester.path)
    path.write_text("{ not json")
    result = trt_pytester.run(*MEASURE)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([f"*baseline: baseline file {path}: not valid JSON (line 1*"])
    assert path.read_text() == "{ not json"
    refused = trt_pytester.run(*MEASURE, "--trt-update-baselines")
    refused.assert_outcomes(passed=2)
    assert refused.ret == pytest.ExitCode.TESTS_FAILED and path.read_text() == "{ not json"
    replaced = trt_pytester.run(*MEASURE, "--trt-update-baselines", "--trt-replace-unreadable-baselines")
    replaced.assert_outcomes(passed=2)
    assert sorted(stored(trt_pytester.path)["tests"]) == ["test_perf.py::test_a", "test_perf.py::test_b"]


def test_update_under_xdist_loses_nothing(trt_pytester):
    params = "\n".join(
        f"""
@pytest.mark.trt_model("mlp.onnx", shapes={{"x": (8, 256)}}, intra_op_threads=1)
@pytest.mark.trt_perf(backend="onnxruntime")
def test_{name}(trt_engine):
    pass
""" for name in "abcdef")
    trt_pytester.pytester.makepyfile(test_perf="import pytest\n" + params, test_other="import pytest\n" + params)
    result = trt_pytester.run_subprocess(*MEASURE, "-n", "2", "--trt-update-baselines")
    result.assert_outcomes(passed=12)
    files = baseline_files(trt_pytester.path)
    assert [p.name for p in files] == ["test_other.json", "test_perf.json"]
    for path in files:
        assert len(json.loads(path.read_text())["tests"]) == 6
    assert not [p for p in files[0].parent.iterdir() if p.suffix != ".json"]  # no temp or lock files
    assert not list((trt_pytester.path / "baselines").rglob("*.tmp"))


def test_json_markdown_and_junit_reports(trt_pytester):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    md, xml = trt_pytester.path / "trt.md", trt_pytester.path / "junit.xml"
    result, tests = report(trt_pytester, f"--trt-report-md={md}", f"--junitxml={xml}")
    result.assert_outcomes(passed=2)
    test_a = tests["test_perf.py::test_a"]
    assert test_a["perf"]["iterations"] >= 300 and test_a["regression"]["threshold"] == 0.9
    text = md.read_text()
    assert text.startswith("## pytest-trt: 2 tests, 0 failed")
    assert re.search(r"\| test_perf.py::test_a \| onnxruntime \| passed \| [\d.]+ \| [\d.]+ \| [\d,]+ \| min [+-]", text)
    junit = xml.read_text()
    for name in ("trt_latency_p50_ms", "trt_latency_p99_ms", "trt_throughput_qps", "trt_baseline_delta",
                 "trt_baseline_verdict"):
        assert f'<property name="{name}"' in junit


GATED = """
@pytest.mark.trt_model("mlp.onnx", shapes={{"x": {shape}}}, intra_op_threads=1, precision="{precision}")
@pytest.mark.trt_accuracy(rtol={tolerance}, atol={tolerance})
@pytest.mark.trt_perf(max_latency_ms={budget_ms}, backend="onnxruntime")
def test_gated(trt_engine):
    pass
"""


@pytest.mark.parametrize(
    ("gates", "failed"),
    [
        ({"precision": "fp32", "tolerance": 1.0, "budget_ms": 1e-6}, "perf budget"),
        ({"precision": "fp16", "tolerance": 0.0, "budget_ms": 1e6}, "accuracy"),
    ],
    ids=["over-budget", "inaccurate"],
)
def test_an_update_records_no_baseline_for_a_test_that_failed_its_gates(trt_pytester, gates, failed):
    def write(**values) -> None:
        gated = GATED.format(shape=(8, 256), **values)
        trt_pytester.pytester.makepyfile(test_perf="import pytest\n" + TEST_A.format(shape=(8, 256)) + gated)

    write(**{**gates, "tolerance": 1.0, "budget_ms": 1e6})  # first, gates that pass
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    before = stored(trt_pytester.path)["tests"]
    write(**gates)
    result, tests = report(trt_pytester, "--trt-update-baselines")
    result.assert_outcomes(passed=1, failed=1)
    note = f"baseline not recorded: the test failed its gates ({failed})"
    assert tests["test_perf.py::test_gated"]["baseline_note"] == note
    result.stdout.fnmatch_lines([
        f"baseline: test_perf.py::test_gated: {note}",
        "baselines recorded for 1 test(s) in 1 file(s) under *",
    ])
    after = stored(trt_pytester.path)["tests"]
    assert after["test_perf.py::test_gated"] == before["test_perf.py::test_gated"]  # the old baseline stays
    assert after["test_perf.py::test_a"]["recorded_at"] >= before["test_perf.py::test_a"]["recorded_at"]
    assert after["test_perf.py::test_a"]["latency_ms"] != before["test_perf.py::test_a"]["latency_ms"]
