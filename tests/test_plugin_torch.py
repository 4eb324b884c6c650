"""torch= models as users meet them: exported once into the engine cache, gated on onnxruntime,
and compared with the module itself (reference="torch"), which tells a wrong export from a wrong
engine. Each run is a subprocess: torch cannot be imported twice into one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_torch

SMALL_NET = """
import pytest
import torch


class SmallNet(torch.nn.Module):
    # Conv + ReLU + global average pool + Linear, on a batch of images of any size.
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, image):
        return self.head(torch.relu(self.conv(image)).mean(dim=(2, 3)))


def make_net():
    torch.manual_seed(0)
    return SmallNet()


net = pytest.mark.trt_model(
    torch=make_net, example_inputs={"image": (2, 3, 16, 16)}, dynamic={"image": {0: "batch"}}, batch_size=4, **{extra}
)
"""

EXPORTED_AND_GATED = SMALL_NET.replace("**{extra}", 'reference="torch"') + """

@net
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
def test_against_the_module(trt_engine):
    # Gated at batch 4, exported at batch 2: the batch axis is dynamic in the ONNX file.
    assert trt_engine.shapes == {"image": (4, 3, 16, 16)}
    assert trt_engine.infer(trt_engine.sample_inputs())["output"].shape == (4, 10)


@pytest.mark.trt_model(torch=make_net, example_inputs={"image": (2, 3, 16, 16)}, dynamic={"image": {0: "batch"}})
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
def test_against_onnxruntime_at_the_example_shape(trt_engine):
    assert trt_engine.shapes == {"image": (2, 3, 16, 16)}
"""

DIVERGING = SMALL_NET.replace("**{extra}", 'reference="torch", precision="fp16"') + """

class ExportPathNet(torch.nn.Module):
    # A Python flag the export froze: torch sets it while exporting, so the ONNX file holds the
    # other branch.
    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            return x * 3.0
        return x * 2.0


@pytest.mark.trt_model(torch=ExportPathNet, example_inputs={"x": (2, 5)}, reference="torch")
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
def test_wrong_export_against_the_module(trt_engine):
    pass


@pytest.mark.trt_model(torch=ExportPathNet, example_inputs={"x": (2, 5)})
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
def test_wrong_export_against_onnxruntime(trt_engine):
    pass


@net
@pytest.mark.trt_accuracy(rtol=0, atol=1e-5)
def test_fp16_engine_against_the_module(trt_engine):
    pass
"""


def _records(path: Path) -> dict[str, dict]:
    return {record["nodeid"].rpartition("::")[2]: record for record in json.loads(path.read_text())["tests"]}


def test_a_conv_linear_model_is_exported_and_gated_and_the_next_run_exports_nothing(trt_pytester):
    trt_pytester.pytester.makepyfile(test_net=EXPORTED_AND_GATED)
    cache, report = trt_pytester.path / "engine-cache", trt_pytester.path / "report.json"
    args = (f"--trt-engine-cache={cache}", f"--trt-report-json={report}")
    trt_pytester.run_subprocess(*args).assert_outcomes(passed=2)
    records = _records(report)
    export = records["test_against_the_module"]["engine"]["export"]
    assert export["how"] == "built" and export["cache"]["kind"] == "torch-export"
    assert export["details"]["exporter"] in ("dynamo", "torchscript")
    assert export["details"]["dynamic_axes"] == {"image": {"0": "batch"}}
    # One export serves both tests (same module, same example inputs).
    assert records["test_against_onnxruntime_at_the_example_shape"]["engine"]["export"]["cache"]["key"] == export["cache"]["key"]
    assert len(list((cache / "torch-export").glob("*/*/artifact.bin"))) == 1
    assert records["test_against_the_module"]["model"]["path"] == "torch=test_net:make_net"

    warm = trt_pytester.run_subprocess(*args)
    warm.assert_outcomes(passed=2)
    for record in _records(report).values():
        assert record["engine"]["export"]["how"] == "loaded"
    # Export, engines, torch reference and onnxruntime reference: all from the cache.
    warm.stdout.fnmatch_lines(["*engine cache*: * hits, 0 misses (0 builds*"])
    assert len(list((cache / "torch-export").glob("*/*/artifact.bin"))) == 1


def test_a_frozen_branch_fails_against_the_module_and_the_message_says_the_export_diverged(trt_pytester):
    trt_pytester.pytester.makepyfile(test_diverging=DIVERGING)
    result = trt_pytester.run_subprocess()
    result.assert_outcomes(passed=1, failed=2)
    text = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*_ test_wrong_export_against_the_module _*",
        "accuracy: output 'output': 10 of 10 elements outside rtol=1e-3 atol=1e-5*",
        "*reference: the torch module torch=test_diverging:ExportPathNet (CPU, fp32, torch.no_grad())",
        "*diagnosis: the export diverged from the torch module: max |export - module| = *; "
        "the engine matches the export (max |engine - export| = 0)",
    ])
    result.stdout.fnmatch_lines([
        "*_ test_fp16_engine_against_the_module _*",
        "*reference: the torch module torch=test_diverging:make_net (CPU, fp32, torch.no_grad())",
        "*diagnosis: the engine diverged from the export, which matches the module: max |engine - export| = *",
    ])
    assert "test_wrong_export_against_onnxruntime FAILED" not in text and "Traceback" not in text


def test_a_factory_that_fails_is_an_error_naming_the_test_and_the_reason(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_factory="""
        import pytest

        def make_model():
            raise RuntimeError("weights file missing")

        @pytest.mark.trt_model(torch=make_model, example_inputs={"x": (2, 3)})
        def test_it(trt_engine):
            pass

        @pytest.mark.trt_model(torch="no_such_package.models:make", example_inputs={"x": (2, 3)})
        def test_unimportable(trt_engine):
            pass

        def make_linear():
            import torch

            return torch.nn.Linear(3, 2)

        @pytest.mark.trt_model(torch=make_linear, example_inputs={"input": (2, 3)}, shapes={"y": (2, 3)})
        def test_wrong_shapes(trt_engine):
            pass
        """
    )
    result = trt_pytester.run_subprocess()
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines([
        "test_factory.py::test_it: torch=make_model: the factory raised RuntimeError: weights file missing",
        "test_factory.py::test_unimportable: torch='no_such_package.models:make': cannot import 'no_such_package.models'*",
        # The export lives in the session's work folder: the message names the model as the mark does.
        "test_factory.py::test_wrong_shapes: the export of torch=test_factory:make_linear: shapes names input 'y', "
        "which the model does not have (inputs: input)",
    ])


HELD_STATE = """
import os

import numpy as np
import pytest
import torch


class Scaled(torch.nn.Module):
    # Its state is a plain tensor attribute, a numpy array and tensors in a list: none of them a
    # parameter or a buffer.
    def __init__(self):
        super().__init__()
        k = float(os.environ["SCALE"])
        self.scale = torch.tensor(k)
        self.offset = np.full((1,), k, np.float32)
        self.steps = [torch.tensor(k)]

    def forward(self, x):
        return x * self.scale + torch.from_numpy(self.offset) + self.steps[0]


@pytest.mark.trt_model(torch=Scaled, example_inputs={"x": (2, 5)})
@pytest.mark.trt_accuracy(rtol=1e-5, atol=1e-6)
def test_against_the_export(trt_engine):
    k = float(os.environ["SCALE"])
    out = trt_engine.infer({"x": np.ones((2, 5), np.float32)})["output"]
    np.testing.assert_allclose(out, np.full((2, 5), 3 * k, np.float32))
"""


def test_a_module_whose_held_tensors_changed_is_exported_again(trt_pytester, monkeypatch):
    trt_pytester.pytester.makepyfile(test_held=HELD_STATE)
    cache, report = trt_pytester.path / "engine-cache", trt_pytester.path / "report.json"
    args = (f"--trt-engine-cache={cache}", f"--trt-report-json={report}")
    for k in ("2", "3"):
        monkeypatch.setenv("SCALE", k)
        trt_pytester.run_subprocess(*args).assert_outcomes(passed=1)
        assert _records(report)["test_against_the_export"]["engine"]["export"]["how"] == "built"
    assert len(list((cache / "torch-export").glob("*/*/artifact.bin"))) == 2
    trt_pytester.run_subprocess(*args).assert_outcomes(passed=1)  # k=3 again: served from the cache
    assert _records(report)["test_against_the_export"]["engine"]["export"]["how"] == "loaded"


FACTOR_FROM_ANOTHER_FILE = """
import os

import pytest
import torch

import factor


class Scaled(torch.nn.Module):
    def forward(self, x):
        return x * factor.FACTOR  # code in another file: the export's key cannot see it


@pytest.mark.trt_model(torch=Scaled, example_inputs={"x": (2, 5)}, reference=os.environ["REFERENCE"])
@pytest.mark.trt_accuracy(rtol=1e-5, atol=1e-6)
def test_against_the_module(trt_engine):
    pass
"""


def test_a_cached_export_that_misses_the_module_is_named_as_possibly_stale(trt_pytester, monkeypatch):
    # The export is cached by a run against onnxruntime; the module then changes where its key
    # cannot see, and a run against the module itself catches the stale export.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("REFERENCE", "onnxruntime")
    trt_pytester.pytester.makepyfile(test_factor=FACTOR_FROM_ANOTHER_FILE, factor="FACTOR = 2.0\n")
    cache = f"--trt-engine-cache={trt_pytester.path / 'engine-cache'}"
    trt_pytester.run_subprocess(cache).assert_outcomes(passed=1)
    trt_pytester.pytester.makepyfile(factor="FACTOR = 3.25\n")
    monkeypatch.setenv("REFERENCE", "torch")
    result = trt_pytester.run_subprocess(cache)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*diagnosis: the export diverged from the torch module: max |export - module| = *; the engine matches "
        "the export (*); the export was loaded from the engine cache: if the module changed in a way its cache "
        "key does not see (*), the export is stale: rerun with --trt-rebuild*",
    ])
    rebuilt = trt_pytester.run_subprocess(cache, "--trt-rebuild")
    rebuilt.assert_outcomes(passed=1)
