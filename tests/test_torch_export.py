"""torch models in: export to ONNX (torch_export), its cache key (torch_key), and the module
itself as the reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pytest_trt.errors import SpecError
from pytest_trt.model import ModelError
from pytest_trt.prepare.torch_export import (
    Exporter,
    ExportError,
    TorchModelError,
    example_arrays,
    export_model,
    load_module,
    torch_reference,
)
from pytest_trt.prepare.torch_key import export_key
from pytest_trt.specs import make_model_spec

pytestmark = pytest.mark.needs_torch

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
IMAGE = (2, 3, 16, 16)


def _onnxruntime(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def _images(batch: int, seed: int) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(seed).uniform(-1, 1, (batch, 3, 16, 16)).astype(np.float32)}


def _has_onnxscript() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxscript") is not None


def test_conv_linear_model_with_a_dynamic_batch_matches_torch_on_onnxruntime(tmp_path):
    result = export_model(
        "torch_models:make_small_net", {"image": IMAGE}, {"image": {0: "batch"}}, tmp_path / "net.onnx"
    )
    assert result.path == tmp_path / "net.onnx" and result.path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]  # no external data, no temp files
    assert result.input_names == ("image",) and result.output_names == ("output",)
    if _has_onnxscript():
        assert result.exporter is Exporter.DYNAMO and result.fallback_reason is None
    proto = onnx.load(str(result.path))
    assert [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [
        "batch", 3, 16, 16,
    ]
    module = load_module("torch_models:make_small_net")
    for batch in (1, 5):  # neither is the example's batch of 2
        feed = _images(batch, seed=batch)
        exported = _onnxruntime(result.path, feed)["output"]
        reference = torch_reference(module, feed)["output"]
        assert exported.shape == reference.shape == (batch, 10)
        np.testing.assert_allclose(exported, reference, rtol=1e-4, atol=1e-5)


def _key_in_subprocess() -> dict:
    code = (
        "import json; from pytest_trt.prepare.torch_key import export_key; "
        "print(json.dumps(export_key('torch_models:make_small_net', {'image': (2, 3, 16, 16)}, "
        "{'image': {0: 'batch'}}, {})))"
    )
    path = os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": path}, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_export_key_is_stable_across_processes_and_changes_with_a_weight():
    first, second = _key_in_subprocess(), _key_in_subprocess()
    assert first == second
    here = export_key("torch_models:make_small_net", {"image": IMAGE}, {"image": {0: "batch"}}, {})
    assert here == first

    import torch

    changed = load_module("torch_models:make_small_net")
    with torch.no_grad():
        changed.head.bias[3] += 1e-3
    other = export_key(changed, {"image": IMAGE}, {"image": {0: "batch"}}, {})
    assert other["module"]["weights"] != here["module"]["weights"]
    assert {k: v for k, v in other.items() if k != "module"} == {k: v for k, v in here.items() if k != "module"}

    buffers = load_module("torch_models:make_small_net")
    buffers.norm.running_mean += 0.5  # a buffer, not a parameter
    assert export_key(buffers, {"image": IMAGE}, {"image": {0: "batch"}}, {}) != here


def test_export_key_changes_with_inputs_axes_options_and_plain_attributes():
    from torch_models import FlagNet

    base = export_key(FlagNet(True), {"x": (2, 4)}, None, {})
    assert export_key(FlagNet(True), {"x": (2, 4)}, None, {}) == base
    assert export_key(FlagNet(False), {"x": (2, 4)}, None, {})["module"] != base["module"]
    assert export_key(FlagNet(True), {"x": (3, 4)}, None, {})["inputs"] != base["inputs"]
    assert export_key(FlagNet(True), {"x": (2, 4)}, {"x": {0: "batch"}}, {})["dynamic"] != base["dynamic"]
    assert export_key(FlagNet(True), {"x": (2, 4)}, None, {"opset": 18})["options"] != base["options"]
    assert export_key(FlagNet(True), {"x": (2, 4)}, None, {"seed": 1})["inputs"] != base["inputs"]
    from torch_models import ConfigNet, ScaleConfig

    config = export_key(ConfigNet(ScaleConfig()), {"x": (2, 4)}, None, {})
    assert export_key(ConfigNet(ScaleConfig()), {"x": (2, 4)}, None, {}) == config
    assert export_key(ConfigNet(ScaleConfig(factor=3.0)), {"x": (2, 4)}, None, {})["module"] != config["module"]
    with pytest.raises(TorchModelError, match=r"unknown export option 'opset_version' .known: exporter, opset"):
        export_key(FlagNet(True), {"x": (2, 4)}, None, {"opset_version": 18})


def _held_state_changes():
    import torch

    def scale(m):
        m.scale = torch.tensor(3.0)

    def scale_dtype(m):
        m.scale = torch.tensor(2.0, dtype=torch.float64)

    def offsets(m):
        m.offsets[1] = 0.75

    def offsets_shape(m):
        m.offsets = m.offsets.reshape(2, 1)

    def in_list(m):
        m.steps[1] += 1

    def in_tuple(m):
        m.pair = (torch.tensor(3.5), 4)

    def plain_in_tuple(m):
        m.pair = (m.pair[0], 5)

    def in_dict(m):
        m.named["bias"] = torch.tensor(0.5)

    def child_attribute(m):
        m.child.gain = torch.tensor(2.5)

    def held_by_object(m):
        m.holder.table[0] = 9.0

    def unregistered_module(m):
        with torch.no_grad():
            m.unregistered[0].bias[0] += 1.0

    return [scale, scale_dtype, offsets, offsets_shape, in_list, in_tuple, plain_in_tuple, in_dict,
            child_attribute, held_by_object, unregistered_module]


def test_export_key_covers_tensors_and_arrays_held_outside_parameters_and_buffers():
    from torch_models import HeldStateNet

    base = export_key(HeldStateNet(), {"x": (2, 4)}, None, {})
    assert export_key(HeldStateNet(), {"x": (2, 4)}, None, {}) == base  # bytes, not object identity
    keys = {}
    for change in _held_state_changes():
        module = HeldStateNet()
        change(module)
        keys[change.__name__] = export_key(module, {"x": (2, 4)}, None, {})["module"]
        assert keys[change.__name__] != base["module"], change.__name__
    assert len({json.dumps(k, sort_keys=True) for k in keys.values()}) == len(keys)


def test_modules_without_held_state_key_as_before():
    # Keys stored by earlier versions keep matching: no "state" part where nothing is held.
    from torch_models import FlagNet, SettingsNet

    for module in (load_module("torch_models:make_small_net"), FlagNet(True), SettingsNet()):
        assert set(export_key(module, {"x": (2, 4)}, None, {})["module"]) == {"class", "weights", "attributes", "source"}


def test_a_flag_frozen_at_export_makes_torch_and_the_export_disagree(tmp_path):
    from torch_models import FlagNet

    module = FlagNet(double=True)
    result = export_model(module, {"x": (2, 4)}, {"x": {0: "batch"}}, tmp_path / "flag.onnx")
    feed = {"x": np.ones((3, 4), np.float32)}
    np.testing.assert_array_equal(_onnxruntime(result.path, feed)["output"], torch_reference(module, feed)["output"])
    module.double = False  # forward now takes the other branch; the ONNX file keeps the first
    exported, reference = _onnxruntime(result.path, feed)["output"], torch_reference(module, feed)["output"]
    assert np.all(exported == 2.0) and np.all(reference == 3.0)


def test_a_branch_on_data_falls_back_to_torchscript_which_freezes_it(tmp_path):
    from torch_models import SignNet

    result = export_model(SignNet(), {"x": np.ones((2, 3), np.float32)}, None, tmp_path / "sign.onnx")
    assert result.exporter is Exporter.TORCHSCRIPT
    if _has_onnxscript():
        assert "data-dependent" in result.fallback_reason
    assert any(w.startswith("TracerWarning") for w in result.warnings)
    feed = {"x": -np.ones((2, 3), np.float32)}  # the other branch
    assert np.all(_onnxruntime(result.path, feed)["output"] == -2.0)
    assert np.all(torch_reference(SignNet(), feed)["output"] == -3.0)


def test_a_failed_export_names_torchs_reason_and_leaves_no_file(tmp_path):
    if not _has_onnxscript():
        pytest.skip("the dynamo exporter needs onnxscript")
    from torch_models import SignNet

    target = tmp_path / "out" / "sign.onnx"
    with pytest.raises(ExportError) as raised:
        export_model(SignNet(), {"x": (2, 3)}, None, target, exporter="dynamo")
    message = str(raised.value)
    assert message.startswith("torch.onnx.export failed for torch_models.SignNet: dynamo exporter: ")
    assert "GuardOnDataDependentSymNode" in message and "\x1b[" not in message
    assert isinstance(raised.value, ModelError)
    assert list(target.parent.iterdir()) == []


def test_inputs_bind_to_forward_by_name_and_dict_outputs_keep_their_keys(tmp_path):
    example = {"scale": np.full((1, 3), 2.0, np.float32), "x": (2, 4)}  # not forward's order
    result = export_model("torch_models:make_two_heads", example, {"x": {0: "batch"}}, tmp_path / "two.onnx")
    assert result.input_names == ("x", "scale")  # forward's order
    assert result.output_names == ("logits", "probs")
    feed = {"x": np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32), "scale": example["scale"]}
    exported = _onnxruntime(result.path, feed)
    reference = torch_reference("torch_models:make_two_heads", feed)
    assert list(reference) == ["logits", "probs"]
    for name in reference:
        np.testing.assert_allclose(exported[name], reference[name], rtol=1e-5, atol=1e-6)


def test_output_names_rename_the_outputs_in_the_file_and_the_reference(tmp_path):
    result = export_model(
        "torch_models:make_small_net", {"image": IMAGE}, None, tmp_path / "n.onnx", output_names=["logits"]
    )
    assert [o.name for o in onnx.load(str(result.path)).graph.output] == ["logits"]
    assert list(torch_reference("torch_models:make_small_net", _images(2, 0), output_names=["logits"])) == ["logits"]
    with pytest.raises(TorchModelError, match=r"output_names has 2 names but .* returns 1 tensors"):
        export_model("torch_models:make_small_net", {"image": IMAGE}, None, tmp_path / "m.onnx", output_names=["a", "b"])


def test_torch_reference_runs_fp32_on_a_copy_of_a_half_module():
    import torch

    module = load_module("torch_models:make_small_net").half()
    outputs = torch_reference(module, _images(2, 0))
    assert outputs["output"].dtype == np.float32
    assert next(module.parameters()).dtype == torch.float16  # the user's module is left as it was


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("torch_models.make_small_net", "must have the form 'pkg.mod:func'"),
        ("no_such_module_here:make", "torch='no_such_module_here:make': cannot import 'no_such_module_here' (ModuleNotFoundError"),
        ("torch_models:make_big_net", "torch='torch_models:make_big_net': 'torch_models' has no attribute 'make_big_net'"),
        ("torch_models:NOT_CALLABLE", "torch='torch_models:NOT_CALLABLE' names a int, which is not callable"),
        ("torch_models:make_nothing", "torch='torch_models:make_nothing' returned a int, not a torch.nn.Module"),
        (17, "must be a callable returning a torch.nn.Module or a 'pkg.mod:func' string"),
    ],
)
def test_a_bad_factory_is_an_error_naming_it(factory, message, tmp_path):
    with pytest.raises(TorchModelError) as raised:
        export_model(factory, {"image": IMAGE}, None, tmp_path / "x.onnx")
    assert message in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_a_factory_that_raises_is_an_error_with_its_reason(tmp_path):
    def broken():
        raise RuntimeError("checkpoint missing")

    with pytest.raises(TorchModelError, match=r"the factory raised RuntimeError: checkpoint missing"):
        export_model(broken, {"x": (2, 4)}, None, tmp_path / "x.onnx")


@pytest.mark.parametrize(
    ("example", "dynamic", "message"),
    [
        ({"img": IMAGE}, None, "input 'img' is not a parameter of torch_models.SmallNet.forward (its parameters: image)"),
        ({}, None, "example_inputs must map each input name"),
        ({"image": (2, 0, 16, 16)}, None, "example_inputs['image'] must be a shape of positive ints"),
        ({"image": "big"}, None, "must be a shape tuple, a numpy array or a torch tensor, got str"),
    ],
)
def test_bad_example_inputs_are_errors_naming_them(example, dynamic, message, tmp_path):
    with pytest.raises(TorchModelError) as raised:
        export_model("torch_models:make_small_net", example, dynamic, tmp_path / "x.onnx")
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("dynamic", "message"),
    [
        ({"x": {0: "batch"}}, "dynamic names input 'x', which example_inputs does not have (inputs: image)"),
        ({"image": {4: "batch"}}, "dynamic['image']: axis 4 is not an axis of an input of rank 4"),
        ({"image": {0: "the batch"}}, "dynamic['image'][0] must be a dim name like 'batch', got 'the batch'"),
        ({"image": [0]}, "dynamic['image'] must be a dict {axis: 'dim name'}, got [0]"),
    ],
)
def test_bad_axes_are_the_marks_own_errors(dynamic, message, tmp_path):
    # The export checks dynamic= as trt_model does: the same messages, from one place.
    with pytest.raises(SpecError) as raised:
        export_model("torch_models:make_small_net", {"image": IMAGE}, dynamic, tmp_path / "x.onnx")
    assert str(raised.value) == message
    with pytest.raises(SpecError) as marked:
        make_model_spec(torch="torch_models:make_small_net", example_inputs={"image": IMAGE}, dynamic=dynamic)
    assert str(marked.value) == message


def test_a_missing_required_input_is_an_error():
    with pytest.raises(TorchModelError, match="forward needs parameter 'x', which example_inputs lacks"):
        torch_reference("torch_models:make_two_heads", {"scale": np.ones((1, 3), np.float32)})


def test_example_shapes_give_the_same_seeded_values_and_tensors_pass_through():
    import torch

    first, again = example_arrays({"x": (2, 3)}), example_arrays({"x": (2, 3)})
    np.testing.assert_array_equal(first["x"], again["x"])
    assert first["x"].dtype == np.float32 and np.abs(first["x"]).max() <= 1.0
    assert not np.array_equal(example_arrays({"x": (2, 3)}, seed=1)["x"], first["x"])
    tensor = torch.arange(6, dtype=torch.int64).reshape(2, 3)
    np.testing.assert_array_equal(example_arrays({"ids": tensor})["ids"], tensor.numpy())


def test_an_unknown_exporter_or_opset_is_an_error(tmp_path):
    with pytest.raises(TorchModelError, match="exporter must be one of auto, dynamo, torchscript"):
        export_model("torch_models:make_small_net", {"image": IMAGE}, None, tmp_path / "x.onnx", exporter="jit")
    with pytest.raises(TorchModelError, match="opset must be an ONNX opset number"):
        export_model("torch_models:make_small_net", {"image": IMAGE}, None, tmp_path / "x.onnx", opset=True)


# Export keys written by earlier runs must keep matching: these were computed before the key's
# encoding was last reworked. torch's own internal attributes are skipped, so only the test
# module's plain attributes are in them.
@pytest.mark.parametrize(
    ("count", "attributes"),
    [
        (1, "bb0567c796cfedc56a1fba34dd2c98456fb8e275617b6b6043647be100a224eb"),
        (1.0, "2d110685ddf6b261ba8e10e924e7019c4e21d0d52818c44abea960970d129ee8"),
        (True, "d91b8f6a15aa8dd4b0c416642c4299e0fdd6bea3f886c5b2a8dfa3b718433391"),
    ],
    ids=["int", "float", "bool"],
)
def test_export_keys_stay_as_earlier_runs_stored_them(count, attributes):
    from torch_models import SettingsNet

    key = export_key(SettingsNet(count), {"x": (2, 4)}, {"x": {-2: "batch"}}, {"opset": 18})
    assert key["module"]["class"] == "torch_models.SettingsNet"
    assert key["module"]["attributes"] == attributes
    assert key["inputs"] == [{
        "name": "x", "shape": [2, 4], "dtype": "float32",
        "sha256": "ef1802b6cbb4cd194a27d00c87bb40aee0398b1ac19131861ef0ff90bceb45f7",
    }]
    assert key["dynamic"] == {"x": {"0": "batch"}}
    assert key["options"] == {"opset": 18, "exporter": "auto", "output_names": None, "seed": 0}
    assert key["format"] == 1
