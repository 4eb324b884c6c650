"""INT8 calibration can take minutes on large models: it reports through the progress lines like a
build, so a long one says where the time went; a quick one or a load from the cache stays quiet."""

from __future__ import annotations

import time

from onnx_builders import overflowing_model

CALIBRATED = """
import pytest

@pytest.mark.trt_model("overflow.onnx", precision="int8", shapes={"x": (1, 8)}, calibration=8)
def test_int8(trt_engine):
    pass
"""


def test_a_slow_calibration_prints_a_progress_line_and_a_cached_one_does_not(trt_pytester, monkeypatch) -> None:
    from pytest_trt.prepare import quantize

    real = quantize.quantize_model

    def slow(*args, **kwargs):
        time.sleep(1.2)  # past the progress threshold, however fast the machine
        return real(*args, **kwargs)

    monkeypatch.setattr(quantize, "quantize_model", slow)
    overflowing_model(trt_pytester.path / "overflow.onnx")
    trt_pytester.pytester.makepyfile(test_calibrated=CALIBRATED)
    cache = f"--trt-engine-cache={trt_pytester.path / 'engine-cache'}"
    result = trt_pytester.run(cache)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pytest-trt: calibrated overflow.onnx to int8 on 8 seeded batches in * s"])
    warm = trt_pytester.run(cache)
    warm.assert_outcomes(passed=1)
    assert "calibrated overflow.onnx" not in warm.stdout.str()
