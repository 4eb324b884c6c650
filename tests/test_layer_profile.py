"""Per-layer times: onnxruntime's trace read, the compact form kept, and a regression explained."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx_builders import matmul_chain

from pytest_trt import backends, serde
from pytest_trt.backends.layer_profile import KEPT_LAYERS, LayerProfile, LayerTime, parse_ort_trace
from pytest_trt.judge.layer_times import align, where_time_went
from pytest_trt.model import load_model
from pytest_trt.specs import BuildSpec


def _event(name: str, ts: float, dur: float, op: str = "MatMul", cat: str = "Node") -> dict:
    args = {"op_name": op, "provider": "CPUExecutionProvider",
            "input_type_shape": [{"float": [8, 256]}, {"float": [256, 64]}], "output_type_shape": [{"float": [8, 64]}]}
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "ph": "X", "args": args}


def _run(ts: float, dur: float) -> dict:
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur, "ph": "X", "args": {}}


def test_the_trace_gives_each_node_its_median_run_without_the_warm_up():
    events = [_run(0, 100), _event("mm_kernel_time", 10, 90_000)]  # warm-up: dropped
    for start, mm, relu in ((200, 40, 5), (400, 60, 7), (600, 50, 6)):
        events += [_run(start, 100), _event("mm_kernel_time", start + 1, mm),
                   _event("relu_kernel_time", start + 50, relu, op="Relu"),
                   _event("relu_fence_before", start + 49, 1, op="Relu")]
    found = parse_ort_trace(events, ["CPUExecutionProvider"])
    assert found.runs == 3 and found.total_layers == 2
    assert [(layer.name, layer.op, layer.ms) for layer in found.layers] == [("mm", "MatMul", 0.05), ("relu", "Relu", 0.006)]
    assert found.layers[0].shapes == "8x256,256x64->8x64"
    assert found.total_ms == pytest.approx(0.056) and found.note == ""


def test_gpu_provider_times_are_said_to_be_host_side():
    events = [_run(0, 10), _run(20, 10), _event("n_kernel_time", 21, 5)]
    found = parse_ort_trace(events, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert "host-side" in found.note and "one fused node" in found.note


def _profile(layers: dict[str, tuple[str, float]], *, complete: bool = True) -> LayerProfile:
    times = tuple(LayerTime(name, op, ms, shapes=f"{op}-shape") for name, (op, ms) in layers.items())
    total = sum(t.ms for t in times)
    return LayerProfile("test", 10, total, len(times) if complete else len(times) + 5, times)


def test_a_regression_names_the_layer_whose_time_grew_most_first():
    before = _profile({"enc/MatMul_1": ("MatMul", 0.42), "enc/Add": ("Add", 0.10), "old": ("Relu", 0.02)})
    after = _profile({"enc/MatMul_1": ("MatMul", 0.73), "enc/Add": ("Add", 0.15), "new": ("Sigmoid", 0.02)})
    lines = where_time_went(before, after)
    assert lines[0] == "+0.31 ms of +0.36 ms in 'enc/MatMul_1' (MatMul, 0.42 -> 0.73 ms, +74%)"
    assert lines[1].startswith("+0.05 ms of +0.36 ms in 'enc/Add' (Add, 0.10 -> 0.15 ms")
    assert lines[2] == "+0.02 ms of +0.36 ms in 'new' (Sigmoid, appeared: 0.02 ms)"
    assert any(c.name == "old" and c.after_ms is None for c in align(before, after))  # vanished


def test_renamed_layers_are_paired_by_op_and_shapes():
    before = _profile({"Conv_0 + Relu_1": ("Conv", 1.0)})
    after = _profile({"conv1 + relu1": ("Conv", 1.5)})
    (line,) = where_time_went(before, after)
    assert line == "+0.50 ms of +0.50 ms in 'conv1 + relu1' (Conv, 1.00 -> 1.50 ms, +50%, was 'Conv_0 + Relu_1')"


def test_a_layer_beyond_an_incomplete_baseline_profile_is_not_called_new():
    before = _profile({"a": ("MatMul", 1.0)}, complete=False)
    after = _profile({"a": ("MatMul", 1.0), "b": ("Add", 0.5)})
    assert all("appeared" not in line for line in where_time_went(before, after))


@pytest.fixture(scope="module")
def backend():
    return backends.create("onnxruntime")


def test_the_onnxruntime_runner_profiles_in_a_session_of_its_own(backend, tmp_path):
    model = load_model(matmul_chain(tmp_path / "chain.onnx"))
    runner = backend.load(backend.build(model, BuildSpec()), model, BuildSpec())
    feed = {"x": np.ones((8, 256), np.float32)}
    found = runner.profile_layers(feed, 3)
    assert found.runs == 3 and found.layers[0].name == "encoder/layer.3/MatMul_1" and found.layers[0].op == "MatMul"
    assert {layer.provider for layer in found.layers} == {"CPUExecutionProvider"}
    # The timed session itself is left without the profiler, and no trace file is left behind.
    assert runner._session.get_session_options().enable_profiling is False
    assert not list(tmp_path.glob("*.json"))
    runner.close()


def test_a_500_node_model_keeps_a_bounded_profile(backend, tmp_path):
    model = load_model(matmul_chain(tmp_path / "big.onnx", hot_width=256, nodes=497))
    build = BuildSpec(options=(("graph_optimization_level", "disable"),))
    runner = backend.load(backend.build(model, build), model, build)
    found = runner.profile_layers({"x": np.ones((8, 256), np.float32)}, 2)
    assert found.total_layers == 500
    kept = found.compact()
    size = len(serde.dumps(kept))
    assert len(kept.layers) == KEPT_LAYERS and not kept.complete and size < 6000, size
    assert serde.from_data(LayerProfile, json.loads(serde.dumps(kept))) == kept
    runner.close()


def test_the_inspector_json_gives_tensorrt_layers_their_type_and_shapes():
    from pytest_trt.backends.tensorrt_layers import layer_facts

    text = json.dumps({"Layers": [
        {"Name": "Conv_0 + Relu_1", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "x", "Dimensions": [1, 3, 32, 32]}], "Outputs": [{"Name": "r", "Dimensions": [1, 8, 32, 32]}]},
        "Reformatting CopyNode",  # LAYER_NAMES_ONLY writes bare names: no facts to take
    ]})
    facts = layer_facts(text)
    assert list(facts) == ["Conv_0 + Relu_1"]
    assert facts["Conv_0 + Relu_1"].op == "CaskConvolution" and facts["Conv_0 + Relu_1"].shapes == "1x3x32x32->1x8x32x32"
    assert layer_facts("not json") == {}


def test_a_baseline_entry_keeps_its_profile_and_one_without_has_no_key():
    from pytest_trt.baselines.entry import BaselineEntry, SampleSummary

    plain = BaselineEntry(latency_ms=SampleSummary(n=3, quantiles={"p0": 1.0, "p50": 1.1}))
    assert "layers" not in plain.to_file()  # older readers see the file as it always was
    kept = _profile({"enc/MatMul_1": ("MatMul", 0.42)}).compact()
    with_layers = BaselineEntry(latency_ms=plain.latency_ms, layers=kept)
    data = json.loads(serde.dumps(with_layers.to_file()))
    assert BaselineEntry.from_file(data) == with_layers and data["layers"]["layers"][0]["name"] == "enc/MatMul_1"
