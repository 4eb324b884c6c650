"""Profiling never runs inside the timed loop: the timed samples with and without
--trt-profile-layers, alternating whole pytest runs of the same test, and their ratio.

Each round runs the test twice (one plain, one with the profiling pass, order alternating) and
reads the JSON report's latency median and floor; the ratio of the medians over the rounds is
about 1 when the pass stays out of the timed window (profiling inside it costs 2-3x on the CPU
provider, onnxruntime#20238). The profiled run also shows its slowest layers.

    python bench/profile_overhead.py --rounds 6 [--backend onnxruntime-cuda] [--model examples/models/cnn.onnx]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from pytest_runs import plugin_args

REPO = Path(__file__).resolve().parents[1]
TEST = """
import pytest

@pytest.mark.trt_model("{model}", batch_size={batch}, intra_op_threads=1)
@pytest.mark.trt_perf(backend="{backend}")
def test_timed(trt_engine):
    pass
"""


def run_once(folder: Path, backend: str, profile: bool, iterations: int) -> dict:
    report = folder / "report.json"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args(), f"--trt-backend={backend}",
            f"--trt-min-iterations={iterations}", "--trt-baseline=off", f"--trt-report-json={report}"]
    if profile:
        args.append("--trt-profile-layers")
    done = subprocess.run(args, cwd=folder, capture_output=True, text=True, env=None)
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    (test,) = json.loads(report.read_text())["tests"]
    return test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "examples" / "models" / "mlp.onnx")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=500)
    args = parser.parse_args(argv)
    medians: dict[bool, list[float]] = {False: [], True: []}
    floors: dict[bool, list[float]] = {False: [], True: []}
    layers = None
    with tempfile.TemporaryDirectory(prefix="profile-overhead-") as tmp:
        folder = Path(tmp)
        shutil.copyfile(args.model, folder / args.model.name)
        (folder / "test_timed.py").write_text(TEST.format(model=args.model.name, backend=args.backend, batch=args.batch))
        for round_ in range(args.rounds):
            for profile in ((False, True) if round_ % 2 == 0 else (True, False)):
                test = run_once(folder, args.backend, profile, args.iterations)
                samples = test["perf"]["samples_ms"]
                medians[profile].append(statistics.median(samples))
                floors[profile].append(min(samples))
                layers = test["layers"] if profile else layers
    plain, profiled = statistics.median(medians[False]), statistics.median(medians[True])
    print(f"model {args.model.name}, backend {args.backend}, {args.rounds} rounds of {args.iterations}+ iterations")
    print(f"timed median: plain {plain:.4f} ms, with --trt-profile-layers {profiled:.4f} ms, ratio {profiled / plain:.3f}")
    floor_plain, floor_profiled = statistics.median(floors[False]), statistics.median(floors[True])
    print(f"timed floor:  plain {floor_plain:.4f} ms, with --trt-profile-layers {floor_profiled:.4f} ms, "
          f"ratio {floor_profiled / floor_plain:.3f}")
    if layers:
        print(f"profiling pass ({layers['source']}): {layers['total_ms']:.4f} ms in {layers['total_layers']} layers; slowest:")
        for layer in layers["layers"][:5]:
            print(f"  {layer['name']!r} ({layer['op']}) {layer['ms']:.4f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
