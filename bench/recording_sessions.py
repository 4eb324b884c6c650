"""What measuring a recording's further sessions for less time costs in the floors they give,
side by side in one run: a session measured with the default settings (as a test's own
measurement, ``full``), one with a recording's further-session settings
(``MeasureSettings.for_further_recording_session``: half the warm-up and window, ``recording``), and one
with half the iterations as well (``half-iterations``, the cheaper choice not taken).

Each trial is a fresh Python process. It loads the model once and measures ``--rounds`` rounds of
one fresh onnxruntime session of each kind, the order reversed every other round, so that a host
that drifts weighs on all alike. Printed per trial and over all: each kind's floor against the
``full`` session of its round (the bias a kept shorter session brings into a baseline), each
kind's spread between its sessions, and each kind's measuring time.

    python bench/recording_sessions.py --family rec --trials 4 --rounds 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

KINDS = ("full", "recording", "half-iterations")


def child(path: str, rounds: int, shape: str, result: str) -> None:
    """One trial: ``rounds`` rounds of a fresh session of each kind, each measured the plugin's way."""
    import dataclasses

    import numpy as np

    from pytest_trt import backends
    from pytest_trt.model import load_model
    from pytest_trt.specs import BuildSpec, MeasureSettings
    from pytest_trt.timing import measure
    from pytest_trt.types import BackendContext

    backend = backends.create("onnxruntime", BackendContext())
    dims = tuple(int(d) for d in shape.split(","))
    build = BuildSpec(shapes=(("x", dims),), options=(("intra_op_threads", 1),))
    feed = {"x": np.random.default_rng(0).standard_normal(dims).astype(np.float32)}
    model = load_model(Path(path))
    artifact = backend.build(model, build)
    recording = MeasureSettings().for_further_recording_session()
    settings = {"full": MeasureSettings(), "recording": recording,
                "half-iterations": dataclasses.replace(recording, min_iterations=recording.min_iterations // 2)}
    out: dict[str, dict[str, list[float]]] = {kind: {"floors_ms": [], "seconds": []} for kind in KINDS}
    for round_ in range(rounds):
        for kind in KINDS if round_ % 2 == 0 else reversed(KINDS):
            started = time.perf_counter()
            runner = backend.load(artifact, model, build)
            try:
                floor = min(measure.measure(runner, feed, settings[kind], dims[0]).samples_ms)
            finally:
                runner.close()
            out[kind]["floors_ms"].append(floor)
            out[kind]["seconds"].append(time.perf_counter() - started)
    Path(result).write_text(json.dumps(out))


def spread(floors: list[float]) -> float:
    """As a recording states it: (max - min) / median."""
    return (max(floors) - min(floors)) / statistics.median(floors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="rec", choices=("rec", "mlp"))
    parser.add_argument("--trials", type=int, default=4, help="fresh processes")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of one session of each kind per process")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, rounds, shape, result = args.child
        child(path, int(rounds), shape, result)
        return

    import onnx
    from regression_processes import mlp_model, rec_model

    model = rec_model(ROOT / "bench" / ".downloads") if args.family == "rec" else mlp_model()
    shape = "1,3,48,320" if args.family == "rec" else "64,256"
    bias: dict[str, list[float]] = {k: [] for k in KINDS}
    spreads: dict[str, list[float]] = {k: [] for k in KINDS}
    seconds: dict[str, list[float]] = {k: [] for k in KINDS}
    with tempfile.TemporaryDirectory(prefix="recording-sessions-") as tmp:
        path, out = Path(tmp) / "model.onnx", Path(tmp) / "floors.json"
        onnx.save(model, str(path))
        for trial in range(args.trials):
            subprocess.run([sys.executable, __file__, "--child", str(path), str(args.rounds), shape, str(out)],
                           check=True)
            got = json.loads(out.read_text())
            full = got["full"]["floors_ms"]
            for kind in KINDS:
                # Paired within a round: the host's drift between rounds cancels.
                bias[kind].extend(f / g - 1 for f, g in zip(got[kind]["floors_ms"], full))
                spreads[kind].append(spread(got[kind]["floors_ms"]))
                seconds[kind].extend(got[kind]["seconds"])
            print(f"trial {trial}: " + "; ".join(
                f"{kind} floor median {statistics.median(got[kind]['floors_ms']):.3f} ms, spread "
                f"{spreads[kind][-1] * 100:.1f}%" for kind in KINDS), flush=True)
    print(f"{args.family}, {args.trials} processes x {args.rounds} rounds (floors against the round's full session):")
    for kind in KINDS:
        print(f"  {kind:<16} floor {statistics.median(bias[kind]) * 100:+.1f}% (median; middle half "
              f"{_quartile(bias[kind], 1) * 100:+.1f}..{_quartile(bias[kind], 3) * 100:+.1f}%), spread between "
              f"sessions {statistics.median(spreads[kind]) * 100:.1f}% (median), "
              f"{statistics.median(seconds[kind]) / statistics.median(seconds['full']):.2f}x a full session's time")


def _quartile(values: list[float], which: int) -> float:
    return statistics.quantiles(values, n=4)[which - 1] if len(values) > 1 else values[0]


if __name__ == "__main__":
    main()
