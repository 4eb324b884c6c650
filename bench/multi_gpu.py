"""The example suite plus a generated zoo of 16 models on a host of several GPUs: one process on
one GPU (``-n 1``) against ``-n 4 --trt-gpus=all`` (xdist workers pinned round-robin, one
measurement lock per GPU). Prints the wall time of each, the lock waits of each worker on each
GPU, and each test's median latency (p50) in the spread run against its one-GPU run.

The zoo is ``bench/matmul_chain.py``'s family: chains of 1 to 16 blocks of ``--zoo-width``
square MatMuls, one test each, timed under a GPU budget (no accuracy gate: the CPU reference of
the deep chains would dominate the wall time). Every engine is built once, in a first pass that
fills an engine cache shared by the timed runs (the GPUs are one model, so one engine serves
them all); the timed runs then measure and load only. ``--rounds`` alternates the order.

On a GPU host, from the repository root (docs/gpus.md quotes its output)::

    python bench/multi_gpu.py --out gpu-out/multi_gpu            # -n 4 --trt-gpus=all vs -n 1
    python bench/multi_gpu.py --workers 8 --rounds 2              # two workers per GPU on 4 GPUs

Without a GPU, ``--backend onnxruntime --gpus none --zoo-width 128 --workers 2`` runs the
same plumbing on the CPU (no ``--trt-gpus``; the numbers then say nothing about GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from matmul_chain import matmul_chain
from pytest_runs import plugin_args

ZOO_MODELS = 16
ZOO_TEST = '''
@pytest.mark.trt_model("zoo/chain_{blocks}.onnx")
@pytest.mark.trt_perf(max_latency_ms=1e6)
def test_chain_{blocks}(trt_engine):
    pass
'''
CLOSE = 0.03  # a p50 within 3% of its one-GPU run


def project(folder: Path, width: int) -> Path:
    """The example suite (its tests, models and pytest.ini) and the zoo, in ``folder``."""
    folder.mkdir(parents=True)
    for item in (ROOT / "examples").iterdir():
        if item.name.startswith("test_") or item.name in ("models", "pytest.ini"):
            (shutil.copytree if item.is_dir() else shutil.copyfile)(item, folder / item.name)
    (folder / "zoo").mkdir()
    for blocks in range(1, ZOO_MODELS + 1):
        (folder / "zoo" / f"chain_{blocks}.onnx").write_bytes(matmul_chain(blocks, width).SerializeToString())
    body = "import pytest\n" + "".join(ZOO_TEST.format(blocks=b) for b in range(1, ZOO_MODELS + 1))
    (folder / "test_zoo.py").write_text(body)
    return folder


def run(suite: Path, report: Path, args: Sequence[str], backend: str, cache: Path) -> tuple[float, dict[str, Any]]:
    """(wall seconds, the JSON report) of one pytest run of ``suite``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args(), f"--trt-backend={backend}",
        "--trt-baseline=off", "--trt-perf=report", f"--trt-engine-cache={cache}", f"--trt-report-json={report}",
        *args, str(suite),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=suite, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1) or not report.is_file():
        raise SystemExit(f"pytest exited {done.returncode}: {' '.join(command)}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    if done.returncode == 1:
        print(f"note: some tests failed in {' '.join(args) or 'the one-process run'}:\n{done.stdout[-2000:]}")
    data: dict[str, Any] = json.loads(report.read_text())
    return wall, data


def p50s(report: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """nodeid -> (median latency in ms, where it ran) for every measured test."""
    found = {}
    for test in report["tests"]:
        if test.get("perf"):
            gpu = test.get("gpu") or {}
            where = f"GPU {gpu['index']} {gpu['worker']}".strip() if gpu else "-"
            found[test["nodeid"]] = (float(test["perf"]["latency"]["median"]), where)
    return found


def print_waits(report: dict[str, Any]) -> None:
    placed = report["meta"].get("gpus") or []
    if not placed:
        print("  (no test ran on a GPU backend: no per-GPU lock waits)")
    for worker in placed:
        print(f"  GPU {worker['index']} ({worker['name']}) {worker['worker'] or 'main'}: {worker['tests']} tests, "
              f"waited {worker['lock_wait_s']:.2f} s for the GPU's measurement lock")


def print_p50s(one: dict[str, tuple[float, str]], spread: dict[str, tuple[float, str]]) -> None:
    print(f"\n{'test':<58} {'p50 -n 1 ms':>12} {'p50 spread ms':>14} {'change':>8}  where")
    changes = []
    for nodeid, (before, _) in sorted(one.items()):
        if nodeid not in spread:
            continue
        after, where = spread[nodeid]
        change = after / before - 1 if before > 0 else float("nan")
        changes.append(abs(change))
        flag = "" if abs(change) <= CLOSE else "  <- beyond 3%"
        print(f"{nodeid[-58:]:<58} {before:>12.4f} {after:>14.4f} {change:>+8.1%}  {where}{flag}")
    if changes:
        within = sum(c <= CLOSE for c in changes)
        print(f"\n{within} of {len(changes)} tests within 3% of their one-GPU p50; "
              f"median |change| {statistics.median(changes):.1%}, largest {max(changes):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4, help="xdist workers of the spread run (-n)")
    parser.add_argument("--gpus", default="all", help="--trt-gpus of the spread run; 'none' leaves it out")
    parser.add_argument("--backend", default="auto", help="--trt-backend (default auto, with --trt-require-gpu)")
    parser.add_argument("--zoo-width", type=int, default=1024, help="width (and batch) of the zoo's MatMul chains")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--min-duration-ms", type=float, default=2000.0,
                        help="--trt-min-duration-ms of the timed runs: the timing, not the start-up, dominates")
    parser.add_argument("--out", type=Path, help="keep the projects' JSON reports here")
    args = parser.parse_args()
    gpus = [] if args.gpus == "none" else [f"--trt-gpus={args.gpus}"]
    require = ["--trt-require-gpu"] if args.backend == "auto" else []
    timed = [f"--trt-min-duration-ms={args.min_duration_ms:g}"]
    spread_args = [*require, "-n", str(args.workers), *gpus, *timed]
    one_args = [*require, "-n", "1", *timed]
    if shutil.which("nvidia-smi"):
        subprocess.run(["nvidia-smi", "-L"], check=False)
    with tempfile.TemporaryDirectory(prefix="multi-gpu-") as tmp:
        base = Path(tmp)
        suite = project(base / "project", args.zoo_width)
        cache, out = base / "engines", args.out or base / "reports"
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        run(suite, out / "build.json", [*require, "-n", str(args.workers), *gpus, "--trt-perf=off"], args.backend, cache)
        print(f"first pass (builds every engine into the shared cache): {time.perf_counter() - started:.1f} s")
        walls: dict[str, list[float]] = {"one": [], "spread": []}
        reports: dict[str, dict[str, Any]] = {}
        for r in range(args.rounds):
            order = [("one", one_args), ("spread", spread_args)]
            for name, extra in order if r % 2 == 0 else order[::-1]:
                wall, reports[name] = run(suite, out / f"{name}_{r}.json", extra, args.backend, cache)
                walls[name].append(wall)
    print(f"\nbackend {reports['one']['meta']['backend']}; {len(reports['one']['tests'])} gated tests")
    print(f"wall time -n 1:            {statistics.median(walls['one']):7.1f} s  (runs: {', '.join(f'{w:.1f}' for w in walls['one'])})")
    print(f"wall time {' '.join(spread_args[len(require):-1]):<16} {statistics.median(walls['spread']):7.1f} s  "
          f"(runs: {', '.join(f'{w:.1f}' for w in walls['spread'])})")
    print(f"speed-up: {statistics.median(walls['one']) / statistics.median(walls['spread']):.2f}x")
    print("\nlock waits, -n 1:")
    print_waits(reports["one"])
    print(f"lock waits, {' '.join(spread_args[len(require):-1])}:")
    print_waits(reports["spread"])
    print_p50s(p50s(reports["one"]), p50s(reports["spread"]))


if __name__ == "__main__":
    main()
