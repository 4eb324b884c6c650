"""The HTML report of a GPU run: the phases a GPU backend times apart (H2D, compute, D2H) are
drawn, and so is the latency histogram on the GPU's clock. Skipped where the backend is not
usable, with its reason."""

from __future__ import annotations

import importlib.util
import re

import pytest

pytestmark = [
    pytest.mark.needs_gpu,
    pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib: pip install 'pytest-trt[report]'"),
]

GPU_TEST = """
import pytest

@pytest.mark.trt_model("mlp.onnx", shapes={"x": (32, 256)})
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-3)
@pytest.mark.trt_perf(max_latency_ms=1e6, percentile=99)
def test_mlp_on_the_gpu(trt_engine):
    pass
"""


@pytest.mark.parametrize("backend", ["tensorrt", "onnxruntime-cuda"])
def test_a_gpu_run_draws_its_phases(trt_pytester, backend):
    trt_pytester.pytester.makepyfile(test_gpu=GPU_TEST)
    result = trt_pytester.run(f"--trt-backend={backend}", "--trt-report-html=report.html")
    if result.ret == pytest.ExitCode.USAGE_ERROR:  # the backend is not usable here: the session says why
        pytest.skip(f"{backend}: {result.stderr.str().strip().splitlines()[-1]}")
    result.assert_outcomes(passed=1)
    html = (trt_pytester.path / "report.html").read_text(encoding="utf-8")
    section = re.search(r'data-nodeid="test_gpu.py::test_mlp_on_the_gpu">(.*?)</section>', html, re.S)
    assert section is not None
    kinds = re.findall(r'data-plot="([a-z]+)"', section.group(1))
    assert kinds == ["latency", "phases", "accuracy"]
    assert "cuda-events clock" in section.group(1) and ">compute<" in section.group(1)
