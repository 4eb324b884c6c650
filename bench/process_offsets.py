"""Where a model's per-process speed comes from: fresh interpreters, forked children, sessions.

On the 2-core VM a fresh process of PP-OCRv4 rec reads a floor of its own (several percent from
the next), where sessions in one process agree (docs/regression.md). This bench samples the
model's floor four ways, in the same rounds (the order shuffled each round, so the host's drift
falls on every way alike):

- ``session``: a new onnxruntime session in this long-lived process;
- ``fork``: a child forked from this process (onnxruntime already imported) makes a new session;
- ``fresh``: a new Python interpreter imports onnxruntime and makes a session;
- ``fresh-noaslr``: the same with address-space randomization off (``setarch -R``).

If forked children vary as fresh interpreters do, the offset comes with memory the session
allocates (its physical pages), and a fork samples it at a fraction of an interpreter's start; if
they vary as sessions do, it comes with the process's layout. It prints, per way, the spread of the
floors (sd of their logs) and the median time a sample took.

    python bench/process_offsets.py bench/.downloads/ch_PP-OCRv4_rec_infer.onnx --shape 1,3,48,320 --rounds 25
    python bench/process_offsets.py examples/models/mlp.onnx --shape 64,256 --rounds 25 --iterations 400
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_follow import spread_words  # a bench script beside this one
from saved_rows import append_row

WAYS = ("session", "fork", "fresh", "fresh-noaslr")


def floor_ms(model: Path, shape: tuple[int, ...], iterations: int) -> float:
    """A new one-thread CPU session of ``model``: its floor over ``iterations`` runs, in ms."""
    import numpy as np
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    for _ in range(3):
        session.run(None, feed)
    best = float("inf")
    for _ in range(iterations):
        start = time.perf_counter_ns()
        session.run(None, feed)
        best = min(best, (time.perf_counter_ns() - start) / 1e6)
    return best


def forked(model: Path, shape: tuple[int, ...], iterations: int) -> float:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report, leave without running the parent's exit handlers
        os.close(read)
        os.write(write, json.dumps(floor_ms(model, shape, iterations)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        value = float(json.loads(pipe.read()))
    os.waitpid(pid, 0)
    return value


def interpreter(model: Path, shape: str, iterations: int, no_aslr: bool) -> float:
    command = [sys.executable, __file__, str(model), "--shape", shape, "--iterations", str(iterations), "--child"]
    if no_aslr:
        command = [shutil.which("setarch") or "setarch", platform.machine(), "-R", *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def summary(rows: list[dict[str, float]]) -> str:
    lines = [f"{len(rows)} rounds"]
    for way in WAYS:
        seconds = statistics.median(r[f"{way}_s"] for r in rows)
        lines.append(f"  {way:13s} floor {spread_words([r[way] for r in rows])}, {seconds:.2f} s a sample")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--shape", required=True, help="the first input's shape, e.g. 1,3,48,320")
    parser.add_argument("--iterations", type=int, default=40, help="timed runs per sample (default 40)")
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--save", type=Path, help="append each round here (JSON lines)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = tuple(int(d) for d in args.shape.split(","))
    if args.child:
        print(floor_ms(args.model, shape, args.iterations))
        return
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    import onnxruntime  # noqa: F401  (imported before forking, as the test's process has it)

    samplers = {
        "session": lambda: floor_ms(args.model, shape, args.iterations),
        "fork": lambda: forked(args.model, shape, args.iterations),
        "fresh": lambda: interpreter(args.model, args.shape, args.iterations, no_aslr=False),
        "fresh-noaslr": lambda: interpreter(args.model, args.shape, args.iterations, no_aslr=True),
    }
    rows: list[dict[str, float]] = []
    order = list(WAYS)
    for index in range(args.rounds):
        random.Random(index).shuffle(order)
        row: dict[str, float] = {}
        for way in order:
            start = time.perf_counter()
            row[way] = samplers[way]()
            row[f"{way}_s"] = time.perf_counter() - start
        rows.append(row)
        append_row(args.save, row)
    print(summary(rows))


if __name__ == "__main__":
    main()
