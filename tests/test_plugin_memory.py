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
