"""The demo suite under examples/ passes as shipped, with its own ini, on a CPU-only machine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_demo_suite_passes_and_reports_gpu_budgets_as_not_enforced(trt_pytester):
    result = trt_pytester.run_subprocess(str(EXAMPLES), "--trt-backend=onnxruntime", "-rs")
    # The torch example runs where PyTorch is installed and is skipped, saying why, where not.
    if importlib.util.find_spec("torch") is not None:
        result.assert_outcomes(passed=12)
    else:
        result.assert_outcomes(passed=11, skipped=1)
        result.stdout.fnmatch_lines(["SKIPPED * the torch example needs PyTorch: pip install 'pytest-trt[[]torch[]]'"])
    result.stdout.fnmatch_lines([
        f"rootdir: {EXAMPLES}",
        "configfile: pytest.ini",
        "*= pytest-trt summary =*",
        # models/mlp.trt.toml: the model collected as tests, no Python (trt_collect_models).
        "models/mlp.onnx",
        "  fp16*onnxruntime*ok*p99 <= 50.00 ms*ok",
        "  fp32*onnxruntime*ok*p99 <= 50.00 ms*ok",
        "test_cnn.py",
        "  test_cnn*onnxruntime*ok*p99 <= 100.00 ms*ok",
        "*tensorrt*p99 <= 0.30 ms*not enforced",
        "  test_cnn_int8*",
        "*onnxruntime*ok*p99 <= 100.00 ms*ok",
        "note: tensorrt budgets are reported, not enforced, while onnxruntime runs the models",
    ])
