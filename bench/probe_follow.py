"""Which host probe follows a model's floor from one process to the next?

The regression rule divides nothing by the probe, but it lets the probe doubt a slower floor
(pytest_trt/baselines/regression.py): that only helps where the probe's floor moves with the
model's. This bench starts one fresh process per round, as CI runs comparisons: each loads the
model into a new onnxruntime session (one thread), takes its floor over ``--iterations`` runs,
and the floors of probe workloads of several working-set sizes timed between them (numpy on
one BLAS thread):

- ``matmul48``: the plugin's probe (host_probe.HostProbe: 48x48 float32, 16 products, L1);
- ``matmul256``: 256x256 float32 (768 KB of operands: L2);
- ``matmul512``: 512x512 float32 (3 MB: L3);
- ``copy16m``: a 16 MB array copied (memory bandwidth);
- ``sum4m``, ``sum12m``: a 4 MB and a 12 MB array summed twice (the second pass reads what the
  last-level cache kept of the first: a model whose weights live there).

It prints, over the rounds, the model floor's spread and, per probe, the correlation of the log
floors and the spread of the model floor divided by the probe's (lower than the raw spread: the
probe follows the model).

    python bench/probe_follow.py bench/.downloads/ch_PP-OCRv4_rec_infer.onnx --shape 1,3,48,320 --seconds 300
    python bench/probe_follow.py examples/models/mlp.onnx --shape 64,256 --seconds 120 --save runs/f.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from saved_rows import append_row  # a bench module beside this one

ROOT = Path(__file__).resolve().parents[1]
PROBES = ("matmul48", "matmul256", "matmul512", "copy16m", "sum4m", "sum12m")


def one_round(model: Path, shape: tuple[int, ...], iterations: int, probe_repeats: int) -> dict[str, float]:
    """In this (fresh) process: the model's floor and each probe's, interleaved."""
    import numpy as np
    import onnxruntime

    sys.path.insert(0, str(ROOT))
    from pytest_trt.timing.host_probe import HostProbe

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    feed = {first.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    rng = np.random.default_rng(1)
    a256, b256 = (rng.standard_normal((256, 256)).astype(np.float32) for _ in range(2))
    a512, b512 = (rng.standard_normal((512, 512)).astype(np.float32) for _ in range(2))
    src, dst = rng.standard_normal(4 * 2**20).astype(np.float32), np.empty(4 * 2**20, np.float32)
    s4, s12 = rng.standard_normal(2**20).astype(np.float32), rng.standard_normal(3 * 2**20).astype(np.float32)
    small = HostProbe()
    work = {
        "matmul48": small.probe,
        "matmul256": lambda: _timed(lambda: np.matmul(a256, b256)),
        "matmul512": lambda: _timed(lambda: np.matmul(a512, b512)),
        "copy16m": lambda: _timed(lambda: np.copyto(dst, src)),
        "sum4m": lambda: _timed(lambda: (s4.sum(), s4.sum())),
        "sum12m": lambda: _timed(lambda: (s12.sum(), s12.sum())),
    }
    for _ in range(3):
        session.run(None, feed)
    floors = {name: float("inf") for name in ("model", *PROBES)}
    per_chunk = max(1, iterations // probe_repeats)
    for _ in range(probe_repeats):
        for _ in range(per_chunk):
            floors["model"] = min(floors["model"], _timed(lambda: session.run(None, feed)))
        for name, probe in work.items():
            floors[name] = min(floors[name], probe())
    return floors


def _timed(call) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - start) / 1e6


def spread_words(floors_ms: list[float]) -> str:
    """``median 27.5 ms, sd 9.86% (log), range 53.3%``: how far floors of one model lie apart."""
    import numpy as np

    logs = np.log(floors_ms)
    return (f"median {np.exp(np.median(logs)):.4g} ms, sd {logs.std() * 100:.2f}% (log), "
            f"range {(np.exp(logs.max() - logs.min()) - 1) * 100:.1f}%")


def summary(rows: list[dict[str, float]]) -> str:
    import numpy as np

    model = np.log([r["model"] for r in rows])
    lines = [f"{len(rows)} rounds; model floor: {spread_words([r['model'] for r in rows])}"]
    for name in PROBES:
        probe = np.log([r[name] for r in rows])
        divided = model - probe
        corr = float(np.corrcoef(model, probe)[0, 1]) if model.std() > 0 and probe.std() > 0 else float("nan")
        lines.append(f"  {name:10s} floor median {np.exp(np.median(probe)):.4g} ms, sd {probe.std() * 100:.2f}%, "
                     f"corr with model {corr:+.2f}, model/probe sd {divided.std() * 100:.2f}%")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--shape", required=True, help="the first input's shape, e.g. 1,3,48,320")
    parser.add_argument("--seconds", type=float, default=300.0, help="start no round after this (default 300)")
    parser.add_argument("--iterations", type=int, default=40, help="model runs per round (default 40)")
    parser.add_argument("--probe-repeats", type=int, default=20, help="times each probe is timed per round")
    parser.add_argument("--save", type=Path, help="append each round here (JSON lines)")
    parser.add_argument("--round", action="store_true", help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args()
    shape = tuple(int(d) for d in args.shape.split(","))
    if args.round:
        print(json.dumps(one_round(args.model, shape, args.iterations, args.probe_repeats)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows: list[dict[str, float]] = []
    start = time.monotonic()
    while time.monotonic() - start < args.seconds:
        out = subprocess.run(
            [sys.executable, __file__, str(args.model), "--shape", args.shape, "--iterations", str(args.iterations),
             "--probe-repeats", str(args.probe_repeats), "--round"],
            capture_output=True, text=True, env=env, check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["t_s"] = round(time.monotonic() - start, 1)
        rows.append(row)
        append_row(args.save, row)
    print(summary(rows))


if __name__ == "__main__":
    main()
