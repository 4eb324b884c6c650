"""Wall time of a 4-size batch sweep as one test (one engine) against 4 parametrized tests (one
engine each), for one model on one backend.

Each round runs both suites once, each a fresh ``python -m pytest`` process in its own temporary
project with no engine cache (every engine is built in the run, as on a CI runner without a
cache), the order alternating between rounds. Both suites measure the same batch sizes with the
same settings; the sweep builds one engine whose profile covers them, the parametrized tests one
engine per batch size. Prints each suite's median wall time, its spread, the engines each run
built (from the JSON report) and the ratio parametrized / sweep.

    python bench/sweep_time.py                                  # the example encoder, onnxruntime CPU
    python bench/sweep_time.py --backend onnxruntime-cuda       # on a GPU
    python bench/sweep_time.py --backend tensorrt --model examples/models/cnn.onnx --rounds 5
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_runs import plugin_args

from pytest_trt.model import load_model

BATCHES = (1, 8, 32, 64)
SWEEP = """
import pytest

@pytest.mark.trt_model("model.onnx", profile={profile})
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-3)
@pytest.mark.trt_perf(batch_sizes={batches}, backend="{backend}", max_latency_ms=1e6, percentile=99)
def test_sweep(trt_engine):
    pass
"""
PARAMETRIZED = """
import pytest

def batch(size):
    return pytest.param(size, marks=pytest.mark.trt_model("model.onnx", batch_size=size), id=f"batch{{size}}")

@pytest.mark.parametrize("size", [batch(b) for b in {batches}])
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-3)
@pytest.mark.trt_perf(backend="{backend}", max_latency_ms=1e6, percentile=99)
def test_batch(trt_engine, size):
    pass
"""


def profile_for(model: Path, batches: tuple[int, ...]) -> dict[str, tuple[tuple[int, ...], ...]]:
    """(min, opt, max) over ``batches`` for every input with a dynamic leading dim."""
    loaded = load_model(model)
    profile = {}
    for spec in loaded.inputs:
        if spec.shape and spec.shape[0] is None:
            rest = tuple(spec.shape[1:])
            if any(d is None for d in rest):
                raise SystemExit(f"{model}: input {spec.name!r} has dynamic dims past the first; give a model whose only dynamic dim is the batch")
            profile[spec.name] = ((min(batches), *rest), (batches[len(batches) // 2], *rest), (max(batches), *rest))
    if not profile:
        raise SystemExit(f"{model}: no input has a dynamic leading (batch) dim")
    return profile


def project(folder: Path, model: Path, kind: str, backend: str) -> Path:
    folder.mkdir(parents=True)
    shutil.copyfile(model, folder / "model.onnx")
    text = SWEEP if kind == "sweep" else PARAMETRIZED
    (folder / f"test_{kind}.py").write_text(
        text.format(profile=profile_for(model, BATCHES), batches=BATCHES, backend=backend)
    )
    return folder


def run(folder: Path, backend: str, measure: list[str]) -> tuple[float, int, int]:
    """Wall seconds of one pytest process, the engines it built, and its exit code."""
    report = folder / "trt.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "pytest", *plugin_args(), "-q", "-p", "no:cacheprovider", f"--trt-backend={backend}",
               "--trt-baseline=off", f"--trt-report-json={report}", *measure]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        raise SystemExit(f"pytest failed in {folder} (exit {done.returncode})")
    tests = json.loads(report.read_text())["tests"]
    built = sum(1 for t in tests if t["engine"]["how"] == "built")
    return wall, built, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "examples" / "models" / "encoder.onnx")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", default="--trt-warmup-ms=100 --trt-min-duration-ms=500",
                        help="measurement options for both suites (default: %(default)s)")
    args = parser.parse_args()
    measure = args.measure.split()
    times: dict[str, list[float]] = {"sweep": [], "parametrized": []}
    builds: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="pytest-trt-sweep-bench-") as tmp:
        for round_ in range(args.rounds):
            order = ("sweep", "parametrized") if round_ % 2 == 0 else ("parametrized", "sweep")
            for kind in order:
                folder = project(Path(tmp) / f"{kind}-{round_}", args.model, kind, args.backend)
                wall, built, _ = run(folder, args.backend, measure)
                times[kind].append(wall)
                builds[kind] = built
    print(f"model {args.model.name}, backend {args.backend}, batch sizes {BATCHES}, {args.rounds} rounds, "
          f"measure: {' '.join(measure)}")
    for kind, walls in times.items():
        spread = f"{min(walls):.2f}..{max(walls):.2f}"
        print(f"  {kind:<13} median {statistics.median(walls):7.2f} s  ({spread} s)  engines built per run: {builds[kind]}")
    ratio = statistics.median(times["parametrized"]) / statistics.median(times["sweep"])
    print(f"  parametrized / sweep: {ratio:.2f}x")


if __name__ == "__main__":
    main()
