"""What one gated test of a slow model costs at the default settings, in a fresh pytest process.

Generates a MatMul chain (matmul_chain.py) sized so that one onnxruntime thread takes about
``--target-ms`` per inference on this machine (PP-OCRv4 det took about 170 ms on a 2-core VM),
then runs one gated test of it without a latency budget, one with a p95 budget and one with a
p99 budget, each in its own
``python -m pytest`` process, and prints per test: the measured latency, the timed iterations and
seconds, the process's wall time, the sample notes the report gives its percentiles, and every
warning the measurement raised.

    python bench/slow_model.py                  # about 170 ms per inference
    python bench/slow_model.py --target-ms 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from matmul_chain import matmul_chain
from pytest_runs import plugin_args

TEST = '''
import pytest


@pytest.mark.trt_model("slow.onnx", intra_op_threads=1)
@pytest.mark.trt_perf({budget}backend="onnxruntime")
def test_slow(trt_engine):
    pass
'''
# What each test gates on: no latency budget (a throughput budget, or baselines alone), a p95
# budget, a p99 budget. A budget's percentile sets the samples the measurement must take.
BUDGETS = {"none": "min_throughput=0.001, ", "p95": "max_latency_ms=100000, percentile=95, ",
           "p99": "max_latency_ms=100000, percentile=99, "}


def pace_ms(path: Path) -> float:
    """The median of a few inferences of the model at ``path`` on one onnxruntime thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    feed = {session.get_inputs()[0].name: np.ones(shape, np.float32)}
    session.run(None, feed)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def sized_model(folder: Path, target_ms: float, width: int) -> tuple[Path, float]:
    """A chain whose inference takes about ``target_ms``: one block timed, then as many as fit."""
    path = folder / "slow.onnx"
    path.write_bytes(matmul_chain(1, width).SerializeToString())
    one = pace_ms(path)
    path.write_bytes(matmul_chain(3, width).SerializeToString())
    block = max((pace_ms(path) - one) / 2, 1e-3)
    blocks = max(1, round((target_ms - (one - block)) / block))
    path.write_bytes(matmul_chain(blocks, width).SerializeToString())
    return path, pace_ms(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target-ms", type=float, default=170.0)
    parser.add_argument("--width", type=int, default=1024, help="the chain's width and batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slow-model-") as tmp:
        folder = Path(tmp)
        _, pace = sized_model(folder, args.target_ms, args.width)
        print(f"model: {pace:.0f} ms per inference (one onnxruntime thread)")
        for name, budget in BUDGETS.items():
            (folder / "test_slow.py").write_text(TEST.format(budget=budget))
            report = folder / "report.json"
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args(),
                       "--trt-backend=onnxruntime", "--trt-baseline=off", f"--trt-report-json={report}",
                       "test_slow.py"]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            started = time.perf_counter()
            done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False, env=env)
            wall = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"pytest exited {done.returncode}:\n{done.stdout[-3000:]}")
            (test,) = json.loads(report.read_text())["tests"]
            perf = test["perf"]
            print(f"latency budget {name}: median {perf['latency']['median']:.1f} ms, {perf['iterations']} iterations, "
                  f"{perf['duration_s']:.2f} s timed, process {wall:.1f} s")
            print(f"  sample notes: {perf.get('sample_notes') or 'none'}")
            print(f"  warnings: {perf.get('warnings') or 'none'}")


if __name__ == "__main__":
    main()
