"""The TensorRT adapter and its test double, checked against the real TensorRT 11.x API.

Runs wherever the 11.x wheels are installed (CI installs them; see docs/tensorrt.md):
``tensorrt-lean-cu13-bindings`` and ``-libs`` (imported), ``tensorrt-cu13-bindings`` (its .so is
read, never imported) and ``pyelftools`` (reads the .so's symbol table).
"""

from __future__ import annotations

import importlib.util
import os
import re
import types
from pathlib import Path

import pytest

from . import fake_trt
from .trt_surface import (
    DOC_ANCHORS,
    MODULE,
    Use,
    check_source,
    load_surface,
    uses_in_double,
    uses_in_source,
)

ADAPTER = Path(__file__).resolve().parents[2] / "pytest_trt" / "backends" / "tensorrt.py"
# Receivers in the adapter that hold no TensorRT object (everything else must be classified).
NON_TRT = {
    "self", "np", "time", "json", "onnx", "options", "build", "model", "artifact", "spec", "binding", "b",
    "array", "status", "cuda", "session", "info", "layer", "problems", "metadata", "given",
    "concrete", "settings", "feed", "inputs", "outputs", "bound", "profiles", "exc", "level",
    "extra_flags", "flag_names", "network_flags", "name", "triple", "low", "opt", "high", "s",
    "spec.name", "self._cuda", "self._stream", "self._bindings", "self._timing_cache",
    "self._progress", "self._availability", "services", "made", "self._engine_cache", "self._parts",
    "network_typing", "triples", "shapes", "bounds", "shape", "tensorrt_layers", "runner",
}


def _missing() -> str:
    wanted = {
        "tensorrt_lean_bindings": "tensorrt-lean-cu13-bindings and tensorrt-lean-cu13-libs 11.x",
        "tensorrt_bindings": "tensorrt-cu13-bindings 11.x",
        "elftools": "pyelftools",
    }
    absent = [pip for module, pip in wanted.items() if importlib.util.find_spec(module) is None]
    return f"the real TensorRT API is not installed here (pip install {', '.join(absent)})" if absent else ""


if _missing() and os.environ.get("PYTEST_TRT_REQUIRE_CONTRACT"):
    # CI sets this: there the contract must run, and a failed install must not pass as a skip.
    raise RuntimeError(f"PYTEST_TRT_REQUIRE_CONTRACT is set, but {_missing()}")
pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or "n/a")


@pytest.fixture(scope="module")
def surface():
    return load_surface()


@pytest.fixture(scope="module")
def adapter_source() -> str:
    return ADAPTER.read_text()


def test_surface_is_the_11x_api_with_both_sources(surface) -> None:
    assert surface.version.startswith("11.")
    assert surface.full is not None
    # The .so's docstrings are tied to their methods through its symbol table.
    assert surface.full.params("IBuilderConfig", "set_memory_pool_limit").names == ("pool", "pool_size")
    assert surface.full.params("Builder", "build_serialized_network").names == ("network", "config")


@pytest.mark.parametrize("key", sorted(DOC_ANCHORS))
def test_every_doc_anchor_names_exactly_one_docstring(surface, key) -> None:
    assert surface.full.doc(*key) is not None


def test_every_tensorrt_name_and_arity_in_the_adapter_is_real(surface, adapter_source) -> None:
    assert check_source(adapter_source, surface, NON_TRT) == []


def test_the_walk_sees_the_build_and_run_calls(adapter_source) -> None:
    uses = {(u.cls, u.member, u.kind) for u in uses_in_source(adapter_source, NON_TRT)[0]}
    for expected in [
        (MODULE, "Builder", "call"),
        ("Builder", "build_serialized_network", "call"),
        ("OnnxParser", "parse_from_file", "call"),
        ("IBuilderConfig", "set_memory_pool_limit", "call"),
        ("Builder", "create_optimization_profile", "call"),
        ("IOptimizationProfile", "set_shape", "call"),
        ("IBuilderConfig", "add_optimization_profile", "call"),
        ("ICudaEngine", "num_optimization_profiles", "get"),
        ("ICudaEngine", "get_tensor_profile_shape", "call"),
        ("IExecutionContext", "set_optimization_profile_async", "call"),
        ("Runtime", "deserialize_cuda_engine", "call"),
        ("Runtime", "engine_host_code_allowed", "set"),
        ("IExecutionContext", "set_input_shape", "call"),
        ("IExecutionContext", "execute_async_v3", "call"),
        ("IProgressMonitor", "phase_start", "override"),
        ("ILogger", "log", "override"),
    ]:
        assert expected in uses


@pytest.mark.parametrize(
    ("original", "mutated", "reported"),
    [
        # a name that does not exist (8.x API)
        ("execute_async_v3(self._stream.handle)", "execute_async_v2(self._stream.handle)", "execute_async_v2"),
        # optimization profiles: a misspelt name, a lost argument
        ("set_optimization_profile_async(index, ", "set_optimisation_profile_async(index, ", "set_optimisation_profile_async"),
        ("set_optimization_profile_async(index, self._stream.handle)", "set_optimization_profile_async(index)", "set_optimization_profile_async"),
        ("range(engine.num_optimization_profiles)", "range(engine.num_profiles)", "num_profiles"),
        ("builder.create_optimization_profile()", "builder.create_profile()", "create_profile"),
        ("config.add_optimization_profile(profile)", "config.add_optimization_profiles(profile)", "add_optimization_profiles"),
        # a builder flag that 11.x removed
        ("clear_flag(trt.BuilderFlag.TF32)", "clear_flag(trt.BuilderFlag.FP16)", "FP16"),
        # wrong arity, builder side (checked against tensorrt.so's docstrings)
        ("set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, ", "set_memory_pool_limit(", "set_memory_pool_limit"),
        ("builder.build_serialized_network(network, config)", "builder.build_serialized_network(network)", "build_serialized_network"),
        # wrong arity, runtime side (checked against the lean module's signatures)
        ("set_input_shape(spec.name, array.shape)", "set_input_shape(spec.name)", "set_input_shape"),
        ("trt.Runtime(logger)", "trt.Runtime(logger, 0)", "Runtime"),
        # an override that would never be called
        ("def phase_finish(self, phase_name: str)", "def phase_finish(self, phase_name: str, extra: int)", "phase_finish"),
        # writing a read-only property
        ("runtime.engine_host_code_allowed = version_compatible", "engine.num_io_tensors = 1", "num_io_tensors"),
    ],
)
def test_the_checker_fails_on_a_wrong_name_or_arity(surface, adapter_source, original, mutated, reported) -> None:
    assert original in adapter_source
    problems = check_source(adapter_source.replace(original, mutated, 1), surface, NON_TRT)
    assert problems and any(reported in p for p in problems), problems


def test_a_new_variable_holding_a_tensorrt_object_must_be_classified(surface, adapter_source) -> None:
    original = "\n    network = builder.create_network(flags)\n"
    assert original in adapter_source
    sneaky = adapter_source.replace(
        original, "\n    net = builder.create_network(flags)\n    net.mark_output(None)\n    network = net\n"
    )
    problems = check_source(sneaky, surface, NON_TRT)
    assert any("unclassified receiver" in p and "net.mark_output" in p for p in problems), problems


def test_an_access_on_a_call_result_must_go_through_a_named_variable(surface, adapter_source) -> None:
    chained = adapter_source.replace("{error.desc()}", "{parser.get_error(index).describe()}")
    problems = check_source(chained, surface, NON_TRT)
    assert any(".describe on the result of a call on parser" in p for p in problems), problems


def test_the_double_matches_the_real_api(surface) -> None:
    uses = uses_in_double(fake_trt)
    assert Use("BuilderFlag", "TF32", "get") in uses and Use("Runtime", "deserialize_cuda_engine", "call", 1) in uses
    assert [p for p in (surface.check(u) for u in uses) if p] == []


def test_the_double_defines_everything_the_adapter_uses(adapter_source) -> None:
    for use in uses_in_source(adapter_source, NON_TRT)[0]:
        if use.cls == MODULE:
            assert hasattr(fake_trt, use.member), use.where()
        else:
            assert hasattr(getattr(fake_trt, use.cls), use.member), use.where()


def test_the_double_check_catches_drift(surface) -> None:
    drifted = types.ModuleType("drifted")

    class IExecutionContext:
        def execute_async_v3(self) -> bool:  # lost its stream argument
            return True

        def set_input_shapes(self, name: str, shape: tuple) -> bool:  # misspelt
            return True

    IExecutionContext.__module__ = "drifted"
    drifted.IExecutionContext = IExecutionContext
    problems = [p for p in (surface.check(u) for u in uses_in_double(drifted)) if p]
    assert any(re.search(r"execute_async_v3.*0 positional", p) for p in problems), problems
    assert any("set_input_shapes" in p for p in problems), problems


def test_a_use_of_a_full_only_method_without_a_docstring_is_an_error(surface, monkeypatch) -> None:
    # Which docstrings keep their symbol differs between builds of tensorrt.so (the cp311 and
    # cp312 wheels do), so take this one's away rather than rely on it being missing.
    assert ("OnnxParser", "supports_operator") not in DOC_ANCHORS
    docs = {key: text for key, text in surface.full.docs.items() if key != ("OnnxParser", "supports_operator")}
    monkeypatch.setattr(surface.full, "docs", docs)
    problem = surface.check(Use("OnnxParser", "supports_operator", "call", 1))
    assert problem and "add a DOC_ANCHORS entry" in problem


LAYERS = ADAPTER.with_name("tensorrt_layers.py")
# Receivers in the layers module (times and marked outputs) that hold no TensorRT object.
LAYERS_NON_TRT = {"self", "json", "timer", "timer.times", "stream", "layer", "t", "facts", "bind"}


def test_every_tensorrt_name_in_the_layers_module_is_real(surface) -> None:
    source = LAYERS.read_text()
    assert check_source(source, surface, LAYERS_NON_TRT) == []
    uses = {(u.cls, u.member, u.kind) for u in uses_in_source(source, LAYERS_NON_TRT)[0]}
    for expected in [
        ("IExecutionContext", "profiler", "set"),
        ("IExecutionContext", "enqueue_emits_profile", "set"),
        ("IExecutionContext", "report_to_profiler", "call"),
        ("ICudaEngine", "create_engine_inspector", "call"),
        ("EngineInspector", "execution_context", "set"),
        ("EngineInspector", "get_engine_information", "call"),
        ("IProfiler", "report_layer_time", "override"),
        # the diagnosis's marked outputs
        ("INetworkDefinition", "num_layers", "get"),
        ("INetworkDefinition", "get_layer", "call"),
        ("ILayer", "num_outputs", "get"),
        ("ILayer", "get_output", "call"),
        ("ITensor", "name", "get"),
        ("ITensor", "is_network_output", "get"),
        ("INetworkDefinition", "mark_output", "call"),
    ]:
        assert expected in uses


@pytest.mark.parametrize(
    ("original", "mutated", "reported"),
    [
        ("context.report_to_profiler()", "context.report_to_profiler_v2()", "report_to_profiler_v2"),
        ("context.enqueue_emits_profile = False", "context.enqueue_emits_profiles = False", "enqueue_emits_profiles"),
        ("trt.LayerInformationFormat.JSON", "trt.LayerInformationFormat.JSN", "JSN"),
        ("def report_layer_time(self, layer_name: str, ms: float)", "def report_layer_times(self, layer_name: str, ms: float)",
         "report_layer_times"),
        ("inspector.get_engine_information(trt.LayerInformationFormat.JSON)", "inspector.get_engine_information()",
         "get_engine_information"),
        # the diagnosis's marked outputs: misspelt, or a lost argument
        ("network.mark_output(tensor)", "network.mark_outputs(tensor)", "mark_outputs"),
        ("network.mark_output(tensor)", "network.mark_output()", "mark_output"),
        ("trt_layer.get_output(position)", "trt_layer.get_outputs(position)", "get_outputs"),
        ("range(trt_layer.num_outputs)", "range(trt_layer.num_output)", "num_output"),
        ("tensor.is_network_output", "tensor.is_output", "is_output"),
    ],
)
def test_the_checker_fails_on_a_misspelt_layer_call(surface, original, mutated, reported) -> None:
    source = LAYERS.read_text()
    assert original in source
    problems = check_source(source.replace(original, mutated, 1), surface, LAYERS_NON_TRT)
    assert problems and any(reported in p for p in problems), problems
