"""Shared helpers for the plugin's own tests: run pytest on real test files with pytest-trt."""

from __future__ import annotations

import importlib.util
import os
import shutil
from importlib.metadata import entry_points
from pathlib import Path

# pytester's in-process runs put sys.modules back as they found it, so what a run imports
# first is imported again by the next: numpy and onnxruntime refuse that, and a module of ours
# imported twice makes two copies of its classes. The plugin imports these on first use, so
# import them here, before any in-process run.
import numpy  # noqa: F401
import onnx  # noqa: F401
import onnxruntime  # noqa: F401
import pytest

import pytest_trt.backends.onnxruntime
import pytest_trt.backends.tensorrt
import pytest_trt.baselines.regression
import pytest_trt.judge.gates
import pytest_trt.reports.ci
import pytest_trt.reports.terminal

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "examples" / "models"

# Fast, deterministic-enough measurement for tests: budgets are made absurd, never tight, and a
# comparison with a baseline regresses only beyond +90% (a shared CI host moves a tiny model's
# floor by tens of percent); tests of a regression make theirs far larger or set their own.
FAST_MEASURE = (
    "--trt-warmup-ms=0", "--trt-min-iterations=5", "--trt-min-duration-ms=0", "--trt-regression-threshold=0.9",
)


def plugin_args() -> tuple[str, ...]:
    """``-p pytest_trt.plugin`` unless the installed entry point already loads it (naming it
    twice is an error in pytest)."""
    installed = any(ep.value == "pytest_trt.plugin" for ep in entry_points(group="pytest11"))
    return () if installed else ("-p", "pytest_trt.plugin")


class TrtPytester:
    """pytester with example models copied in and pytest-trt loaded."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path

    def copy_model(self, name: str, to: str | None = None) -> Path:
        target = self.path / (to or name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MODELS / name, target)
        return target

    def args(self, *args: str, fast: bool = True) -> tuple[str, ...]:
        return (*plugin_args(), "-p", "no:cacheprovider", *(FAST_MEASURE if fast else ()), *args)

    def run(self, *args: str, fast: bool = True) -> pytest.RunResult:
        return self.pytester.runpytest(*self.args(*args, fast=fast))

    def run_subprocess(self, *args: str, fast: bool = True) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(*self.args(*args, fast=fast))


@pytest.fixture
def trt_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> TrtPytester:
    # Subprocess runs import pytest_trt from this checkout even where it is not pip-installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    # The summary fits the terminal's width: a wide one, whatever terminal runs this suite, so
    # that lines are matched whole; tests of narrow terminals set their own.
    monkeypatch.setenv("COLUMNS", "240")
    tp = TrtPytester(pytester)
    for name in ("mlp.onnx", "cnn.onnx", "encoder.onnx", "mlp_inputs.npz"):
        tp.copy_model(name)
    return tp


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # find_spec looks for torch without importing it (seconds) into every test session.
    if importlib.util.find_spec("torch") is not None:
        return
    skip = pytest.mark.skip(reason="needs torch: pip install 'pytest-trt[torch]' (a CPU build will do)")
    for item in items:
        if item.get_closest_marker("needs_torch"):
            item.add_marker(skip)


@pytest.fixture
def quiet_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's contention counters read as a quiet host, whatever the machine is doing: for
    tests of what a verdict says, not of how a busy host is told (tests/test_contention.py)."""
    from pytest_trt.timing import contention

    monkeypatch.setattr(contention, "read_counters", lambda: contention.CpuCounters(0.0, 0, 0, 0, 1))


@pytest.fixture(autouse=True)
def no_confirm_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slower session is confirmed at once rather than CONFIRM_GAP_S later: the gap is for a
    host's slow moments, which the tests fake. tests/test_regression.py checks the gap is kept."""
    monkeypatch.setattr(pytest_trt.baselines.regression, "CONFIRM_GAP_S", 0.0)
