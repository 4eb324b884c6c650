"""Should two unrelated pytest runs of one user share the measurement lock? Side by side, in one
bench run: a measuring-bound suite run alone, two copies of it at once sharing the lock (today's
scope: one lock folder per user), and two copies at once with a lock each (one folder per run,
which is what a per-run lock would give).

Each suite is its own ``python -m pytest`` process of ``--tests`` report-only latency tests of the
example MLP (one onnxruntime thread). Per round and scope the bench prints the pair's wall time,
the lock waits, and the median of the tests' floors against the solo run's: a per-run lock saves
the waits, and pays for them with measurements that overlap and read slow.

    python bench/lock_scope.py --rounds 3 --tests 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_runs import plugin_args

ROOT = Path(__file__).resolve().parents[1]

TEST_FILE = '''
import pytest

@pytest.mark.parametrize("i", range({tests}))
@pytest.mark.trt_model("mlp.onnx", shapes={{"x": (64, 256)}}, intra_op_threads=1)
@pytest.mark.trt_perf(max_latency_ms=1e6)
def test_mlp(trt_engine, i):
    pass
'''


@dataclass(frozen=True)
class SuiteRun:
    wall_s: float
    floors_ms: list[float]
    lock_wait_s: float


def start(folder: Path, report: Path, lock_tmp: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TMPDIR": str(lock_tmp),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args(), "test_suite.py",
               "--trt-backend=onnxruntime", f"--trt-report-json={report}"]
    return subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read(report: Path, wall_s: float) -> SuiteRun:
    tests = json.loads(report.read_text())["tests"]
    floors = [t["perf"]["latency"]["min"] for t in tests if t.get("perf")]
    waits = sum(t["perf"].get("lock_wait_s") or 0.0 for t in tests if t.get("perf"))
    return SuiteRun(wall_s, floors, waits)


def run_together(folder: Path, lock_tmps: list[Path]) -> list[SuiteRun]:
    """One suite per lock folder given, all at once; each suite's result."""
    reports = [folder / f"report-{i}.json" for i in range(len(lock_tmps))]
    for report in reports:
        report.unlink(missing_ok=True)
    started = time.perf_counter()
    processes = [start(folder, report, tmp) for report, tmp in zip(reports, lock_tmps, strict=True)]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a suite exited {process.returncode}; run it by hand in {folder}")
    wall = time.perf_counter() - started
    return [read(report, wall) for report in reports]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tests", type=int, default=6, help="latency tests per suite (default 6)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lock-scope-") as tmp:
        folder = Path(tmp)
        (folder / "mlp.onnx").write_bytes((ROOT / "examples" / "models" / "mlp.onnx").read_bytes())
        (folder / "test_suite.py").write_text(TEST_FILE.format(tests=args.tests))
        locks = [folder / "lock-a", folder / "lock-b"]
        for lock in locks:
            lock.mkdir()
        print("| round | scope | pair wall s | lock waits s | floor median vs solo |")
        print("|---:|---|---:|---:|---:|")
        for r in range(args.rounds):
            (solo,) = run_together(folder, locks[:1])
            solo_floor = statistics.median(solo.floors_ms)
            print(f"| {r + 1} | alone | {solo.wall_s:.1f} | {solo.lock_wait_s:.1f} | 1.000 |")
            for scope, tmps in (("shared lock", [locks[0], locks[0]]), ("a lock each", locks)):
                pair = run_together(folder, tmps)
                floors = [f for run in pair for f in run.floors_ms]
                waits = sum(run.lock_wait_s for run in pair)
                ratio = statistics.median(floors) / solo_floor
                print(f"| {r + 1} | {scope} | {pair[0].wall_s:.1f} | {waits:.1f} | {ratio:.3f} |", flush=True)


if __name__ == "__main__":
    main()
