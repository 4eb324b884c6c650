"""``max_device_memory_mb=`` on ``trt_perf`` and the device memory reports carry, as users meet
them. onnxruntime's CPU runner cannot tell device memory; a runner that can is stood in for by
giving the CPU runner a ``device_memory()`` (what the TensorRT and onnxruntime GPU runners have)."""

from __future__ import annotations

import json

import pytest

from pytest_trt.backends.onnxruntime import OnnxRuntimeRunner

MIB = 2**20


def write(trt_pytester, perf: str) -> None:
    trt_pytester.pytester.makepyfile(
        test_memory=f"""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", profile={{"x": ((1, 256), (8, 256), (64, 256))}})
        @pytest.mark.trt_perf(backend="onnxruntime", {perf})
        def test_it(trt_engine):
            pass
        """
    )


@pytest.fixture
def telling(monkeypatch):
    monkeypatch.setattr(OnnxRuntimeRunner, "device_memory", lambda self: 300 * MIB, raising=False)


def test_device_memory_is_reported_and_judged_where_the_backend_tells_it(trt_pytester, telling):
    write(trt_pytester, "max_device_memory_mb=512")
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run("--trt-backend=onnxruntime", f"--trt-report-json={path}")
    result.assert_outcomes(passed=1)
    (entry,) = json.loads(path.read_text())["tests"]
    assert entry["perf"]["device_memory"] == 300 * MIB
    assert entry["budgets"][0]["description"] == "memory <= 512 MB"


def test_over_the_memory_budget_fails_saying_by_how_much(trt_pytester, telling):
    write(trt_pytester, "max_device_memory_mb=256")
    result = trt_pytester.run("--trt-backend=onnxruntime")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*perf (onnxruntime): device memory 300.0 MB > budget 256 MB*"])


def test_a_sweep_reports_device_memory_at_each_batch_and_judges_it(trt_pytester, telling):
    write(trt_pytester, "batch_sizes=(1, 64), max_device_memory_mb=256")
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run("--trt-backend=onnxruntime", f"--trt-report-json={path}")
    result.assert_outcomes(failed=1)
    (entry,) = json.loads(path.read_text())["tests"]
    assert [p["device_memory"] for p in entry["sweep"]] == [300 * MIB, 300 * MIB]
    result.stdout.fnmatch_lines(["*perf (onnxruntime) at batch 64: device memory 300.0 MB > budget 256 MB*"])


def test_streams_report_every_streams_memory_together(trt_pytester, telling):
    write(trt_pytester, "streams=2, max_device_memory_mb=512")
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run("--trt-backend=onnxruntime", f"--trt-report-json={path}")
    result.assert_outcomes(failed=1)  # two runners of 300 MB each
    (entry,) = json.loads(path.read_text())["tests"]
    assert entry["streams"][0]["device_memory"] == 600 * MIB
    result.stdout.fnmatch_lines(["*perf (onnxruntime) with 2 streams: device memory 600.0 MB > budget 512 MB*"])


def test_a_memory_budget_the_backend_cannot_judge_fails_saying_so(trt_pytester):
    write(trt_pytester, "max_device_memory_mb=512")
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run("--trt-backend=onnxruntime", f"--trt-report-json={path}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*device memory: onnxruntime cannot tell it, so max_device_memory_mb cannot be judged*"])
    (entry,) = json.loads(path.read_text())["tests"]
    assert "device_memory" not in entry["perf"]


def test_a_bad_memory_budget_is_a_collection_error(trt_pytester):
    write(trt_pytester, "max_device_memory_mb='lots'")
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_memory.py::test_it: trt_perf: max_device_memory_mb must be a number, got 'lots'"])


def _taking(monkeypatch, mib: float) -> None:
    monkeypatch.setattr(OnnxRuntimeRunner, "device_memory", lambda self: int(mib * MIB), raising=False)


def test_more_device_memory_than_the_baseline_fails_naming_both(trt_pytester, telling, monkeypatch):
    write(trt_pytester, "max_device_memory_mb=1024")
    trt_pytester.run("--trt-backend=onnxruntime", "--trt-update-baselines").assert_outcomes(passed=1)
    (stored,) = (trt_pytester.path / "baselines").glob("*/*.json")
    assert next(iter(json.loads(stored.read_text())["tests"].values()))["device_memory_bytes"] == 300 * MIB

    _taking(monkeypatch, 301)  # within the allocator's rounding: unchanged
    trt_pytester.run("--trt-backend=onnxruntime").assert_outcomes(passed=1)
    _taking(monkeypatch, 400)
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run("--trt-backend=onnxruntime", f"--trt-report-json={path}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*device memory regression (onnxruntime): 400.0 MB vs baseline 300.0 MB (+33.3%; tolerance 5% and 2 MB)*"
    ])
    (entry,) = json.loads(path.read_text())["tests"]
    assert entry["memory"] == {"baseline_bytes": 300 * MIB, "new_bytes": 400 * MIB, "engine_own": True}
    # Reported, not failed, under --trt-perf=report.
    result = trt_pytester.run("--trt-backend=onnxruntime", "--trt-perf=report")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*device memory regression (onnxruntime): 400.0 MB vs baseline 300.0 MB*"])


def test_a_sweep_s_memory_regression_names_the_batch(trt_pytester, telling):
    write(trt_pytester, "batch_sizes=(1, 64)")
    trt_pytester.run("--trt-backend=onnxruntime", "--trt-update-baselines").assert_outcomes(passed=1)
    (stored,) = (trt_pytester.path / "baselines").glob("*/*.json")
    data = json.loads(stored.read_text())
    data["tests"]["test_memory.py::test_it@batch=64"]["device_memory_bytes"] = 200 * MIB  # "took" less then
    stored.write_text(json.dumps(data))
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run("--trt-backend=onnxruntime", f"--trt-report-json={path}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*at batch 64: device memory regression (onnxruntime): 300.0 MB vs baseline 200.0 MB*"])
    assert "at batch 1: device memory" not in result.stdout.str()
    (entry,) = json.loads(path.read_text())["tests"]
    assert [p["memory"]["baseline_bytes"] for p in entry["sweep"]] == [300 * MIB, 200 * MIB]


def test_a_gpu_wide_memory_growth_is_reported_not_failed(trt_pytester, telling, monkeypatch):
    # onnxruntime's GPU runners count the GPU's growth since their session opened: another
    # process on the GPU adds to it, so a growth over the baseline is a warning there.
    write(trt_pytester, "max_device_memory_mb=1024")
    trt_pytester.run("--trt-backend=onnxruntime", "--trt-update-baselines").assert_outcomes(passed=1)
    _taking(monkeypatch, 400)
    monkeypatch.setattr(OnnxRuntimeRunner, "device_memory_since_open", True, raising=False)
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run("--trt-backend=onnxruntime", f"--trt-report-json={path}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([  # the summary wraps the warning
        "*device memory regression (onnxruntime): 400.0 MB vs baseline 300.0 MB (+33.3%*; onnxruntime counts "
        "the GPU's growth since its session opened*",
        "*reported, not failed*",
    ])
    (entry,) = json.loads(path.read_text())["tests"]
    assert entry["memory"] == {"baseline_bytes": 300 * MIB, "new_bytes": 400 * MIB, "engine_own": False}
