"""Model files (--trt-collect-models) on a real GPU through onnxruntime's CUDA provider: a
``[perf]`` table of its own is a GPU budget, enforced there; variants build in fp32 and fp16.
Skipped where onnxruntime-gpu is missing, with its reason."""

from __future__ import annotations

import json
import textwrap

import pytest

from pytest_trt.backends.onnxruntime_cuda import OnnxRuntimeCudaBackend

pytestmark = pytest.mark.needs_gpu


@pytest.fixture
def cuda_provider() -> None:
    status = OnnxRuntimeCudaBackend().availability()
    if not status.ok:
        pytest.skip(status.reason)


def test_model_files_run_on_the_cuda_provider_and_enforce_gpu_budgets(trt_pytester, cuda_provider):
    trt_pytester.copy_model("mlp.onnx", "models/mlp.onnx")
    (trt_pytester.path / "models" / "mlp.trt.toml").write_text(textwrap.dedent("""
        [model]
        shapes = { x = [32, 256] }

        [accuracy]
        rtol = 1e-3
        atol = 1e-5

        [perf]
        max_latency_ms = 1e6

        [variant.fp32]

        [variant.fp16.model]
        precision = "fp16"

        [variant.fp16.accuracy]
        rtol = 1e-2
        atol = 1e-2

        [variant.tight.perf]
        max_latency_ms = 1e-6
    """))
    result = trt_pytester.run_subprocess(
        "--trt-collect-models", "--trt-backend=onnxruntime-cuda", "--trt-report-json=report.json", "models"
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED models/mlp.onnx::tight - *"])
    tests = {test["nodeid"]: test for test in json.loads((trt_pytester.path / "report.json").read_text())["tests"]}
    assert {tests[nodeid]["backend"] for nodeid in tests} == {"onnxruntime-cuda"}
    assert tests["models/mlp.onnx::fp16"]["build"]["precision"] == "fp16"
