"""The progress sink on a scripted clock (no sleeping, no timing asserts), and where its lines go."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pytest_trt.prepare.progress import Phase, Progress, terminal_writer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sink() -> tuple[Progress, list[str], Clock]:
    lines: list[str] = []
    clock = Clock()
    return Progress(lines.append, threshold_s=1.0, clock=clock), lines, clock


def test_a_fast_phase_is_silent_and_a_long_one_says_what_took_the_time():
    progress, lines, clock = sink()
    with progress.phase(Phase.BUILD, "mlp.onnx for onnxruntime"):
        clock.now += 0.9
    assert lines == []
    with progress.phase(Phase.BUILD, "cnn.onnx for onnxruntime"):
        clock.now += 11.43
    assert lines == ["built cnn.onnx for onnxruntime in 11.4 s"]


def test_a_phase_may_learn_what_it_was_and_add_detail():
    progress, lines, clock = sink()
    with progress.phase(Phase.BUILD, "cnn.onnx for tensorrt") as step:
        clock.now += 2.0
        step.phase = Phase.LOAD  # the engine cache had it
    with progress.phase(Phase.MEASURE, "t.py::test_cnn on onnxruntime") as step:
        clock.now += 3.0
        step.detail = "50 iterations"
    assert lines == [
        "loaded cnn.onnx for tensorrt in 2.0 s",
        "measured t.py::test_cnn on onnxruntime in 3.0 s (50 iterations)",
    ]


def test_a_measurement_speaks_only_when_it_runs_past_what_was_asked():
    progress, lines, clock = sink()
    with progress.phase(Phase.MEASURE, "t.py::test_a on onnxruntime", expected_s=1.2):
        clock.now += 2.1  # the asked 1.2 s and a bit: what the user chose, no news
    assert lines == []
    with progress.phase(Phase.MEASURE, "t.py::test_b on onnxruntime", expected_s=1.2):
        clock.now += 12.0  # a slow model running its minimum iterations
    assert lines == ["measured t.py::test_b on onnxruntime in 12.0 s"]


def test_a_phase_that_raises_prints_nothing():
    progress, lines, clock = sink()
    with pytest.raises(RuntimeError), progress.phase(Phase.REFERENCE, "the reference outputs of mlp.onnx"):
        clock.now += 5.0
        raise RuntimeError("bad model")
    assert lines == []


def test_a_silent_sink_writes_nowhere():
    progress = Progress()
    with progress.phase(Phase.CONVERT, "mlp.onnx to fp16"):
        pass
    progress.note("TensorRT build: Building engine (5 steps)")  # no writer: nothing to fail


def _config(verbose: int, **extra) -> SimpleNamespace:
    return SimpleNamespace(option=SimpleNamespace(verbose=verbose), **extra)


def test_no_terminal_lines_from_xdist_workers_or_at_quiet():
    assert terminal_writer(_config(0, workerinput={"workerid": "gw0"})) is None
    assert terminal_writer(_config(-1)) is None
    assert terminal_writer(_config(0)) is not None
    assert terminal_writer(_config(1)) is not None
