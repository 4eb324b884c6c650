"""TensorRT's layers: their times, from an ``IProfiler`` on an execution context of its own, with
their types and IO shapes from the engine inspector's JSON; and their outputs, marked as network
outputs for the accuracy diagnosis (``mark_outputs``).

The pass never touches the timed context: a second context of the same engine runs plain
enqueues (no CUDA graph) on the runner's stream with ``enqueue_emits_profile`` off, and
``report_to_profiler()`` after each one hands that run's layer times to the profiler, as trtexec
does with ``--separateProfileRun``. Layer names are the engine's fused layers ("Conv_0 +
Relu_1"); the inspector gives their types where the engine was built with DETAILED profiling
verbosity (the adapter's builds are). Like ``backends/tensorrt.py``, TensorRT objects live only
in variables named after their class, and the contract test (tests/contract/) checks every
TensorRT name used here against the real API. Not run where TensorRT is absent: no test double
stands for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from pytest_trt.backends.base import BackendError
from pytest_trt.backends.layer_profile import LayerProfile, LayerTime, from_times

SOURCE = "TensorRT IProfiler"


def mark_outputs(network: Any, names: Sequence[str]) -> None:
    """Make the layer outputs named ``names`` network outputs as well: a marked tensor is kept, not
    fused away, and the engine returns it (Polygraphy's ``--trt-outputs``)."""
    wanted = set(names)
    for index in range(network.num_layers):
        trt_layer = network.get_layer(index)
        for position in range(trt_layer.num_outputs):
            tensor = trt_layer.get_output(position)
            if tensor.name in wanted and not tensor.is_network_output:
                network.mark_output(tensor)


def _timer(trt: ModuleType) -> Any:
    class LayerTimer(trt.IProfiler):  # type: ignore[name-defined]  # a class of the untyped bindings
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.times: dict[str, list[float]] = {}

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.times.setdefault(layer_name, []).append(float(ms))

    return LayerTimer()


def _shapes(tensors: Any) -> str:
    dims = [t.get("Dimensions") for t in tensors if isinstance(t, dict)] if isinstance(tensors, list) else []
    return ",".join("x".join(str(d) for d in shape) for shape in dims if isinstance(shape, list))


def layer_facts(text: str) -> dict[str, LayerTime]:
    """Each layer's type and IO shapes from the inspector's JSON (names only at LAYER_NAMES_ONLY)."""
    try:
        layers = json.loads(text).get("Layers", [])
    except (ValueError, AttributeError):
        return {}
    facts = {}
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and "Name" in layer:
            name = str(layer["Name"])
            shapes = f"{_shapes(layer.get('Inputs'))}->{_shapes(layer.get('Outputs'))}"
            facts[name] = LayerTime(name, str(layer.get("LayerType", "")), 0.0, "tensorrt", shapes)
    return facts


def profile(trt: ModuleType, engine: Any, bind: Callable[[Any], object], stream: Any, runs: int) -> LayerProfile:
    """``runs`` profiled runs after one dropped; ``bind(context)`` sets the new context's input
    shapes and tensor addresses."""
    context = engine.create_execution_context()
    bind(context)
    timer = _timer(trt)
    context.profiler = timer
    context.enqueue_emits_profile = False
    for run in range(runs + 1):
        if not context.execute_async_v3(stream.handle):
            raise BackendError("profiling layers: execute_async_v3 returned False (see the TensorRT log)")
        stream.synchronize()
        context.report_to_profiler()
        if run == 0:
            timer.times.clear()  # the first run is warm-up
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    facts = layer_facts(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    return from_times(SOURCE, timer.times, facts, runs)
