"""``batch_sizes=`` on ``trt_perf`` as users meet it on onnxruntime's CPU backend: one test, one
engine, one row per batch size, budgets, accuracy and baselines per batch, failures naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_baseline_plugin import faster

from pytest_trt.judge.records import BudgetState, TestRecord

SWEEP = """
import pytest

@pytest.mark.trt_model("mlp.onnx", profile={{"x": ((1, 256), (8, 256), (64, 256))}}, intra_op_threads=1)
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-4)
@pytest.mark.trt_perf(batch_sizes=(1, 8, 32, 64), backend="onnxruntime", percentile=99, {budget})
def test_sweep(trt_engine):
    pass
"""
MEASURE = ("--trt-backend=onnxruntime", "--trt-min-iterations=300", "--trt-regression-threshold=0.9")


def write(trt_pytester, budget: str = "max_latency_ms=1e6") -> None:
    trt_pytester.pytester.makepyfile(test_sweep=SWEEP.format(budget=budget))


def report(trt_pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run(f"--trt-report-json={path}", *args)
    (entry,) = json.loads(path.read_text())["tests"]
    return result, entry


def test_a_sweep_over_four_batch_sizes_builds_once_and_reports_four_rows(trt_pytester):
    write(trt_pytester)
    result, entry = report(trt_pytester, "--trt-backend=onnxruntime")
    result.assert_outcomes(passed=1)
    assert [p["batch"] for p in entry["sweep"]] == [1, 8, 32, 64]
    assert entry["engine"]["how"] == "built"  # one engine, built once, for every batch size
    for point in entry["sweep"]:
        assert set(point["latency"]) == {"n", "min", "mean", "median", "p90", "p95", "p99", "max", "stdev", "cv"}
        assert point["throughput"] > 0 and point["accuracy_passed"] is True and "device_memory" in point
        assert point["budgets"][0]["description"] == f"batch {point['batch']}: p99 <= 1000000.00 ms"
    # Throughput counts every row: batch x iterations / time.
    for point in entry["sweep"]:
        assert point["throughput"] == pytest.approx(point["batch"] * point["iterations"] / point["duration_s"])
    # The entry reads back as typed points (how xdist workers send records, too).
    back = TestRecord.from_dict(entry)
    assert [p.batch for p in back.sweep] == [1, 8, 32, 64] and back.sweep[0].budgets[0].state is BudgetState.PASSED
    result.stdout.re_match_lines([
        r"  test_sweep +onnxruntime +ok .* ok$",
        r"    batch 1 +onnxruntime +ok +[\d.]+ +[\d.]+\*? +[\d,]+ +p99 <= 1000000.00 ms +ok$",
        r"    batch 8 +onnxruntime .* ok$",
        r"    batch 32 +onnxruntime .* ok$",
        r"    batch 64 +onnxruntime .* ok$",
        r"    best within p99 <= 1e\+06 ms: batch \d+, [\d,]+ qps$",
    ])


def test_a_per_batch_budget_failure_names_the_batch(trt_pytester):
    write(trt_pytester, "max_latency_ms={1: 1e6, 32: 1e-9}, min_throughput={64: 1e-3}")
    result, entry = report(trt_pytester, "--trt-backend=onnxruntime")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*perf (onnxruntime) at batch 32: p99 latency * ms > budget 0.000000 ms*"])
    assert "at batch 1:" not in result.stdout.str() and "at batch 64:" not in result.stdout.str()
    states = {p["batch"]: p["budgets"][0]["state"] for p in entry["sweep"]}
    assert states == {1: "passed", 8: "passed", 32: "failed", 64: "passed"}
    assert [p["within_latency"] for p in entry["sweep"]] == [True, None, False, None]
    result.stdout.fnmatch_lines(["*best within the latency budgets: batch * qps"])


def test_baselines_per_batch_size_and_a_regression_in_one_fails_naming_it(trt_pytester, quiet_host):
    write(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=1)
    (path,) = sorted((trt_pytester.path / "baselines").glob("*/*.json"))
    data = json.loads(path.read_text())
    names = [f"test_sweep.py::test_sweep@batch={b}" for b in (1, 8, 32, 64)]
    assert sorted(data["tests"]) == sorted(names)
    assert data["tests"][names[2]]["workload"]["batch"] == 32
    assert data["tests"][names[2]]["workload"]["inputs"]["x"]["shape"] == [32, 256]
    faster(data["tests"][names[2]], 20.0)  # batch 32 "was" 20x faster
    # ... on an older onnxruntime: with nothing changed, a slower floor would be the host's
    data["tests"][names[2]]["software"]["runtime"] = "onnxruntime 1.0.0"
    Path(path).write_text(json.dumps(data))
    result, entry = report(trt_pytester, *MEASURE, f"--trt-report-md={trt_pytester.path / 'trt.md'}")
    result.assert_outcomes(failed=1)
    markdown = (trt_pytester.path / "trt.md").read_text()
    assert "1 failed, 1 regressed" in markdown
    assert any(line.startswith("| test_sweep.py::test_sweep batch 32 |") and "| regressed |" in line for line in markdown.splitlines())
    verdicts = {p["batch"]: p["regression"]["status"] for p in entry["sweep"]}
    assert verdicts[32] == "regressed" and "regressed" not in {verdicts[1], verdicts[8], verdicts[64]}
    result.stdout.fnmatch_lines(["*at batch 32: regression (onnxruntime): min +*% vs baseline*"])
    result.stdout.fnmatch_lines(["baseline: test_sweep.py::test_sweep batch 32: regressed, min +*"])
    result.stdout.fnmatch_lines(["*1 gated test, 1 failed, 1 regressed*"])
    assert "unused baselines" not in result.stdout.str()  # every batch's baseline belongs to the test


@pytest.mark.parametrize(
    ("perf", "message"),
    [
        ("batch_sizes=(0, 8)", "trt_perf: batch_sizes must be a tuple of distinct positive ints, got (0, 8)"),
        ("batch_sizes=(8, 8)", "trt_perf: batch_sizes must be a tuple of distinct positive ints, got (8, 8)"),
        ("batch_sizes=8", "trt_perf: batch_sizes must be a tuple of distinct positive ints, got 8"),
        ("batch_sizes=(1, 8), max_latency_ms={16: 1.0}", "trt_perf: max_latency_ms names batch 16, which batch_sizes (1, 8) does not measure"),
        ("max_latency_ms={1: 1.0}", "trt_perf: max_latency_ms given per batch size ({1: 1.0}) needs batch_sizes=*"),
        ("batch_sizes=(1, 8), min_throughput={8: 'fast'}", "trt_perf: min_throughput[[]8[]] must be a number, got 'fast'"),
        ("batch_sizes=(1, 128)", "trt_perf: batch_sizes: batch 128 is outside the batch range of trt_model's profile= (x: 1..64)"),
    ],
)
def test_bad_batch_sizes_are_collection_errors_naming_test_and_argument(trt_pytester, perf, message):
    trt_pytester.pytester.makepyfile(
        test_bad=(
            "import pytest\n\n"
            "@pytest.mark.trt_model('mlp.onnx', profile={'x': ((1, 256), (8, 256), (64, 256))})\n"
            f"@pytest.mark.trt_perf(backend='onnxruntime', {perf})\n"
            "def test_it():\n    pass\n"
        )
    )
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*test_bad.py::test_it: {message}"])


def test_a_model_without_a_dynamic_batch_dim_cannot_be_swept(trt_pytester):
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(trt_pytester.path / "fixed.onnx"))
    trt_pytester.pytester.makepyfile(
        test_fixed="""
        import pytest

        @pytest.mark.trt_model("fixed.onnx")
        @pytest.mark.trt_perf(batch_sizes=(1, 2), backend="onnxruntime")
        def test_it(trt_engine):
            pass
        """
    )
    result = trt_pytester.run("--trt-backend=onnxruntime")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*fixed.onnx: batch_sizes needs an input with a dynamic leading (batch) dim, and the model has none (x [[]2, 3[]])*"])
