"""The onnxruntime-cuda backend on a real GPU: its event timer against torch's, and host overhead.

1. Timer agreement: the backend's timed session (cuda.EventTimedLoop around run_with_iobinding,
   on the plugin's stream) runs each model; a pair of torch.cuda events is recorded on the same
   stream just inside ours around every run. Ratio ours / torch per run: median, min, max.
2. Host overhead per iteration, without and with onnxruntime's CUDA graph: host time of each
   enqueue (one run_with_iobinding call), host wall time per iteration of the whole loop,
   event-timed compute and latency (H2D + compute + D2H), medians.

Models: the three example models (launch-bound on a big GPU) and a compute-bound chain of
2048x2048 matmuls at batch 2048, built here.

Usage (needs onnxruntime-gpu, cuda-python and torch):
    python bench/ort_cuda_events.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from pytest_trt.backends.onnxruntime_cuda import OnnxRuntimeCudaBackend
from pytest_trt.cuda import runtime as cuda
from pytest_trt.model import LoadedModel, load_model
from pytest_trt.specs import BuildSpec, MeasureSettings

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"
EXAMPLES = {"mlp": 32, "cnn": 8, "encoder": 8}  # model -> batch
WARMUP, RUNS = 200, 500


def matmul_chain(path: Path, width: int = 2048, blocks: int = 8) -> Path:
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(blocks):
        inits.append(numpy_helper.from_array((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), f"W{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"r{i}"]))
        prev = f"r{i}"
    nodes[-1] = helper.make_node("Relu", [f"m{blocks - 1}"], ["y"])
    graph = helper.make_graph(
        nodes, "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def feed_for(model: LoadedModel, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        s.name: rng.uniform(-1, 1, tuple(batch if d is None else d for d in s.shape)).astype(s.dtype) for s in model.inputs
    }


def timed(backend: OnnxRuntimeCudaBackend, model: LoadedModel, batch: int, *, cuda_graph: bool, with_torch: bool) -> dict:
    build = BuildSpec()
    runner = backend.load(backend.build(model, build), model, build)
    session = runner.timed_session(feed_for(model, batch), MeasureSettings(cuda_graph=cuda_graph))
    marks: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
    if with_torch:
        loop = session._loop  # the bench reaches in: torch's events go just inside ours
        ext = torch.cuda.ExternalStream(loop._stream.handle)
        enqueue = loop._enqueue
        # Made beforehand, so that only the two records run inside our interval.
        pairs = iter([(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(WARMUP + RUNS)])

        def bracketed() -> bool:
            start, end = next(pairs)
            start.record(ext)
            ok = enqueue()
            end.record(ext)
            marks.append((start, end))
            return ok

        loop._enqueue = bracketed
    try:
        session.run(WARMUP)
        marks.clear()
        t0 = time.perf_counter()
        times = session.run(RUNS)
        wall_us = (time.perf_counter() - t0) / RUNS * 1e6
        mode = dict(session.mode)
        warnings = list(session.warnings)
    finally:
        session.close()
        runner.close()
    row = {
        "cuda_graph": mode["cuda_graph"],
        "provider_sync": mode["provider_sync"],
        "warnings": warnings,
        "wall_us_per_iter": wall_us,
        "enqueue_us_median": float(np.median(times.enqueue)) * 1e3,
        "compute_us_median": float(np.median(times.compute)) * 1e3,
        "latency_us_median": float(np.median(times.latency)) * 1e3,
    }
    if with_torch:
        torch.cuda.synchronize()
        theirs = np.array([a.elapsed_time(b) for a, b in marks])
        ratio = np.array(times.compute) / theirs
        row.update(
            torch_us_median=float(np.median(theirs)) * 1e3,
            ratio_median=float(np.median(ratio)),
            ratio_min=float(ratio.min()),
            ratio_max=float(ratio.max()),
            gap_us_median=float(np.median(np.array(times.compute) - theirs)) * 1e3,
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    backend = OnnxRuntimeCudaBackend()
    status = backend.availability()
    if not status.ok:
        raise SystemExit(f"onnxruntime-cuda is unavailable: {status.reason}")
    props = cuda.device_properties(0)
    print(f"device: {props['gpu_name']} (cc {props['compute_capability']}, {props['sm_count']} SMs), driver CUDA "
          f"{props['driver_version']}; {backend.runtime_version()}; torch {torch.__version__}")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = {name: (load_model(MODELS / f"{name}.onnx"), batch) for name, batch in EXAMPLES.items()}
        models["matmul chain 8x2048^2"] = (load_model(matmul_chain(Path(tmp) / "chain.onnx")), 2048)
        for name, (model, batch) in models.items():
            for graph in (False, True):
                key = f"{name} (batch {batch}), cuda_graph={graph}"
                results[key] = {
                    "agreement": timed(backend, model, batch, cuda_graph=graph, with_torch=True),
                    "overhead": timed(backend, model, batch, cuda_graph=graph, with_torch=False),
                }
    print(f"\nevent timer vs torch.cuda events (torch's inside ours, same stream), {RUNS} runs after {WARMUP}:")
    print(f"  {'model':52s} {'graph':>5s} {'ours us':>9s} {'torch us':>9s} {'gap us':>7s} {'ratio med':>9s} {'min':>7s} {'max':>7s}")
    for key, row in results.items():
        a = row["agreement"]
        print(f"  {key.split(', cuda_graph')[0]:52s} {a['cuda_graph']!s:>5s} {a['compute_us_median']:9.1f} "
              f"{a['torch_us_median']:9.1f} {a['gap_us_median']:7.1f} {a['ratio_median']:9.4f} {a['ratio_min']:7.4f} "
              f"{a['ratio_max']:7.4f}")
    print("\nhost overhead per iteration (no torch events), medians:")
    print(f"  {'model':52s} {'graph':>5s} {'enqueue us':>10s} {'wall us/it':>10s} {'compute us':>10s} {'latency us':>10s}")
    for key, row in results.items():
        o = row["overhead"]
        print(f"  {key.split(', cuda_graph')[0]:52s} {o['cuda_graph']!s:>5s} {o['enqueue_us_median']:10.1f} "
              f"{o['wall_us_per_iter']:10.1f} {o['compute_us_median']:10.1f} {o['latency_us_median']:10.1f}"
              + (f"  warnings: {o['warnings']}" if o["warnings"] else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": props, "runtime": backend.runtime_version(),
                                               "torch": torch.__version__, "results": results}, indent=2))


if __name__ == "__main__":
    main()
