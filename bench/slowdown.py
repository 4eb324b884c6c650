"""True slowdowns of any ONNX model, for the regression benches: extra work onnxruntime cannot fold.

``slowed(model, size, depth)`` adds a side branch to a model: ``depth`` MatMuls of a
``size`` x ``size`` matrix built from the first input's values, reduced to one number and added
to the first output multiplied by zero — a zero computed at run time (``r - r`` with ``r`` a sum
over the input), so no graph optimizer can prove the branch dead and drop it. Outputs, inputs and
their shapes are unchanged: the plugin sees the same workload with a new content hash.

``interleaved_ratio`` times two models the plain way, outside the plugin: one onnxruntime session
each, alternating short chunks of iterations, the floor of each chunk, the median ratio of the
floors over the rounds. ``calibrated`` picks the side branch whose measured slowdown is nearest a
target, so a bench labels each variant by what a plain loop measured, not by what it hoped for.

    python bench/slowdown.py examples/models/mlp.onnx --targets 5,10
    python bench/slowdown.py bench/.downloads/ch_PP-OCRv4_rec_infer.onnx --shape 1,3,48,320 --threads 1 --sizes 384,640
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZES = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)


def slowed(model: onnx.ModelProto, size: int, depth: int = 1) -> onnx.ModelProto:
    """``model`` plus a dead side branch of ``depth`` ``size``x``size`` MatMuls (see module doc)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if size <= 0:
        return out
    graph = out.graph
    first_in, first_out = graph.input[0].name, graph.output[0].name
    rng = np.random.default_rng(size * 100 + depth)
    graph.initializer.extend([
        numpy_helper.from_array((rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32), "slow.w"),
        numpy_helper.from_array(np.array([size, size], np.int64), "slow.shape"),
    ])
    for node in graph.node:
        node.output[:] = ["slow.main" if o == first_out else o for o in node.output]
    nodes = [
        helper.make_node("Cast", [first_in], ["slow.x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["slow.x"], ["slow.r"], keepdims=0),
        helper.make_node("Sub", ["slow.r", "slow.r"], ["slow.zero"]),  # 0, known only at run time
        helper.make_node("Tanh", ["slow.r"], ["slow.t"]),
        helper.make_node("Expand", ["slow.t", "slow.shape"], ["slow.m0"]),
    ]
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [f"slow.m{i}", "slow.w"], [f"slow.p{i}"]))
        nodes.append(helper.make_node("Tanh", [f"slow.p{i}"], [f"slow.m{i + 1}"]))
    out_type = graph.output[0].type.tensor_type.elem_type
    nodes += [
        helper.make_node("ReduceSum", [f"slow.m{depth}"], ["slow.s"], keepdims=0),
        helper.make_node("Mul", ["slow.s", "slow.zero"], ["slow.dead"]),
        helper.make_node("Cast", ["slow.dead"], ["slow.dead.cast"], to=out_type),
        helper.make_node("Add", ["slow.main", "slow.dead.cast"], [first_out]),
    ]
    graph.node.extend(nodes)
    return out


PROVIDER = "CPUExecutionProvider"  # --provider CUDAExecutionProvider times a GPU


def _session(model: onnx.ModelProto, threads: int):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=[PROVIDER])


def feed_for(model: onnx.ModelProto, batch: int = 1, shape: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """Seeded inputs: ``shape`` for the first input where given, else dynamic dims become ``batch``
    (first) or 1."""
    from onnx.helper import tensor_dtype_to_np_dtype

    rng = np.random.default_rng(0)
    feed = {}
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = [d.dim_value if d.dim_value > 0 else (batch if i == 0 else 1)
                for i, d in enumerate(value.type.tensor_type.shape.dim)]
        if shape and not feed:
            dims = list(shape)
        dtype = tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        feed[value.name] = (rng.standard_normal(dims).astype(dtype) if np.issubdtype(dtype, np.floating)
                            else rng.integers(0, 2, dims).astype(dtype))
    return feed


def interleaved_ratio(base: onnx.ModelProto, other: onnx.ModelProto, feed: dict[str, np.ndarray], *,
                      rounds: int = 30, chunk_ms: float = 20.0, threads: int = 0, sessions: int = 4) -> float:
    """(median floor of ``other``) / (median floor of ``base``) over ``sessions`` onnxruntime sessions
    of each: every session has a speed of its own (a few percent on CPU), so one session per model
    would measure the pair of sessions, not the models. Chunks alternate over all sessions."""
    made = [(0, _session(base, threads)) for _ in range(sessions)] + [(1, _session(other, threads)) for _ in range(sessions)]
    for _, s in made:
        for _ in range(3):
            s.run(None, feed)
    started = time.perf_counter()
    made[0][1].run(None, feed)
    per_call = max(time.perf_counter() - started, 1e-6)
    iterations = max(2, int(chunk_ms / 1000 / per_call))
    floors = [float("inf")] * len(made)
    order = list(range(len(made)))
    for r in range(rounds):
        for i in order if r % 2 == 0 else order[::-1]:
            session = made[i][1]
            for _ in range(iterations):
                t = time.perf_counter()
                session.run(None, feed)
                floors[i] = min(floors[i], time.perf_counter() - t)
    base_floors = [f for (which, _), f in zip(made, floors, strict=True) if which == 0]
    other_floors = [f for (which, _), f in zip(made, floors, strict=True) if which == 1]
    return statistics.median(other_floors) / statistics.median(base_floors)


def calibrated(model: onnx.ModelProto, target: float, feed: dict[str, np.ndarray], *,
               threads: int = 0, depth: int = 1) -> tuple[int, float]:
    """(size, measured slowdown) of the side branch nearest ``target`` (a fraction, 0.05 = +5%)."""
    best = (0, 0.0)
    for size in SIZES:
        measured = interleaved_ratio(model, slowed(model, size, depth), feed, rounds=8, threads=threads) - 1.0
        if abs(measured - target) < abs(best[1] - target):
            best = (size, measured)
        if measured > target * 1.5:
            break
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--targets", default="5,10", help="slowdowns in percent (default 5,10)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--shape", default="", help="the first input's shape, e.g. 8,3,48,320")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    parser.add_argument("--provider", default=PROVIDER, help="onnxruntime execution provider (default CPU)")
    parser.add_argument("--sizes", default="", help="measure these side branches (e.g. 384,640) instead of searching")
    args = parser.parse_args()
    globals()["PROVIDER"] = args.provider
    model = onnx.load(str(args.model))
    feed = feed_for(model, args.batch, tuple(int(d) for d in args.shape.split(",") if d))
    for size in (int(n) for n in args.sizes.split(",") if n):
        measured = interleaved_ratio(model, slowed(model, size), feed, threads=args.threads) - 1.0
        print(f"side branch {size}x{size}: {measured:+.1%} (interleaved, 30 rounds)")
    if args.sizes:
        return
    sizes = []
    for target in (float(t) / 100 for t in args.targets.split(",")):
        size, measured = calibrated(model, target, feed, threads=args.threads)
        confirm = interleaved_ratio(model, slowed(model, size), feed, threads=args.threads) - 1.0
        print(f"target +{target:.0%}: side branch {size}x{size}: +{measured:.1%} while searching, "
              f"+{confirm:.1%} confirmed (interleaved, 30 rounds)")
        sizes.append(size)
    print("SIZES=" + ",".join(str(n) for n in sizes))


if __name__ == "__main__":
    main()
