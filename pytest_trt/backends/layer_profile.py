"""Per-layer times from a profiling pass, run apart from the timed loop (profiling slows what it
measures), and the compact form reports and baselines keep.

onnxruntime writes a Chrome trace when ``SessionOptions.enable_profiling`` is on: one
``<node>_kernel_time`` event per node and run, with the node's op type and provider in ``args``.
On the CPU provider a node's time is its kernel's wall time. On the CUDA provider it is the host
side of the node (the kernel launch and what the provider waits for), not the device's kernel
time, which only a source build with CUPTI reports; onnxruntime's TensorRT provider shows one
fused node for everything TensorRT runs. TensorRT's own per-layer times come from ``IProfiler``
(``backends/tensorrt.py``).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Layers a compact profile keeps by name: the slowest ones; the rest are summed in ``rest_ms``.
# At about 120 bytes of JSON a layer, a kept profile stays under 6 KB whatever the model's size.
KEPT_LAYERS = 40
# Runs of the profiling pass (after one untimed run that is dropped).
PROFILE_RUNS = 10
_KERNEL_TIME = "_kernel_time"


@dataclass(frozen=True)
class LayerTime:
    """One layer (an onnxruntime node, a TensorRT engine layer): its median time per run."""

    name: str
    op: str
    ms: float
    provider: str = ""
    shapes: str = ""  # input and output shapes, e.g. "1x64,64x64->1x64": aligns renamed layers


@dataclass(frozen=True)
class LayerProfile:
    """Per-layer times of one model on one backend, slowest first. ``total_ms`` is the sum over
    all layers, those left out of ``layers`` (``total_layers`` counts them all) included."""

    source: str  # what timed the layers, e.g. "onnxruntime profiler (CPUExecutionProvider)"
    runs: int
    total_ms: float
    total_layers: int
    layers: tuple[LayerTime, ...] = ()
    note: str = ""  # what the times mean where that is not the device's own time

    @property
    def complete(self) -> bool:
        """Every layer is kept by name: one missing from it did not run."""
        return len(self.layers) == self.total_layers

    @property
    def rest_ms(self) -> float:
        return max(0.0, self.total_ms - sum(layer.ms for layer in self.layers))

    def by_name(self) -> dict[str, LayerTime]:
        return {layer.name: layer for layer in self.layers}

    def compact(self, keep: int = KEPT_LAYERS) -> LayerProfile:
        """The slowest ``keep`` layers, times rounded to 4 significant digits."""
        kept = tuple(
            LayerTime(layer.name, layer.op, float(f"{layer.ms:.4g}"), layer.provider, layer.shapes)
            for layer in self.layers[:keep]
        )
        return LayerProfile(self.source, self.runs, float(f"{self.total_ms:.4g}"), self.total_layers, kept, self.note)

    def top_lines(self, count: int = 5) -> list[str]:
        """The slowest layers as ``-v`` shows them: name, op, time and share of the total."""
        lines = []
        for layer in self.layers[:count]:
            share = layer.ms / self.total_ms * 100 if self.total_ms > 0 else 0.0
            lines.append(f"{layer.name!r} ({layer.op}) {layer.ms:.3f} ms, {share:.0f}%")
        return lines


def from_times(
    source: str, per_run: Mapping[str, Sequence[float]], facts: Mapping[str, LayerTime], runs: int, note: str = ""
) -> LayerProfile:
    """A profile from each layer's times per run (ms): the median run, slowest layer first.
    ``facts`` gives each layer's op, provider and shapes (its ``ms`` is ignored)."""
    layers = []
    for name, times in per_run.items():
        fact = facts.get(name, LayerTime(name, "", 0.0))
        layers.append(LayerTime(name, fact.op, statistics.median(times), fact.provider, fact.shapes))
    layers.sort(key=lambda layer: (-layer.ms, layer.name))
    return LayerProfile(source, runs, sum(layer.ms for layer in layers), len(layers), tuple(layers), note)


# ---- onnxruntime's Chrome trace ------------------------------------------------------------------


def _shape_text(entries: Any) -> str:
    """``[{"float": [1, 64]}, ...]`` (onnxruntime's input/output_type_shape) as ``1x64,...``."""
    shapes = []
    for entry in entries if isinstance(entries, list) else []:
        for dims in entry.values() if isinstance(entry, dict) else []:
            shapes.append("x".join(str(d) for d in dims) if isinstance(dims, list) else "?")
    return ",".join(shapes)


def _runs(events: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """The (start, end) of each ``model_run``, in order."""
    spans = [(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))) for e in events if e.get("name") == "model_run"]
    return sorted(spans)


def parse_ort_trace(events: Sequence[Mapping[str, Any]], providers: Iterable[str], skip_runs: int = 1) -> LayerProfile:
    """A profile from onnxruntime's trace events; the first ``skip_runs`` runs are warm-up."""
    spans = _runs(events)[skip_runs:]
    per_run: dict[str, list[float]] = {}
    facts: dict[str, LayerTime] = {}
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith(_KERNEL_TIME):
            continue
        start = float(event.get("ts", 0))
        run = next((i for i, (low, high) in enumerate(spans) if low <= start <= high), None)
        if run is None:
            continue
        node = name[: -len(_KERNEL_TIME)]
        args = event.get("args") or {}
        times = per_run.setdefault(node, [0.0] * len(spans))
        times[run] += float(event.get("dur", 0)) / 1000.0  # µs -> ms; a node may run more than once a run
        if node not in facts:
            shapes = f"{_shape_text(args.get('input_type_shape'))}->{_shape_text(args.get('output_type_shape'))}"
            facts[node] = LayerTime(node, str(args.get("op_name", "")), 0.0, str(args.get("provider", "")), shapes)
    shown = ", ".join(providers)
    note = ""
    if any(p != "CPUExecutionProvider" for p in providers):
        note = ("node times are host-side (launch and waits), not device kernel time; onnxruntime's "
                "TensorRT provider shows one fused node")
    return from_times(f"onnxruntime profiler ({shown})", per_run, facts, len(spans), note)


def read_ort_trace(path: Path, providers: Iterable[str], skip_runs: int = 1) -> LayerProfile:
    events = json.loads(path.read_text(encoding="utf-8"))
    return parse_ort_trace(events if isinstance(events, list) else [], list(providers), skip_runs)


def profile_ort_session(session: Any, run: Any, runs: int) -> LayerProfile:
    """Run a session made with profiling on ``runs + 1`` times (``run(session)`` runs it once),
    end its profile and read it; the trace file is removed (the caller's scratch folder holds it)."""
    for _ in range(runs + 1):
        run(session)
    path = Path(session.end_profiling())
    try:
        return read_ort_trace(path, session.get_providers())
    finally:
        path.unlink(missing_ok=True)
