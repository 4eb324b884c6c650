"""How sparse can the host-speed probe be and still divide out the host's speed, and what does
it cost the measurement it normalizes? Several probe spacings side by side, in one run.

The probe (host_probe.py) runs between iterations after ``SPACING`` probe-durations of model
time and at least ``GAP`` iterations; the iteration right after it is left out of latency
budgets. This bench measures the example CNN (batch 8, one onnxruntime thread: what the probe
is for) in rounds; each round takes one measurement per configuration (``--spacings``, each
``spacing:gap``) plus one without the probe, in shuffled order and each in a fresh session, so
all of them meet the same host states. Per configuration it prints:

- what the probe costs: probes per iteration, probe time as a share of timed time, the share
  of iterations left out of budgets;
- what it perturbs: the iteration right after a probe against the others (median ratio), and
  the budget p50/p99 and the floor against the unprobed measurement of the same round;
- how well it divides out the host's speed: the spread over rounds (CV, and the 99th
  percentile over the median) of floor / probe level (its 25th percentile), next to that of the
  raw floor. The lower the normalized spread, the better; the densest probe is the reference.

    python bench/probe_spacing.py                                # 4:1 (the old rule), 16:4 (now), 64:4, 256:8
    python bench/probe_spacing.py --rounds 20 --save runs/s.json # short; --load runs/s.json reprints
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from pytest_trt import measure_defaults
from pytest_trt.specs import MeasureSettings
from pytest_trt.timing.measure import HostTimedSession, measure

BATCH = 8
UNPROBED = "none"


class SpacedRunner:
    """A Runner whose timed sessions probe at one spacing and gap (or not at all)."""

    backend = "onnxruntime"

    def __init__(self, model_bytes: bytes, feed: dict[str, np.ndarray], spacing: float | None, gap: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        # A fresh session per measurement: rounds must be as independent as separate runs.
        self._session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self._feed, self._spacing, self._gap = feed, spacing, gap

    def timed_session(self, feed: Any, settings: MeasureSettings) -> HostTimedSession:
        run, names, fed = self._session.run, None, self._feed
        if self._spacing is None:
            return HostTimedSession(lambda: run(names, fed))
        return HostTimedSession(lambda: run(names, fed), probe=True, spacing=self._spacing, gap=self._gap)


def one(model_bytes: bytes, feed: dict[str, np.ndarray], config: str, settings: MeasureSettings) -> dict[str, Any]:
    spacing, gap = (None, 0) if config == UNPROBED else (float(config.split(":")[0]), int(config.split(":")[1]))
    runner = SpacedRunner(model_bytes, feed, spacing, gap)
    started = time.perf_counter()
    result = measure(runner, feed, settings, BATCH)  # type: ignore[arg-type]
    wall = time.perf_counter() - started - result.lock_wait_s
    samples = np.asarray(result.samples_ms)
    marked = np.zeros(samples.size, dtype=bool)
    marked[result.after_probe] = True
    budget = np.asarray(result.budget_samples_ms)  # all of them where every iteration followed a probe
    probes = np.asarray(result.probe_ms or [])
    return {
        "config": config,
        "iterations": result.iterations,
        "floor": float(samples.min()),
        "budget_p50": float(np.percentile(budget, 50)),
        "budget_p99": float(np.percentile(budget, 99)),
        "after_probe_median": float(np.median(samples[marked])) if marked.any() else None,
        "others_median": float(np.median(samples[~marked])) if (~marked).any() else None,
        "left_out": int(marked.sum()),
        "probes": int(probes.size),
        "probe_level": float(probes.min()) if probes.size >= 5 else None,
        "probe_ms_total": float(probes.sum()),
        "timed_ms": result.duration_s * 1000,
        "wall_s": wall,
    }


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    v = np.asarray(values)
    return f"{v.std(ddof=1) / v.mean() * 100:5.1f}% / {(np.percentile(v, 99) / np.median(v) - 1) * 100:+5.1f}%"


def report(rows: list[dict[str, Any]], configs: list[str], header: str) -> None:
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_round.setdefault(row["round"], {})[row["config"]] = row
    print(header)
    print(f"{len(by_round)} rounds; spacing:gap = probe-durations of model time : fewest iterations between probes")
    print()
    columns = ("config", "probes/iter", "probe time", "left out", "after-probe / others", "vs unprobed: p50",
               "p99", "floor", "raw floor CV / p99", "floor/probe CV / p99")
    print(" | ".join(columns))
    for config in configs:
        mine = [r for r in rows if r["config"] == config]
        if not mine:
            continue

        def against_unprobed(key: str) -> str:
            ratios = [by_round[r["round"]][config][key] / by_round[r["round"]][UNPROBED][key] - 1
                      for r in mine if UNPROBED in by_round[r["round"]]]
            return f"{np.median(ratios) * 100:+.1f}%" if ratios and config != UNPROBED else "-"

        iterations = sum(r["iterations"] for r in mine)
        perturbed = [r["after_probe_median"] / r["others_median"] - 1 for r in mine
                     if r["after_probe_median"] and r["others_median"]]
        normalized = [r["floor"] / r["probe_level"] for r in mine if r["probe_level"]]
        cells = (
            config,
            f"{sum(r['probes'] for r in mine) / iterations:.3f}",
            f"{sum(r['probe_ms_total'] for r in mine) / sum(r['timed_ms'] for r in mine) * 100:.1f}%",
            f"{sum(r['left_out'] for r in mine) / iterations * 100:.1f}%",
            f"{np.median(perturbed) * 100:+.1f}%" if perturbed else "-",
            against_unprobed("budget_p50"),
            against_unprobed("budget_p99"),
            against_unprobed("floor"),
            spread([r["floor"] for r in mine]),
            spread(normalized) if config != UNPROBED else "-",
        )
        print(" | ".join(cells))
    print()
    print("probe time: the probe's share of timed (model) time; left out: iterations right after a probe, not in "
          "budgets (where that is every one, budgets take them all); vs unprobed: median over rounds of the ratio to the same round's unprobed measurement (p50, p99 "
          "of budget samples, floor of all); CV / p99: spread over rounds (the 99th percentile over the median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacings", default="4:1,16:4,64:4,256:8", help="spacing:gap pairs (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--measure-ms", type=float, default=measure_defaults.MIN_DURATION_MS)
    parser.add_argument("--warmup-ms", type=float, default=measure_defaults.WARMUP_MS)
    parser.add_argument("--save", type=Path, help="write the per-measurement rows here (JSON)")
    parser.add_argument("--load", type=Path, help="print the table of rows saved by --save instead of measuring")
    args = parser.parse_args()
    configs = [c for c in args.spacings.split(",") if c] + [UNPROBED]
    for config in configs[:-1]:
        spacing, _, gap = config.partition(":")
        try:
            ok = float(spacing) > 0 and int(gap) >= 1
        except ValueError:
            ok = False
        if not ok:
            parser.error(f"--spacings: {config!r} is not spacing:gap with spacing > 0 and gap >= 1 (e.g. 16:4)")
    if args.load is not None:
        saved = json.loads(args.load.read_text())
        report(saved["rows"], saved["configs"], saved["header"])
        return

    import tempfile

    from make_models import make_cnn

    from pytest_trt.model import load_model
    from pytest_trt.prepare.inputs import make_inputs, resolve_shapes

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cnn.onnx"
        path.write_bytes(make_cnn().SerializeToString())
        loaded = load_model(path)
        feed = make_inputs(loaded, resolve_shapes(loaded, None, BATCH), 0)
        model_bytes = path.read_bytes()
    settings = MeasureSettings(warmup_ms=args.warmup_ms, min_iterations=measure_defaults.MIN_ITERATIONS,
                               min_duration_ms=args.measure_ms, max_duration_ms=3 * args.measure_ms)
    order = random.Random(0)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for r in range(args.rounds):
        shuffled = list(configs)
        order.shuffle(shuffled)
        for config in shuffled:
            rows.append({"round": r, **one(model_bytes, feed, config, settings)})
        if r % 10 == 9:
            print(f"  round {r + 1}/{args.rounds} ({time.perf_counter() - started:.0f} s)", flush=True)
    header = (f"probe_spacing: example CNN batch {BATCH}, 1 onnxruntime thread, {args.warmup_ms:g} + "
              f"{args.measure_ms:g} ms per measurement, {time.perf_counter() - started:.0f} s")
    if args.save is not None:
        args.save.write_text(json.dumps({"header": header, "configs": configs, "rows": rows}))
    report(rows, configs, header)


if __name__ == "__main__":
    main()
