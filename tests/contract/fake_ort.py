"""A GPU build of onnxruntime, faked on the CPU one, for the GPU adapters' unit tests.

Sessions compute with the real CPU onnxruntime; what the fake adds is the GPU surface the
adapters use: ``get_available_providers``, provider options (recorded), ``get_providers``,
IOBinding on "device" pointers of ``fake_cuda.GPU`` and ``run_with_iobinding``, run config
entries. ``FakeOrt(off_stream=True)`` plays a provider whose work is not on the plugin's stream:
with the no-sync run option its outputs are not there yet when the stream's next copy runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime

from .fake_cuda import COMPUTE_MS, GPU

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class FakeRunOptions:
    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    def add_run_config_entry(self, key: str, value: str) -> None:
        self.entries[key] = value


class FakeBinding:
    def __init__(self) -> None:
        self.inputs: dict[str, tuple[Any, list[int], int]] = {}
        self.outputs: dict[str, tuple[Any, list[int], int]] = {}
        self.devices: set[tuple[str, int]] = set()

    def bind_input(self, name: str, device: str, device_id: int, element_type: Any, shape: list[int], ptr: int) -> None:
        self.inputs[name] = (element_type, list(shape), ptr)
        self.devices.add((device, device_id))

    def bind_output(self, name: str, device: str, device_id: int, element_type: Any, shape: list[int], ptr: int) -> None:
        self.outputs[name] = (element_type, list(shape), ptr)
        self.devices.add((device, device_id))


@dataclass
class SessionRecord:
    source: Any
    providers: list[Any]
    fusions_off: list[str] = field(default_factory=list)
    runs_with_binding: list[dict[str, str]] = field(default_factory=list)


class FakeSession:
    def __init__(self, ort: FakeOrt, source: Any, sess_options: Any, providers: list[Any] | None, **kwargs: Any) -> None:
        if kwargs.get("enable_fallback") != 0:
            raise AssertionError("the adapters must open sessions with enable_fallback=0")
        self._ort = ort
        self.record = SessionRecord(source, list(providers or []), list(kwargs.get("disabled_optimizers") or []))
        ort.sessions.append(self.record)
        names = [p[0] if isinstance(p, tuple) else p for p in providers or []]
        graph = any(isinstance(p, tuple) and p[1].get("enable_cuda_graph") == "1" for p in providers or [])
        if graph and ort.graph_refusal:
            raise RuntimeError(ort.graph_refusal)
        self._providers = [n for n in names if n not in ort.dropped] or [CPU]
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        path = getattr(sess_options, "optimized_model_filepath", "")
        if path:
            options.optimized_model_filepath = path
        self._real = onnxruntime.InferenceSession(
            source, sess_options=options, providers=[CPU], disabled_optimizers=self.record.fusions_off or None
        )

    def get_providers(self) -> list[str]:
        return list(self._providers)

    def run(self, names: list[str], feed: dict[str, np.ndarray], run_options: Any = None) -> list[np.ndarray]:
        return self._real.run(names, feed)

    def io_binding(self) -> FakeBinding:
        return FakeBinding()

    def run_with_iobinding(self, binding: FakeBinding, run_options: FakeRunOptions | None = None) -> None:
        entries = dict(run_options.entries) if run_options is not None else {}
        self.record.runs_with_binding.append(entries)
        if self._ort.writes_nothing:
            return
        if self._ort.off_stream and entries.get("disable_synchronize_execution_providers") == "1":
            return  # the outputs land later, after the stream's next copies ran

        def compute() -> None:
            feed = {}
            for name, (element_type, shape, ptr) in binding.inputs.items():
                dtype = np.dtype(element_type)
                count = int(np.prod(shape, dtype=np.int64))
                feed[name] = GPU.memory[ptr][: count * dtype.itemsize].view(dtype).reshape(shape).copy()
            names = list(binding.outputs)
            for name, value in zip(names, self._real.run(names, feed), strict=True):
                ptr = binding.outputs[name][2]
                raw = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
                GPU.memory[ptr][: raw.size] = raw

        GPU.run(compute, COMPUTE_MS)


class FakeOrt:
    """The module face: ``InferenceSession``, ``SessionOptions``, ``RunOptions``, ... ."""

    GraphOptimizationLevel = onnxruntime.GraphOptimizationLevel
    SessionOptions = onnxruntime.SessionOptions
    RunOptions = FakeRunOptions
    __name__ = "fake_onnxruntime"
    __version__ = "1.30.0"
    __file__ = "/nowhere/onnxruntime/__init__.py"

    def __init__(
        self,
        providers: tuple[str, ...] = (CUDA, CPU),
        *,
        dropped: tuple[str, ...] = (),
        graph_refusal: str = "",
        off_stream: bool = False,
        writes_nothing: bool = False,
    ) -> None:
        self.providers = providers
        self.dropped = dropped  # compiled in, but not enabled in sessions (its libraries fail)
        self.graph_refusal = graph_refusal
        self.off_stream = off_stream
        self.writes_nothing = writes_nothing
        self.sessions: list[SessionRecord] = []

    def get_available_providers(self) -> list[str]:
        return list(self.providers)

    def InferenceSession(self, source: Any, sess_options: Any = None, providers: Any = None, **kwargs: Any) -> FakeSession:
        return FakeSession(self, source, sess_options, providers, **kwargs)
