"""Verify and measure the CUDA layer on a real GPU; prints side-by-side numbers from one run.

1. Event-timer agreement: our cuda-python events recorded inside a pair of torch.cuda events on
   the same stream, around matmuls of known work; ratio ours / torch (median).
2. Host overhead per iteration of the measurement loop (cuda.EventTimedLoop) over a tiny kernel,
   with and without a CUDA graph, against a bare launch loop with no events.

Usage (needs torch and cuda-python): python bench/gpu_cuda_layer.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from pytest_trt.cuda.runtime import CudaPython, EventTimedLoop


def timer_agreement(api: CudaPython, repeats: int = 50) -> dict[str, float]:
    stream = api.create_stream()
    ext = torch.cuda.ExternalStream(stream.handle)
    n = 4096
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    start, end = api.create_event(), api.create_event()
    ours, theirs = [], []
    with torch.cuda.stream(ext):
        for i in range(repeats + 5):
            t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0.record(ext)
            start.record(stream)
            for _ in range(4):
                a @ a
            end.record(stream)
            t1.record(ext)
            t1.synchronize()
            if i >= 5:  # warm-up
                ours.append(api.elapsed_ms(start, end))
                theirs.append(t0.elapsed_time(t1))
    stream.close()
    ratio = np.array(ours) / np.array(theirs)
    tflops = 4 * 2 * n**3 / (np.median(ours) * 1e-3) / 1e12
    return {
        "ratio_median": float(np.median(ratio)),
        "ratio_min": float(ratio.min()),
        "ratio_max": float(ratio.max()),
        "ours_ms_median": float(np.median(ours)),
        "torch_ms_median": float(np.median(theirs)),
        "matmul_tflops": float(tflops),
    }


def loop_overhead(api: CudaPython, iterations: int = 3000) -> dict[str, dict[str, float]]:
    stream = api.create_stream()
    ext = torch.cuda.ExternalStream(stream.handle)
    x = torch.zeros(256, device="cuda")
    host_in = api.pinned_empty((256,), np.float32)
    host_out = api.pinned_empty((256,), np.float32)

    def enqueue() -> bool:
        with torch.cuda.stream(ext):
            x.add_(1.0)
        return True

    results: dict[str, dict[str, float]] = {}
    # Bare launches, no events, one sync at the end: the floor for this kernel.
    for _ in range(200):
        enqueue()
    stream.synchronize()
    t0 = time.perf_counter()
    for _ in range(iterations):
        enqueue()
    stream.synchronize()
    results["bare launch loop"] = {"host_us_per_iter": (time.perf_counter() - t0) / iterations * 1e6}

    for label, graph, transfers, sync in [
        ("EventTimedLoop, plain enqueue, no transfers", False, False, "blocking"),
        ("EventTimedLoop, CUDA graph, no transfers", True, False, "blocking"),
        ("EventTimedLoop, plain enqueue, transfers", False, True, "blocking"),
        ("EventTimedLoop, CUDA graph, transfers", True, True, "blocking"),
        ("EventTimedLoop, plain enqueue, no transfers, spin", False, False, "spin"),
        ("EventTimedLoop, CUDA graph, no transfers, spin", True, False, "spin"),
    ]:
        loop = EventTimedLoop(
            api, stream, enqueue,
            inputs=[(x.data_ptr(), host_in.array)], outputs=[(host_out.array, x.data_ptr())],
            transfers=transfers, sync=sync, cuda_graph=graph,
        )
        loop.run(iterations)  # warm-up; also creates the events, outside the timed run
        t0 = time.perf_counter()
        times = loop.run(iterations)
        host = (time.perf_counter() - t0) / iterations * 1e6
        results[label] = {
            "host_us_per_iter": host,
            "enqueue_us_median": float(np.median(times.enqueue)) * 1e3,
            "compute_us_median": float(np.median(times.compute)) * 1e3,
            "latency_us_median": float(np.median(times.latency)) * 1e3,
            "graph_used": float(loop.mode["cuda_graph"]),
        }
        loop.close()
    host_in.free()
    host_out.free()
    stream.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    api = CudaPython()
    status = api.available()
    if not status.ok:
        raise SystemExit(f"no GPU: {status.reason}")
    props = api.device_properties(0)
    print(f"device: {props['gpu_name']} (cc {props['compute_capability']}, {props['sm_count']} SMs), "
          f"driver {props['driver_version']}, CUDA runtime {props['cuda_runtime_version']}, torch {torch.__version__}")
    agreement = timer_agreement(api)
    print("\nevent timer vs torch.cuda events (same stream, ours inside theirs), 4x fp16 4096^3 matmul:")
    print(f"  ours {agreement['ours_ms_median']:.4f} ms / torch {agreement['torch_ms_median']:.4f} ms "
          f"-> ratio median {agreement['ratio_median']:.4f} (min {agreement['ratio_min']:.4f}, "
          f"max {agreement['ratio_max']:.4f}); {agreement['matmul_tflops']:.0f} TFLOP/s")
    overhead = loop_overhead(api)
    floor = overhead["bare launch loop"]["host_us_per_iter"]
    print("\nhost time per iteration, tiny kernel (x.add_ on 256 floats), 3000 iterations (blocking sync unless marked spin):")
    print(f"  {'loop':46s} {'host us/iter':>12s} {'vs bare':>8s} {'enqueue us':>11s} {'compute us':>11s} {'latency us':>11s}")
    for label, row in overhead.items():
        extra = "".join(
            f" {row[k]:11.2f}" for k in ("enqueue_us_median", "compute_us_median", "latency_us_median") if k in row
        )
        print(f"  {label:46s} {row['host_us_per_iter']:12.2f} {row['host_us_per_iter'] / floor:8.2f}{extra}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": props, "torch": torch.__version__, "timer_agreement": agreement,
                       "loop_overhead": overhead}, handle, indent=2)


if __name__ == "__main__":
    main()
