"""Wall time of whole gated suites under two checkouts of pytest-trt, side by side.

Each round runs every suite once per checkout, each run a fresh ``python -m pytest`` process
with that checkout first on ``PYTHONPATH``, the order of the checkouts alternating from round to
round so that drift on the machine hits both alike. Two suites:

- ``tiny``: 20 gated tests of the example MLP (batch 8, one onnxruntime thread), a project
  generated in a temporary folder: what a gated test costs when the model is cheap;
- ``demo``: the demo suite under ``examples/`` of each checkout (its own models and pytest.ini).

Prints per suite and checkout the median and spread of the wall times, and the ratio of the
medians (second checkout over first).

    git worktree add /tmp/before <commit>
    python bench/suite_time.py /tmp/before . --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_runs import plugin_args

ROOT = Path(__file__).resolve().parents[1]
TINY_TESTS = 20
TINY_TEST = '''
@pytest.mark.trt_model(MODEL, shapes={{"x": (8, 256)}}, intra_op_threads=1)
@pytest.mark.trt_perf(max_latency_ms=1000, backend="onnxruntime")
def test_tiny_{i}(trt_engine):
    pass
'''


def tiny_project(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "examples"))
    from make_models import make_mlp

    (folder / "mlp.onnx").write_bytes(make_mlp().SerializeToString())
    body = "import pytest\n\nMODEL = 'mlp.onnx'\n" + "".join(TINY_TEST.format(i=i) for i in range(TINY_TESTS))
    (folder / "test_tiny.py").write_text(body)
    (folder / "pytest.ini").write_text("[pytest]\n")
    return folder


def run(checkout: Path, suite: Path, extra: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args(),
               "--trt-backend=onnxruntime", "--trt-baseline=off", str(suite), *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=suite, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 5):
        raise SystemExit(f"{checkout}: pytest exited {done.returncode} on {suite}:\n{done.stdout[-3000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path, help="a checkout of pytest-trt (e.g. the one before a change)")
    parser.add_argument("second", type=Path, help="another checkout (e.g. the working tree)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    checkouts = [args.first.resolve(), args.second.resolve()]
    with tempfile.TemporaryDirectory(prefix="suite-time-") as tmp:
        tiny = tiny_project(Path(tmp))
        suites = {"tiny": {c: tiny for c in checkouts}, "demo": {c: c / "examples" for c in checkouts}}
        times: dict[tuple[str, Path], list[float]] = {}
        for r in range(args.rounds):
            order = checkouts if r % 2 == 0 else checkouts[::-1]
            for name, where in suites.items():
                for checkout in order:
                    times.setdefault((name, checkout), []).append(run(checkout, where[checkout], []))
            print(f"round {r + 1}/{args.rounds}", flush=True)
    print(f"\nsuite_time: {' '.join(sys.argv[1:])}")
    print(f"{'suite':<6} {'checkout':<40} {'median s':>9} {'min..max s':>14}")
    for name in suites:
        medians = []
        for checkout in checkouts:
            values = times[(name, checkout)]
            medians.append(statistics.median(values))
            print(f"{name:<6} {str(checkout)[-40:]:<40} {medians[-1]:>9.2f} {min(values):>6.2f}..{max(values):<6.2f}")
        print(f"{name:<6} {'ratio second / first':<40} {medians[1] / medians[0]:>9.2f}")


if __name__ == "__main__":
    main()
