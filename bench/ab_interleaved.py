"""What an interleaved A/B of the baseline's model and the new one would buy the regression gate,
against the stored baseline the gate compares with today, side by side in one run.

Each trial is a fresh Python process, as CI runs a comparison. It loads the unchanged model (A)
and one variant (B: the unchanged model again, or a copy slowed by bench/slowdown.py's side
branch), and measures ``--sessions`` sessions of each, alternating A B B A A B ... so that a
host that drifts over the trial weighs on both alike. Every session is a new onnxruntime session
measured by the plugin's own ``measure`` with its default settings (one intra-op thread, the
host probe). The trial writes each session's floor.

The parent judges every trial two ways:

- **stored**: B's sessions against a baseline recorded like the gate's (the middle floor of A's
  sessions in one of the first trials of the unchanged model, widened by their spread), as
  ``regression.decide`` would: a first reading within the threshold settles it, else two
  sessions must agree (regressed beyond the bound, inconclusive within it);
- **A/B**: the plugin's interleaved rule (``pytest_trt/baselines/interleaved.py``) on the same
  process's floors: the fastest B against the fastest A and the second-fastest against the
  second-fastest, regressed where both read beyond the threshold.

With ``--sessions`` above 3, each trial is also judged on its first 3 sessions of each side (the
plugin's count), so that what a fourth session of each buys is read side by side on the same
trials. With ``--rotation``, each trial also opens the same sessions again and times them in turns
over one window (``timing/rotation.py``, as the plugin's A/B does now), one way first in even
trials and the other in odd ones; both are judged by the A/B's rule, side by side.

    python bench/ab_interleaved.py --family rec --sizes 256,512 --trials 30 --sessions 3
    python bench/ab_interleaved.py --family mlp --sizes 0,4 --trials 40 --rotation --save runs/rotation-mlp.jsonl
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from saved_rows import append_row

THRESHOLD = 0.03
SAME = "same"


def child(a_path: str, b_path: str, sessions: int, shape: str, result: str, rotation: bool, first: str) -> None:
    """One trial: sessions of A and B, alternating, each measured the plugin's way; with
    ``rotation``, also the same number of each timed in turns (timing/rotation.py), ``first``
    ("one-by-one" or "rotation") measured first."""
    import numpy as np

    from pytest_trt import backends
    from pytest_trt.model import load_model
    from pytest_trt.specs import BuildSpec, MeasureSettings
    from pytest_trt.timing import measure
    from pytest_trt.timing.rotation import measure_rotation
    from pytest_trt.types import BackendContext

    backend = backends.create("onnxruntime", BackendContext())
    dims = tuple(int(d) for d in shape.split(","))
    build = BuildSpec(shapes=(("x", dims),), options=(("intra_op_threads", 1),))
    feed = {"x": np.random.default_rng(0).standard_normal(dims).astype(np.float32)}
    sides = {}
    for name, path in (("a", a_path), ("b", b_path)):
        model = load_model(Path(path))
        sides[name] = (backend.build(model, build), model)
    order = (["a", "b", "b", "a"] * sessions)[: 2 * sessions]

    def one_by_one() -> dict[str, Any]:
        floors: dict[str, Any] = {"a": [], "b": []}
        started = time.perf_counter()
        for name in order:
            artifact, model = sides[name]
            runner = backend.load(artifact, model, build)
            try:
                floors[name].append(min(measure.measure(runner, feed, MeasureSettings(), dims[0]).samples_ms))
            finally:
                runner.close()
        return {**floors, "s": time.perf_counter() - started}

    def in_turns() -> dict[str, Any]:
        started = time.perf_counter()
        runners = [backend.load(*sides[name], build) for name in order]
        try:
            timed = measure_rotation(runners, feed, MeasureSettings())
        finally:
            for runner in runners:
                runner.close()
        return {side: [t.floor_ms for t, name in zip(timed, order) if name == side] for side in "ab"} | {
            "s": time.perf_counter() - started}

    ways = {"one-by-one": one_by_one, "rotation": in_turns} if rotation else {"one-by-one": one_by_one}
    measured = {name: ways[name]() for name in sorted(ways, key=lambda n: n != first)}
    row = dict(measured["one-by-one"])
    if rotation:
        row["rotation"] = measured["rotation"]
    Path(result).write_text(json.dumps(row))


def spread(floors: list[float]) -> float:
    return (max(floors) - min(floors)) / statistics.median(floors)


def judge_stored(baseline: list[float], b: list[float]) -> str:
    """The gate's rule on floors: the recorded middle floor, widened by the recorded spread; two
    sessions must agree (a first unchanged reading settles it)."""
    base, bound = statistics.median(baseline), THRESHOLD + spread(baseline)
    verdicts = ["regressed" if f / base - 1 > bound else ("unchanged" if f / base - 1 <= THRESHOLD else "within")
                for f in b[:3]]
    if verdicts[0] == "unchanged":
        return "unchanged"
    for v in ("regressed", "within", "unchanged"):
        if verdicts[:2].count(v) == 2 or (len(verdicts) > 2 and verdicts.count(v) >= 2):
            return v if v != "within" else "inconclusive"
    return "inconclusive"


def judge_ab(a: list[float], b: list[float]) -> tuple[str, float]:
    """The plugin's interleaved rule (pytest_trt/baselines/interleaved.py) on the trial's floors."""
    from pytest_trt.baselines.interleaved import judge

    verdict = judge(b, a, THRESHOLD, baseline_model="A")
    return verdict.status.value, verdict.change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="rec", choices=("rec", "mlp"))
    parser.add_argument("--sizes", default="256,512", help="side-branch sizes of the slowed variants")
    parser.add_argument("--trials", type=int, default=30, help="trials per variant")
    parser.add_argument("--sessions", type=int, default=3, help="sessions of each side per trial")
    parser.add_argument("--time-limit", type=float, default=900.0)
    parser.add_argument("--save", type=Path, help="append each trial's floors (JSON lines)")
    parser.add_argument("--report", type=Path, help="only judge the trials saved in this file")
    parser.add_argument("--rotation", action="store_true",
                        help="also time the same sessions in turns (the plugin's A/B), in each trial beside one by one")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        a, b, sessions, shape, result, rotation, first = args.child
        child(a, b, int(sessions), shape, result, rotation == "1", first)
        return
    if args.report:
        saved = [json.loads(line) for line in args.report.read_text().splitlines() if line.strip()]
        report(saved, list(dict.fromkeys(r["variant"] for r in saved)))
        return

    import functools

    import onnx
    from regression_processes import mlp_model, rec_model, slowed_models

    base = functools.partial(rec_model, ROOT / "bench" / ".downloads") if args.family == "rec" else mlp_model
    shape = "1,3,48,320" if args.family == "rec" else "64,256"
    made = slowed_models(base, [int(s) for s in args.sizes.split(",") if s])
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ab-interleaved-") as tmp:
        paths = {}
        for name, make in made.items():
            paths[name] = Path(tmp) / f"{name}.onnx"
            onnx.save(make(), str(paths[name]))
        variants = list(made)
        for trial in range(args.trials):
            for name in variants:
                if time.monotonic() - started > args.time_limit:
                    break
                out = Path(tmp) / "floors.json"
                subprocess.run([sys.executable, __file__, "--child", str(paths[SAME]), str(paths[name]),
                                str(args.sessions), shape, str(out), str(int(args.rotation)),
                                ("one-by-one", "rotation")[trial % 2]], check=True)
                floors = json.loads(out.read_text())
                row = {"trial": trial, "variant": name, **floors}
                rows.append(row)
                append_row(args.save, row)
                print(f"trial {trial} {name}: A {floors['a']} B {floors['b']}", flush=True)
    report(rows, variants)


PLUGIN_SESSIONS = 3  # interleaved.SESSIONS when this bench was written; compared with --sessions


def report(rows: list[dict[str, Any]], variants: list[str], baselines: int = 3) -> None:
    # Stored baselines: the A sessions of the first trials of the unchanged model, as a recording
    # of three sessions keeps them; each later trial is judged against one of them in turn.
    recorded = [r["a"] for r in rows if r["variant"] == SAME][:baselines]
    judged = [r for r in rows if not (r["variant"] == SAME and r["a"] in recorded)]
    for i, floors in enumerate(recorded):
        print(f"stored baseline {i}: {[round(f, 3) for f in floors]} ms (spread {spread(floors) * 100:.1f}%)")
    sessions = len(rows[0]["a"]) if rows else 0
    first = f"A/B first {PLUGIN_SESSIONS}: regr/inconcl" if sessions > PLUGIN_SESSIONS else ""
    print(f"{'variant':<8} {'n':>3} {'A/B change (median)':>20} {'stored: regr/inconcl':>22} "
          f"{f'A/B {sessions}: regr/inconcl':>21} {first:>27}")
    for name in variants:
        mine = [r for r in judged if r["variant"] == name]
        if not mine:
            continue
        stored = [judge_stored(recorded[i % len(recorded)], r["b"]) for i, r in enumerate(mine)]
        ab = [v for v, _ in (judge_ab(r["a"], r["b"]) for r in mine)]
        change = statistics.median(judge_ab(r["a"], r["b"])[1] for r in mine)
        line = (f"{name:<8} {len(mine):>3} {change * 100:>+19.1f}% "
                f"{stored.count('regressed'):>10}/{stored.count('inconclusive'):<11}"
                f"{ab.count('regressed'):>10}/{ab.count('inconclusive'):<10}")
        if first:
            # The first sessions of each side in time order: the plugin's A/B on the same trial.
            fewer = [judge_ab(r["a"][:PLUGIN_SESSIONS], r["b"][:PLUGIN_SESSIONS])[0] for r in mine]
            line += f"{fewer.count('regressed'):>16}/{fewer.count('inconclusive'):<10}"
        print(line)
    if any("rotation" in r for r in rows):
        side_by_side(rows, variants)


def side_by_side(rows: list[dict[str, Any]], variants: list[str]) -> None:
    """The A/B on sessions timed one by one and in turns, measured in the same trials."""
    print(f"{'variant':<8} {'n':>3}  {'way':<11} {'regr/inconcl/unch/impr':>23} {'fastest read: median, sd':>26} "
          f"{'s (median)':>11}")
    for name in variants:
        mine = [r for r in rows if r["variant"] == name and "rotation" in r]
        for way, pick in (("one by one", lambda r: r), ("in turns", lambda r: r["rotation"])):
            judged = [judge_ab(pick(r)["a"], pick(r)["b"]) for r in mine]
            verdicts = [v for v, _ in judged]
            counts = "/".join(str(verdicts.count(v)) for v in ("regressed", "inconclusive", "unchanged", "improved"))
            reads = [c * 100 for _, c in judged]
            seconds = statistics.median(pick(r)["s"] for r in mine)
            print(f"{name:<8} {len(mine):>3}  {way:<11} {counts:>23} {statistics.median(reads):>+15.2f}%, "
                  f"{statistics.stdev(reads) if len(reads) > 1 else 0.0:>5.2f}% {seconds:>11.2f}")


if __name__ == "__main__":
    main()
