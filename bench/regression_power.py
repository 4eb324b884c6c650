"""How often does the regression detector cry wolf, and how often does it catch a real slowdown?

Runs on the onnxruntime CPU backend through the real ``measure.measure`` loop, on whatever
machine it is started (meant for a 2-core CI-like box with no GPU):

1. Builds the example CNN (batch 8) and copies of it made slower by real extra work: a side
   branch of MatMuls on the input whose result is multiplied by 0 and added to the logits, so
   outputs and IO are unchanged. The branch width is calibrated by measurement for +5/+10/+20%
   (the slowdown reached is measured again during the run and printed with the table), or
   given with ``--widths`` (a width, or width x input columns for finer steps) to map detection
   around one slowdown. A fixed branch's slowdown wanders by 1-2% between runs, so mapping a
   few branches around +5% is how detection of exactly +5% is read.
2. Rounds of independent trials, each a fresh onnxruntime session measured once (``--measure-ms``):
   one "same model" trial per round, and in ``--variant-trials`` rounds spread evenly over the
   run one trial of each slowed model, in shuffled order so that machine drift hits all variants
   alike. ``--baselines`` baseline recordings are spread over the run, each made as the plugin's
   ``--trt-update-baselines`` makes it (``regression.record``: the middle of three measurements
   at the host's usual speed), stored and read back as the JSON entry the store keeps (quantiles
   + n, for latency and for the host-speed probe). Each trial is compared with the baseline
   recorded farthest from it in time (CI comparing with a run from another day) and with the
   nearest one.
3. Judges every trial's first measurement with pytest-trt's ``regression.decide`` (a trial that
   looks slower than the threshold is re-measured once, as the plugin does; the re-measurement
   is taken right after the first) and, on the same first samples, with pytest-benchmark's
   ``--benchmark-compare-fail=mean:5%`` rule (mean more than 5% above the baseline's mean). Also
   shown, on the same measurements: the detector without the host-speed margin, without the
   margin for a mixed-state measurement, without the host probe (raw floors), without the
   re-measurement, and with the median, to show what each part of the method buys.

Measurements use the plugin's defaults (200 ms warm-up, 1000 ms timed, host probe on). Prints a
table last. Run: ``python bench/regression_power.py`` (about 30 minutes with defaults).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from make_models import make_cnn

from pytest_trt import backends
from pytest_trt.baselines import regression
from pytest_trt.baselines.entry import BaselineEntry, BaselineInput, entry_from_measurement
from pytest_trt.baselines.regression import RECORDINGS, Measurement, assess, decide, normalized_floor, record
from pytest_trt.baselines.subject import BuildFacts, ModelRef, TestSubject, Workload
from pytest_trt.model import load_model
from pytest_trt.prepare.inputs import make_inputs, resolve_shapes
from pytest_trt.specs import BuildSpec, MeasureSettings
from pytest_trt.timing.host_probe import HostProbe
from pytest_trt.timing.measure import PerfResult, measure

BATCH = 8
SLOWDOWNS = (0.05, 0.10, 0.20)
SAME = "same"
EXTRA_THRESHOLDS = (0.03, 0.035, 0.04, 0.05, 0.10)  # also judged, from the same trials and re-measurements
CALIBRATION_START = (16, 48, 96)  # side-branch widths of the first calibration pass
CALIBRATION_ROUNDS = 12  # interleaved measurements of the base and slowed models per pass
CALIBRATION_PASSES = 3
FEATURES = 3 * 32 * 32  # values of one flattened input image


def slowed_cnn(width: int, columns: int = FEATURES) -> onnx.ModelProto:
    """The example CNN plus a dead-end MatMul of ``width`` columns over the first ``columns``
    values of the flattened image. Width alone moves in steps of 3-5% (on the 2-core VM width 16
    cost +2-4% and width 17 +7%: the MatMul kernel works in panels of 16 columns); fewer input
    columns make the finer steps around +5%."""
    model = make_cnn()
    if width == 0:
        return model
    if not 0 < columns <= FEATURES:
        raise ValueError(f"columns must be 1..{FEATURES}, got {columns}")
    graph = model.graph
    rng = np.random.default_rng(width)
    graph.initializer.extend([
        numpy_helper.from_array(rng.standard_normal((columns, width)).astype(np.float32), "side.w1"),
        numpy_helper.from_array(rng.standard_normal((width, 10)).astype(np.float32), "side.w2"),
        numpy_helper.from_array(np.zeros((), np.float32), "side.zero"),
    ])
    # The graph output "logits" is renamed to an intermediate, and re-made as logits + 0 * side.
    for node in graph.node:
        node.output[:] = ["logits.main" if o == "logits" else o for o in node.output]
    side = "side.flat"
    graph.node.append(helper.make_node("Flatten", ["image"], [side], axis=1))
    if columns < FEATURES:
        graph.initializer.extend(numpy_helper.from_array(np.array([v], np.int64), name)
                                 for v, name in ((0, "side.start"), (columns, "side.end"), (1, "side.axis")))
        graph.node.append(helper.make_node("Slice", [side, "side.start", "side.end", "side.axis"], ["side.cut"]))
        side = "side.cut"
    graph.node.extend([
        helper.make_node("MatMul", [side, "side.w1"], ["side.h"]),
        helper.make_node("MatMul", ["side.h", "side.w2"], ["side.out"]),
        helper.make_node("Mul", ["side.out", "side.zero"], ["side.zeroed"]),
        helper.make_node("Add", ["logits.main", "side.zeroed"], ["logits"]),
    ])
    onnx.checker.check_model(model)
    return model


def branch(text: str) -> tuple[int, int]:
    """A ``--widths`` entry: ``32`` (a width over all columns) or ``32x1536`` (width x columns)."""
    width, _, columns = text.partition("x")
    return int(width), int(columns) if columns else FEATURES


def branch_name(width: int, columns: int) -> str:
    return f"w{width}" if columns == FEATURES else f"w{width}x{columns}"


@dataclass
class Variant:
    name: str
    path: Path
    backend: object
    loaded: object
    artifact: object
    feed: dict
    build: BuildSpec

    def measure(self, settings: MeasureSettings) -> PerfResult:
        return self.timed_measure(settings)[0]

    def timed_measure(self, settings: MeasureSettings) -> tuple[PerfResult, float]:
        """A measurement and the wall seconds it took (warm-up, timed loop and host probes)."""
        # A fresh session per measurement: trials must be as independent as separate CI runs.
        runner = self.backend.load(self.artifact, self.loaded, self.build)
        try:
            started = time.perf_counter()
            result = measure(runner, self.feed, settings, BATCH)
            return result, time.perf_counter() - started
        finally:
            runner.close()


def make_variant(name: str, model: onnx.ModelProto, folder: Path) -> Variant:
    path = folder / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    backend = backends.create("onnxruntime")
    loaded = load_model(path)
    shapes = resolve_shapes(loaded, None, BATCH)
    # One intra-op thread: on 2 cores, a second worker thread fights the timing loop and other
    # processes; pinning threads is what anyone timing CPU inference in CI should do.
    build = BuildSpec(shapes=tuple(sorted(shapes.items())), options=(("intra_op_threads", 1),))
    artifact = backend.build(loaded, build)
    return Variant(name, path, backend, loaded, artifact, make_inputs(loaded, shapes, 0), build)


def calibrate(folder: Path, settings: MeasureSettings, log: Callable[[str], None]) -> dict[str, Variant]:
    """Side-branch widths giving each slowdown. A width's slowdown is its floor over interleaved
    rounds against the base model's floor in the same rounds; one width's reading wanders by
    1-2% between passes (each measurement is a fresh session), so the widths are read off a
    straight line (the branch's fixed cost plus a cost per column) fitted to every width measured,
    refitted after each pass."""
    made: dict[int, Variant] = {}

    def variant(width: int) -> Variant:
        if width not in made:
            made[width] = make_variant(f"width-{width}", slowed_cnn(width), folder)
        return made[width]

    points: list[tuple[int, float]] = []
    widths = list(CALIBRATION_START)
    for attempt in range(CALIBRATION_PASSES):
        floors: dict[int, list[float]] = {w: [] for w in [0, *widths]}
        for _ in range(CALIBRATION_ROUNDS):
            for width, found in floors.items():
                found.append(min(variant(width).measure(settings).samples_ms))
        measured = [(w, min(floors[w]) / min(floors[0]) - 1.0) for w in widths]
        points += measured
        slope, fixed = np.polyfit(*zip(*points, strict=False), 1)
        widths = [max(1, round((s - fixed) / slope)) for s in SLOWDOWNS]
        log(f"  calibration pass {attempt + 1}: " + ", ".join(f"width {w} {d * 100:+.1f}%" for w, d in measured)
            + f"; fit over {len(points)} points: {fixed * 100:+.1f}% + {slope * 100:.3f}% per column")
    log("calibrated widths: " + ", ".join(f"+{s:.0%}: {w}" for s, w in zip(SLOWDOWNS, widths, strict=False)))
    return {f"{s:.0%}": variant(w) for s, w in zip(SLOWDOWNS, widths, strict=False)}


def stored_entry(name: str, result: PerfResult) -> BaselineEntry:
    """The baseline entry the store would keep for this sample, after a JSON round trip."""
    subject = TestSubject(
        nodeid=f"bench::{name}", module="bench/regression_power.py", backend="onnxruntime", runtime_version="",
        model=ModelRef("", ""), build=BuildFacts(""), workload=Workload({}, {}, BATCH, ""),
    )
    entry = entry_from_measurement(BaselineInput(subject, perf=result), None)
    return BaselineEntry.from_file(json.loads(json.dumps(entry.to_file())))


@dataclass
class Trial:
    """One test run: a first measurement and, taken right after it as the plugin would, the
    re-measurement ``decide`` asks for when the first looks regressed (used only then)."""

    variant: str
    round: int
    far: int  # index of the baseline recorded farthest in time from this trial
    near: int  # ... and nearest
    first: PerfResult
    second: PerfResult
    seconds: tuple[float, float]  # wall seconds of each measurement (warm-up, timing, probes)


def run_trials(args: argparse.Namespace, same: Variant, slowed: dict[str, Variant],
               settings: MeasureSettings, log: Callable[[str], None]
               ) -> tuple[list[Trial], list[BaselineEntry], list[PerfResult]]:
    rounds = args.same_trials
    # Baselines and slowed-model trials are spread evenly over the run, so that slow drift of
    # the machine meets false-alarm and detection trials alike.
    baseline_rounds = set(np.linspace(0, rounds - 1, args.baselines).round().astype(int).tolist())
    variant_rounds = set(np.linspace(0, rounds - 1, args.variant_trials).round().astype(int).tolist())
    baselines: list[BaselineEntry] = []
    kept: list[PerfResult] = []  # each baseline's whole measurement, saved for replays of other rules
    baseline_round: list[int] = []
    recordings_taken: list[int] = []
    pending: list[tuple[int, str, tuple[PerfResult, float], tuple[PerfResult, float]]] = []  # judged later
    order_rng = random.Random(0)
    started = time.perf_counter()
    for r in range(rounds):
        jobs: list[tuple[str, Variant]] = [(SAME, same)]
        if r in variant_rounds:
            jobs += list(slowed.items())
        if r in baseline_rounds:
            jobs.append(("baseline", same))
        order_rng.shuffle(jobs)
        for name, variant in jobs:
            if name == "baseline":
                recording = record(variant.measure(settings), lambda v=variant: v.measure(settings),
                                   HostProbe.fastest_ms)
                baselines.append(stored_entry("baseline", recording.kept))
                kept.append(recording.kept)
                baseline_round.append(r)
                recordings_taken.append(recording.taken)
            else:
                pending.append((r, name, variant.timed_measure(settings), variant.timed_measure(settings)))
        if r % 20 == 19:
            log(f"  round {r + 1}/{rounds} ({time.perf_counter() - started:.0f} s)")
    trials = []
    for r, name, (first, first_s), (second, second_s) in pending:
        distance = [abs(r - br) for br in baseline_round]
        trials.append(Trial(name, r, int(np.argmax(distance)), int(np.argmin(distance)), first, second,
                            (first_s, second_s)))
    log(f"baseline recordings: {np.mean(recordings_taken):.2f} measurements per baseline "
        f"(at most {max(recordings_taken)})")
    return trials, baselines, kept


Rule = Callable[[Trial, BaselineEntry], tuple[bool, float]]


def without_probe(baseline: BaselineEntry) -> BaselineEntry:
    return dataclasses.replace(baseline, host_probe_ms=None)


def rules(threshold: float) -> dict[str, Rule]:
    """Each rule judges a trial against a baseline entry: (failed?, measured seconds it cost)."""

    def with_remeasure(limit: float, probe: bool = True, gate: str = "decide") -> Rule:
        """``decide`` as the plugin runs it; or, on the same measurements, ``gate`` "ci" (the
        kept verdict's bootstrap interval must also lie above 0, an earlier rule) or "both" (each
        measurement must regress on its own, an earlier rule)."""
        def rule(trial: Trial, baseline: BaselineEntry) -> tuple[bool, float]:
            used = [trial.seconds[0]]
            first, second = trial.first, trial.second
            if not probe:
                baseline = without_probe(baseline)
                first, second = Measurement(first.samples_ms), Measurement(second.samples_ms)

            def remeasure() -> object:
                used.append(trial.seconds[1])
                return second

            if gate == "both":
                failed = assess(baseline, first, limit).status == "regressed" and \
                    assess(baseline, remeasure(), limit).status == "regressed"
            else:
                verdict = decide(baseline, first, remeasure, limit)
                failed = verdict.status == "regressed" and (gate != "ci" or verdict.ci_low > 0)
            return failed, sum(used)
        return rule

    def without_margin(rule: Rule, constant: str) -> Rule:
        """``rule`` with nothing added to the threshold for what ``constant`` (HOST_UNCERTAINTY)
        covers."""
        def judged(trial: Trial, baseline: BaselineEntry) -> tuple[bool, float]:
            saved = getattr(regression, constant)
            setattr(regression, constant, 0.0)
            try:
                return rule(trial, baseline)
            finally:
                setattr(regression, constant, saved)
        return judged

    def single(check: Callable[[Trial, BaselineEntry], bool]) -> Rule:
        return lambda trial, baseline: (check(trial, baseline), trial.seconds[0])

    table: dict[str, Rule] = {}
    for limit in sorted({threshold, *EXTRA_THRESHOLDS}):
        default = " (default)" if limit == 0.10 else ""
        table[f"pytest-trt: min/probe, re-measure, threshold {limit:.1%}{default}"] = with_remeasure(limit)
    table[f"  same, no host-speed margin on the threshold, {threshold:.1%}"] = without_margin(
        with_remeasure(threshold), "HOST_UNCERTAINTY")
    table[f"  same, kept verdict's CI must lie above 0 too, {threshold:.1%}"] = with_remeasure(threshold, gate="ci")
    table[f"  same, each measurement must regress alone, {threshold:.1%}"] = with_remeasure(threshold, gate="both")
    table[f"  same, no re-measurement, {threshold:.1%}"] = single(
        lambda t, b: assess(b, t.first, threshold).status == "regressed")
    for limit in sorted({threshold, 0.10}):
        table[f"no probe (raw min), re-measure, threshold {limit:.1%}"] = with_remeasure(limit, probe=False)
    table[f"no probe, median, threshold {threshold:.1%}, no re-measure"] = single(
        lambda t, b: assess(without_probe(b), Measurement(t.first.samples_ms), threshold,
                            percentile=50.0).status == "regressed")
    table["pytest-benchmark --benchmark-compare-fail=mean:5%"] = single(
        lambda t, b: t.first.latency.mean / b.latency_ms.mean - 1.0 > 0.05)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--same-trials", type=int, default=200, help="same-model trials (false alarms)")
    parser.add_argument("--variant-trials", type=int, default=100, help="trials per slowed model")
    parser.add_argument("--widths", type=lambda text: [branch(w) for w in text.split(",")],
                        help="side branches of the slowed models instead of calibrating, each a width or "
                             "width x input columns, e.g. 16,32x1024,32x1536 (to map detection around one "
                             "slowdown; table columns are then named by branch)")
    parser.add_argument("--baselines", type=int, default=30, help="baseline recordings spread over the run")
    defaults = MeasureSettings()
    parser.add_argument("--measure-ms", type=float, default=defaults.min_duration_ms,
                        help="timed duration of one measurement (the plugin's default)")
    parser.add_argument("--warmup-ms", type=float, default=defaults.warmup_ms)
    parser.add_argument("--threshold", type=float, default=0.025, help="the detector's threshold (fraction)")
    parser.add_argument("--save", type=Path, help="also pickle the trials and baselines here, to judge other rules later")
    parser.add_argument("--load", type=Path, help="judge the trials and baselines pickled by --save instead of measuring")
    args = parser.parse_args()
    if args.variant_trials > args.same_trials:
        parser.error("--variant-trials must not exceed --same-trials (variants run in the same rounds)")

    def log(text: str) -> None:
        print(text, flush=True)

    settings = MeasureSettings(warmup_ms=args.warmup_ms, min_iterations=50,
                               min_duration_ms=args.measure_ms, max_duration_ms=3 * args.measure_ms)
    began = time.perf_counter()
    if args.load is not None:
        trials, baselines, *older = pickle.loads(args.load.read_bytes())
        kept = older[0] if older else []  # saves of earlier runs have no kept measurements
        log(f"judging the {len(trials)} trials saved in {args.load} (measurement settings as saved)")
    else:
        with tempfile.TemporaryDirectory(prefix="regression-power-") as tmp:
            folder = Path(tmp)
            if args.widths:
                slowed = {branch_name(*b): make_variant(branch_name(*b), slowed_cnn(*b), folder)
                          for b in args.widths}
            else:
                slowed = calibrate(folder, settings, log)
            same = make_variant(SAME, slowed_cnn(0), folder)
            log(f"trials: {args.same_trials} same-model, {args.variant_trials} per slowed model, "
                f"{args.baselines} baselines, {args.measure_ms:g} ms per measurement")
            trials, baselines, kept = run_trials(args, same, slowed, settings, log)
    if args.save is not None:
        args.save.write_bytes(pickle.dumps((trials, baselines, kept)))

    # The true slowdown of each variant: its floor vs the same round's same-model floor.
    same_by_round = {t.round: normalized_floor(t.first) for t in trials if t.variant == SAME}
    measured = {
        c: float(np.median([normalized_floor(t.first) / same_by_round[t.round] - 1.0
                            for t in trials if t.variant == c]))
        for c in {t.variant for t in trials} - {SAME}
    }
    columns = [SAME, *sorted(measured, key=measured.get)]
    counts = {c: sum(t.variant == c for t in trials) for c in columns}
    floors = np.array([b.latency_ms.floor for b in baselines])
    # Runs saved before slow-host baselines kept their probe times have some without them.
    probe_floors = np.array([b.host_probe_ms.floor for b in baselines if b.host_probe_ms is not None])
    thirds = np.array_split(floors, 3)
    raw_floors = np.array([min(t.first.samples_ms) for t in trials if t.variant == SAME])

    print()
    print(f"regression_power: onnxruntime CPU, example CNN batch {BATCH}, 1 intra-op thread, "
          f"{args.warmup_ms:g} + {args.measure_ms:g} ms per measurement, baselines the middle of {RECORDINGS} at the usual host speed; "
          + (f"{len(trials)} saved trials judged" if args.load else
             f"{len(trials)} trials in {time.perf_counter() - began:.0f} s"))
    print("measured slowdown of the slowed models (floor/probe vs same-round floor/probe, median over rounds): "
          + ", ".join(f"{c}: {measured[c] * 100:+.1f}%" for c in columns[1:]))
    print("machine drift: baseline floors (median) over the first/middle/last third of the run: "
          + " / ".join(f"{np.median(t):.4f}" for t in thirds) + " ms")
    print("host speed states: same-model raw floors p5/p50/p95 "
          + "/".join(f"{v:.4f}" for v in np.percentile(raw_floors, [5, 50, 95]))
          + "; baseline probe floors min/max "
          + (f"{probe_floors.min():.4f}/{probe_floors.max():.4f} ms" if probe_floors.size else "-")
          + f" ({len(baselines) - len(probe_floors)} of {len(baselines)} baselines kept without probe times)")
    # Each slowed model is named with the slowdown it measured, which is what its detection rate is of.
    titles = ["false alarms"] + [f"{c} {measured[c] * 100:+.1f}%" for c in columns[1:]]
    cell_widths = [max(12, len(title)) for title in titles]
    header = f"{'rule':<60} | " + " | ".join(f"{title:>{w}}" for title, w in zip(titles, cell_widths, strict=False))
    header += " | measure s/test"
    for pairing, pick in (("baseline recorded farthest in time (another day)", lambda t: t.far),
                          ("baseline recorded nearest in time (same machine state)", lambda t: t.near)):
        print()
        print(f"vs the {pairing}:")
        print(header)
        print("-" * len(header))
        for label, rule in rules(args.threshold).items():
            outcomes = [rule(t, baselines[pick(t)]) for t in trials]
            cells = []
            for c, w in zip(columns, cell_widths, strict=False):
                hits = [failed for (failed, _), t in zip(outcomes, trials, strict=False) if t.variant == c]
                cells.append(f"{100 * sum(hits) / max(1, len(hits)):>{w - 1}.1f}%")
            cost = float(np.mean([seconds for _, seconds in outcomes]))
            print(f"{label:<60} | " + " | ".join(cells) + f" | {cost:.2f}")
    print(f"(trials: {counts[SAME]} same-model, " + ", ".join(f"{counts[c]} of {c}" for c in columns[1:])
          + "; measure s/test = wall seconds of measuring per test (warm-up, timing, probes), incl. the "
          "re-measurement where the rule asked for it)")
    print_mistakes(trials, baselines, args.threshold)


def print_mistakes(trials: list[Trial], baselines: list[BaselineEntry], threshold: float) -> None:
    """The trials the probe rule got wrong at ``threshold`` (vs the farthest baseline), with what
    each measurement saw: where the remaining errors come from."""
    print()
    print(f"mistakes of pytest-trt min/probe at {threshold:.1%} vs the farthest baseline: status, change / "
          "raw change / host change, CI; of the first measurement, then of the verdict kept where re-measured:")
    for t in trials:
        baseline = baselines[t.far]
        first = assess(baseline, t.first, threshold)
        final = decide(baseline, t.first, lambda t=t: t.second, threshold)
        if (final.status == "regressed") == (t.variant != SAME):
            continue
        seen = "  ".join(
            f"{v.status} {v.change * 100:+.1f}/{v.raw_change * 100:+.1f}/{(v.host_change or 0) * 100:+.1f}% "
            f"[{v.ci_low * 100:+.1f}..{v.ci_high * 100:+.1f}]"
            for v in ((first, final) if final.remeasured else (first,)))
        kind = "false alarm" if final.status == "regressed" else f"missed +{t.variant}"
        print(f"  round {t.round:>3} {kind:<13} {seen}")

if __name__ == "__main__":
    main()
