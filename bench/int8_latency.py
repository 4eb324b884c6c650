"""INT8 by calibration vs fp32: latency of one model on onnxruntime's CPU provider, side by side.

Quantizes the model with ``pytest_trt.prepare.quantize`` (seeded calibration batches, the settings every
backend shares: symmetric int8 QDQ, per-channel weights, float biases), then times the fp32 and the
INT8 session on the same seeded feed. Rounds alternate which model goes first, so drift on a
shared machine hits both alike. Prints each model's median latency per inference, their ratio
per round, and the range of those ratios, plus the cosine similarity of the two outputs.

    python bench/int8_latency.py                                   # the example CNN, batch 8, 1 thread
    python bench/int8_latency.py --batch 32 --threads 2 --rounds 30
    python bench/int8_latency.py path/to/model.onnx --shape x=1,3,224,224
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_trt.model import load_model
from pytest_trt.prepare.inputs import make_inputs, resolve_shapes
from pytest_trt.prepare.quantize import quantize_model


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, _, dims = text.partition("=")
    return name, tuple(int(d) for d in dims.split(","))


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_block(run: ort.InferenceSession, feed: dict[str, np.ndarray], iterations: int) -> list[float]:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        run.run(None, feed)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=str(REPO / "examples" / "models" / "cnn.onnx"))
    parser.add_argument("--shape", action="append", type=parse_shape, default=[], help="input=d0,d1,...")
    parser.add_argument("--batch", type=int, default=8, help="fills a dynamic leading dim")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--calibration-batches", type=int, default=32)
    parser.add_argument("--method", default="minmax", choices=["minmax", "entropy", "percentile"])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=100, help="timed inferences per model per round")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    model = load_model(args.model)
    shapes = resolve_shapes(model, dict(args.shape), args.batch)
    feed = make_inputs(model, shapes, seed=1)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        int8_path = quantize_model(
            model.path, Path(folder) / "model.int8.onnx", args.calibration_batches, shapes=shapes, method=args.method
        )
        quantize_s = time.perf_counter() - started
        sessions = {"fp32": session(model.path, args.threads), "int8": session(int8_path, args.threads)}
        outputs = {label: run.run(None, feed)[0].ravel().astype(np.float64) for label, run in sessions.items()}
        for run in sessions.values():
            time_block(run, feed, args.warmup)
        samples: dict[str, list[float]] = {"fp32": [], "int8": []}
        ratios = []
        for round_index in range(args.rounds):
            order = ["fp32", "int8"] if round_index % 2 == 0 else ["int8", "fp32"]
            medians = {}
            for label in order:
                block = time_block(sessions[label], feed, args.iterations)
                samples[label].extend(block)
                medians[label] = statistics.median(block)
            ratios.append(medians["int8"] / medians["fp32"])

    a, b = outputs["fp32"], outputs["int8"]
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    fp32_ms, int8_ms = (statistics.median(samples[label]) * 1e3 for label in ("fp32", "int8"))
    print(f"model {Path(args.model).name}  inputs {shapes}  onnxruntime {ort.__version__} CPU, "
          f"{args.threads} thread(s)")
    print(f"quantized in {quantize_s:.2f} s ({args.calibration_batches} seeded batches, {args.method}); "
          f"cosine(int8, fp32) = {cosine:.6f}")
    print(f"fp32 median {fp32_ms:.3f} ms   int8 median {int8_ms:.3f} ms   int8/fp32 {int8_ms / fp32_ms:.3f}")
    print(f"per-round int8/fp32 ratio over {args.rounds} rounds of {args.iterations}: "
          f"min {min(ratios):.3f}  median {statistics.median(ratios):.3f}  max {max(ratios):.3f}")


if __name__ == "__main__":
    main()
