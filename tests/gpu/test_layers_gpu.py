"""Per-layer times and the fp16 diagnosis on a real GPU (onnxruntime-gpu's CUDA provider).

    python -m pytest -p no:cacheprovider tests/gpu/test_layers_gpu.py -v -s

prints the example CNN's slowest layers and an fp16 failure's diagnosis, for docs/diagnosis.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pytest_trt.backends.onnxruntime_cuda import OnnxRuntimeCudaBackend
from pytest_trt.model import load_model
from pytest_trt.specs import BuildSpec

pytestmark = pytest.mark.needs_gpu

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"


@pytest.fixture(scope="module")
def backend() -> OnnxRuntimeCudaBackend:
    backend = OnnxRuntimeCudaBackend()
    status = backend.availability()
    if not status.ok and "onnxruntime-gpu is not installed" in status.reason:
        pytest.skip(status.reason)
    assert status.ok, status.reason
    return backend


def test_the_cnn_has_per_layer_times_on_the_cuda_provider(backend):
    model = load_model(MODELS / "cnn.onnx")
    runner = backend.load(backend.build(model, BuildSpec()), model, BuildSpec())
    try:
        rng = np.random.default_rng(0)
        feed = {s.name: rng.uniform(-1, 1, tuple(8 if d is None else d for d in s.shape)).astype(s.dtype) for s in model.inputs}
        found = runner.profile_layers(feed, 10)
    finally:
        runner.close()
    print(f"\n{found.source}: {found.total_ms:.3f} ms in {found.total_layers} layers ({found.note})")
    for line in found.top_lines(10):
        print("  " + line)
    assert found.runs == 10 and found.total_layers > 0 and found.total_ms > 0
    assert "CUDAExecutionProvider" in {layer.provider for layer in found.layers}
    assert "host-side" in found.note


LAYER_NORM = """
import pytest

@pytest.mark.trt_model("ln.onnx", precision="fp16", shapes={{"x": (4, 64)}}, input_ranges={{"x": (-600.0, 600.0)}}{extra})
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-2)
def test_layer_norm_fp16(trt_engine):
    pass
"""
# At the basic level the written-out LayerNorm runs as written, its Pow in fp16; the extended
# level may fuse it into one kernel that computes in fp32.
AS_WRITTEN = ', graph_optimization_level="basic"'


def test_an_fp16_failure_on_the_cuda_provider_is_diagnosed_and_the_fix_passes(trt_pytester, backend):
    from onnx_builders import written_out_layer_norm_model

    written_out_layer_norm_model(trt_pytester.path / "ln.onnx")
    trt_pytester.pytester.makepyfile(test_ln=LAYER_NORM.format(extra=AS_WRITTEN))
    result = trt_pytester.run_subprocess("--trt-backend=onnxruntime-cuda")
    print(result.stdout.str())
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*error starts at 'ln_pow' (Pow)*", "*fix that passed: trt_model(..., keep_fp32_nodes=*"])
    printed = json.loads(re.search(r"keep_fp32_nodes=(\[.*\])\)", result.stdout.str()).group(1))
    trt_pytester.pytester.makepyfile(test_ln=LAYER_NORM.format(extra=f"{AS_WRITTEN}, keep_fp32_nodes={printed!r}"))
    trt_pytester.run_subprocess("--trt-backend=onnxruntime-cuda").assert_outcomes(passed=1)


def test_the_fp16_form_of_a_written_out_layer_norm_builds_at_every_optimization_level(trt_pytester, backend):
    """onnxruntime's level-1 LayerNorm fusion mis-types the input Cast of a converted model; the
    plugin turns it off for converted forms, so the test runs (and is judged) instead of erroring."""
    from onnx_builders import written_out_layer_norm_model

    written_out_layer_norm_model(trt_pytester.path / "ln.onnx")
    for level in ("basic", "extended", "all"):
        trt_pytester.pytester.makepyfile(test_ln=LAYER_NORM.format(extra=f", graph_optimization_level={level!r}"))
        result = trt_pytester.run_subprocess("--trt-backend=onnxruntime-cuda", "--trt-diagnose=off")
        outcomes = result.parseoutcomes()
        print(f"\n{level}: {outcomes}")
        assert outcomes.get("errors", 0) == 0 and outcomes.get("passed", 0) + outcomes.get("failed", 0) == 1, result.stdout.str()
