"""False alarms and detection of the regression gate as CI meets it: every recording and every
comparison is its own ``python -m pytest`` process.

``bench/regression_power.py`` measures many trials inside one process, which is fast but not
what CI does: there each run is a fresh interpreter, a fresh onnxruntime session, another moment
of the host and, on many-core hosts, another CPU (or a GPU that has gone back to its idle clock).
This bench generates a small project, kept in git with every model committed as a user's
project would be (``--no-git`` leaves it out: then no slowed model is timed beside the
baseline's own), then

0. the models, by ``--family``: ``cnn`` (the default on ``--backend onnxruntime``): the example
   CNN, batch 8, one onnxruntime thread, and copies of it slowed by a dead-end side branch from
   regression_power.py (``--widths``); ``matmul`` (the default on a GPU backend, e.g. ``--backend
   onnxruntime-cuda``): chains of 2048x2048 fp32 MatMuls at batch 2048 from matmul_chain.py,
   ``--blocks`` of them (the first is the unchanged model: 20,21,22 are it, +5% and +10%), so
   that a slowdown is GPU work, not launch overhead;
1. records ``--baselines`` baselines of the unchanged model, each with ``--trt-update-baselines``
   in its own process and its own baseline folder (``--recordings`` times each, in rounds over the
   baselines, so that each keeps a history of recordings of the model made at other moments);
2. runs ``--trials`` comparisons per model (the unchanged one and each ``--widths`` branch) in
   shuffled rounds, each a process comparing against one of the baselines in turn, with the
   plugin's defaults unless ``--threshold`` or ``--pytest-arg`` say otherwise, and reads the
   verdict from ``--trt-report-json``;
3. prints, per model, how many comparisons failed as regressed (false alarms for the unchanged
   model, detection for the slowed ones, each labelled with the slowdown it measured: its
   probe-normalized floor against the unchanged model's), how many were re-measured, and the
   seconds of measuring per test (warm-up, timing, probes and re-measurements; waits for the
   measurement lock left out) and per process; on a GPU, how the warm-up ended and the SM clock
   the comparisons were timed at (measure.PerfResult.gpu_clock).

Every finished process is appended to ``--save`` (JSON lines) at once, so a run stopped by
``--time-limit``, Ctrl-C or a lost machine continues where it stopped when started again with
the same arguments; ``--report-only`` prints the table of what is saved.

    python bench/regression_processes.py --trials 100 --save runs/p1.jsonl --time-limit 540
    python bench/regression_processes.py --trials 2 --baselines 1 --widths 16 --save /tmp/smoke.jsonl
    python bench/regression_processes.py --backend onnxruntime-cuda --trials 40 --save runs/gpu.jsonl
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pytest_runs import plugin_args
from saved_rows import append_row

SAME = "same"
NO_REPORT = "no-report"  # the process wrote no JSON report: its output is kept in the row
MAX_FAILED_IN_A_ROW = 3  # then the bench stops: something is broken, not noisy

CNN, MATMUL, MLP, REC = "cnn", "matmul", "mlp", "rec"
COPY = "copy"  # the unchanged model in other bytes
REC_WHEEL = "rapidocr-onnxruntime==1.4.4"  # ships PP-OCRv4 rec (10.9 MB) among its models
REC_MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"

TEST_FILES = {
    CNN: '''
import os

import pytest

MODEL = os.environ["BENCH_MODEL"]


@pytest.mark.trt_model(MODEL, batch_size=8, intra_op_threads=1)
@pytest.mark.trt_perf(backend=os.environ["BENCH_BACKEND"])
def test_model(trt_engine):
    pass
''',
    MLP: '''
import os

import pytest

MODEL = os.environ["BENCH_MODEL"]


@pytest.mark.trt_model(MODEL, shapes={"x": (64, 256)}, intra_op_threads=1)
@pytest.mark.trt_perf(backend=os.environ["BENCH_BACKEND"])
def test_model(trt_engine):
    pass
''',
    REC: '''
import os

import pytest

MODEL = os.environ["BENCH_MODEL"]


SHAPE = tuple(int(d) for d in os.environ.get("BENCH_REC_SHAPE", "1,3,48,320").split(","))
# One onnxruntime thread on the CPU, as on a 2-core runner (and beside which the host probe runs).
THREADS = {"intra_op_threads": 1} if os.environ["BENCH_BACKEND"] == "onnxruntime" else {}


@pytest.mark.trt_model(MODEL, shapes={"x": SHAPE}, **THREADS)
@pytest.mark.trt_perf(backend=os.environ["BENCH_BACKEND"])
def test_model(trt_engine):
    pass
''',
    MATMUL: '''
import os

import pytest

MODEL = os.environ["BENCH_MODEL"]
THREADS = {"intra_op_threads": 1} if os.environ["BENCH_BACKEND"] == "onnxruntime" else {}


@pytest.mark.trt_model(MODEL, **THREADS)
@pytest.mark.trt_perf(backend=os.environ["BENCH_BACKEND"])
def test_model(trt_engine):
    pass
''',
}

# Seconds spent in measure.measure and rotation.measure_rotation (the A/B's sessions timed in
# turns) per test, lock waits left out: written where BENCH_SECONDS says.
CONFTEST = '''
import json
import os
import time

import pytest

from pytest_trt.timing import measure, rotation

_measure, _rotation = measure.measure, rotation.measure_rotation
_spent = {}


def _counted(started, waited_s, measurements):
    _spent["seconds"] = _spent.get("seconds", 0.0) + time.perf_counter() - started - waited_s
    _spent["measurements"] = _spent.get("measurements", 0) + measurements


def _timed(*args, **kwargs):
    started = time.perf_counter()
    result = _measure(*args, **kwargs)
    _counted(started, result.lock_wait_s, 1)
    return result


def _timed_in_turns(*args, **kwargs):
    started = time.perf_counter()
    sessions = _rotation(*args, **kwargs)
    _counted(started, sessions[0].lock_wait_s, len(sessions))
    return sessions


measure.measure = _timed
rotation.measure_rotation = _timed_in_turns


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_SECONDS"], "w") as f:
        json.dump(_spent, f)
'''


def cnn_models(widths: list[tuple[int, int]]) -> dict[str, Callable[[], Any]]:
    """The example CNN and its slowed copies, by variant name, as functions that build them."""
    from regression_power import branch_name, slowed_cnn

    made: dict[str, Callable[[], Any]] = {SAME: lambda: slowed_cnn(0)}
    for width, columns in widths:
        made[branch_name(width, columns)] = functools.partial(slowed_cnn, width, columns)
    return made


def matmul_models(blocks: list[int], width: int) -> dict[str, Callable[[], Any]]:
    """MatMul chains by variant name: the first of ``blocks`` is the unchanged model."""
    from matmul_chain import matmul_chain

    made: dict[str, Callable[[], Any]] = {SAME: functools.partial(matmul_chain, blocks[0], width)}
    for n in blocks[1:]:
        made[f"b{n}"] = functools.partial(matmul_chain, n, width)
    return made


def slowed_models(base: Callable[[], Any], sizes: list[int]) -> dict[str, Callable[[], Any]]:
    """A model and copies slowed by bench/slowdown.py's side branch of each size (``s<size>``);
    size 0 is ``copy``: the same work in other bytes (a new doc string), so that the plugin sees a
    changed model that is no slower (what an interleaved A/B must call unchanged)."""
    from slowdown import slowed

    def copy() -> Any:
        model = base()
        model.doc_string = "an unchanged copy"
        return model

    made: dict[str, Callable[[], Any]] = {SAME: base}
    for size in sizes:
        if size:
            made[f"s{size}"] = functools.partial(lambda n: slowed(base(), n), size)
        else:
            made[COPY] = copy
    return made


def mlp_model() -> Any:
    import onnx

    return onnx.load(str(ROOT / "examples" / "models" / "mlp.onnx"))


def rec_model(cache: Path) -> Any:
    """PP-OCRv4 rec, taken from the rapidocr-onnxruntime wheel (downloaded once into ``cache``)."""
    import zipfile

    import onnx

    extracted = cache / Path(REC_MEMBER).name
    if extracted.exists():  # carried to a host without an index
        return onnx.load(str(extracted))
    wheels = sorted(cache.glob("rapidocr_onnxruntime-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(cache), REC_WHEEL],
                       check=True)
        wheels = sorted(cache.glob("rapidocr_onnxruntime-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        return onnx.load_from_string(wheel.read(REC_MEMBER))


def make_project(folder: Path, family: str, made: dict[str, Callable[[], Any]], git: bool = True) -> dict[str, Path]:
    """The test project: models, the test file, its conftest; the model files by variant name.
    With ``git``, a repository with every file committed, as a user's project is: a slowed model's
    comparison can then time the baseline's model beside it (an interleaved A/B)."""
    (folder / "models").mkdir(parents=True, exist_ok=True)
    models = {name: folder / "models" / f"{name}.onnx" for name in made}
    for name, path in models.items():
        if not path.exists():
            part = path.with_suffix(".part")  # a run stopped while writing leaves no half model
            part.write_bytes(made[name]().SerializeToString())
            part.replace(path)
    (folder / "test_bench.py").write_text(TEST_FILES[family])
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "pytest.ini").write_text("[pytest]\n")
    if git and not (folder / ".git").exists():
        def run(*words: str) -> None:
            subprocess.run(["git", *words], cwd=folder, check=True, capture_output=True)

        run("init", "-q")
        (folder / ".gitignore").write_text("*\n!models/\n!models/*.onnx\n!*.py\n!pytest.ini\n!.gitignore\n")
        run("add", "-A")
        run("-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "models")
    return models


def run_pytest(folder: Path, model: Path, baseline_dir: Path, backend: str, extra: list[str]) -> dict[str, Any]:
    """One pytest process; what it reported about the test, its measuring seconds and wall time."""
    report, seconds = folder / "report.json", folder / "seconds.json"  # read back before the next process
    for stale in (report, seconds):
        stale.unlink(missing_ok=True)
    env = {**os.environ, "BENCH_MODEL": str(model.relative_to(folder)), "BENCH_SECONDS": str(seconds),
           "BENCH_BACKEND": backend,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args(), "test_bench.py",
               f"--trt-backend={backend}", f"--trt-baseline-dir={baseline_dir}", f"--trt-report-json={report}",
               *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if not report.exists():
        return {"exit": done.returncode, "status": NO_REPORT, "remeasured": False, "wall_s": wall,
                "output": f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"}
    (test,) = json.loads(report.read_text())["tests"]
    spent = json.loads(seconds.read_text()) if seconds.exists() else {}
    perf, verdict = test.get("perf") or {}, test.get("regression") or {}
    samples, probes = perf.get("samples_ms") or [], perf.get("probe_ms") or []
    return {
        "exit": done.returncode,
        "status": verdict.get("status", ""),
        "change": verdict.get("change"),
        "raw_change": verdict.get("raw_change"),
        "host_change": verdict.get("host_change"),
        "remeasured": bool(verdict.get("remeasured")),
        "doubt": verdict.get("doubt"),
        "sessions": verdict.get("sessions"),  # each judged session's change
        "bound": verdict.get("bound"),  # the threshold and the spread added to it
        "spread_from": (verdict.get("spread") or {}).get("source"),  # sessions or recordings (spread.py)
        "ab_floors_ms": verdict.get("baseline_model_floors_ms") or None,  # the baseline's model timed beside it
        "note": test.get("baseline_note", ""),
        "floor_ms": min(samples) if samples else None,
        # How far the test's own samples lie above their floor: a measurement on a disturbed host
        # reaches its floor only in brief fast moments.
        "p25_over_floor": float(np.percentile(samples, 25) / min(samples) - 1.0) if samples else None,
        "probe_floor_ms": min(probes) if len(probes) >= 5 else None,
        "measure_s": spent.get("seconds"),
        "measurements": spent.get("measurements"),
        "lock_wait_s": perf.get("lock_wait_s"),
        "gpu_clock": perf.get("gpu_clock"),
        "warnings": test.get("warnings") or [],
        "wall_s": wall,
    }


def load(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def normalized(row: dict[str, Any]) -> float | None:
    floor, probe = row.get("floor_ms"), row.get("probe_floor_ms")
    if floor is None:
        return None
    return floor / probe if probe else floor


def table(rows: list[dict[str, Any]], command: str) -> list[str]:
    compares = [r for r in rows if r["kind"] == "compare"]
    if not compares:
        return ["no comparisons saved yet"]
    same = [n for r in compares if r["variant"] == SAME and (n := normalized(r)) is not None]
    reference = statistics.median(same) if same else None
    variants = [SAME, *sorted({r["variant"] for r in compares} - {SAME})]
    lines = [f"regression_processes: {command}",
             f"{len([r for r in rows if r['kind'] == 'record'])} recording processes, {len(compares)} comparison "
             "processes; each row: comparisons failed as regressed (the unchanged model: false alarms)", ""]
    header = (f"{'model':<14} {'measured':>9} {'regressed':>15} {'inconclusive':>13} {'improved':>9} {'re-measured':>12} "
              f"{'verdict change (min, median, max)':>34} {'measure s/test (median, mean, max)':>36} {'process s':>10}")
    lines += [header, "-" * len(header)]
    for variant in variants:
        mine = [r for r in compares if r["variant"] == variant]
        floors = [n for r in mine if (n := normalized(r)) is not None]
        measured = "" if variant == SAME or reference is None or not floors else \
            f"{(statistics.median(floors) / reference - 1) * 100:+.1f}%"
        regressed = sum(r["status"] == "regressed" for r in mine)
        improved = sum(r["status"] == "improved" for r in mine)
        inconclusive = sum(r["status"] == "inconclusive" for r in mine)
        remeasured = sum(r["remeasured"] for r in mine)
        seconds = [r["measure_s"] for r in mine if r.get("measure_s") is not None]
        spent = (f"{statistics.median(seconds):.2f}, {statistics.fmean(seconds):.2f}, {max(seconds):.2f}"
                 if seconds else "-")
        changes = [100 * c for r in mine if isinstance(c := r.get("change"), (int, float))]
        moved = (f"{min(changes):+.1f}, {statistics.median(changes):+.1f}, {max(changes):+.1f}%"
                 if changes else "-")
        lines.append(
            f"{variant:<14} {measured:>9} {f'{regressed}/{len(mine)} ({100 * regressed / len(mine):.1f}%)':>15} "
            f"{inconclusive:>13} {improved:>9} {remeasured:>12} {moved:>34} {spent:>36} "
            f"{statistics.median(r['wall_s'] for r in mine):>10.1f}"
        )
    others = sorted({r["status"] for r in compares} - {"regressed", "improved", "unchanged", "inconclusive"})
    if others:
        lines.append("other verdicts: " + ", ".join(f"{s or 'none'}: {sum(r['status'] == s for r in compares)}"
                                                   for s in others))
    doubts = [r.get("doubt") or "not saved" for r in compares if r["status"] == "inconclusive"]
    if doubts:
        lines.append("inconclusive, by reason: " + ", ".join(f"{d} {doubts.count(d)}" for d in sorted(set(doubts))))
    timed_beside = [r for r in compares if r.get("ab_floors_ms")]
    if timed_beside:
        lines.append("decided by an interleaved A/B against the baseline's model: " + ", ".join(
            f"{v} {sum(r['variant'] == v for r in timed_beside)}" for v in variants
            if any(r["variant"] == v for r in timed_beside)))
    recordings = [r for r in rows if r["kind"] == "record" and r.get("measure_s") is not None]
    plains = [r for r in compares if r["variant"] == SAME and r["status"] == "unchanged"
              and not r["remeasured"] and r.get("measure_s") is not None]
    if recordings and plains:
        # A recording against a plain comparison, by measuring time and by the whole pytest process
        # (what a CI job pays: interpreter, imports and loading the model included).
        recorded, plain = (statistics.median(r["measure_s"] for r in rs) for rs in (recordings, plains))
        recorded_wall, plain_wall = (statistics.median(r["wall_s"] for r in rs) for rs in (recordings, plains))
        lines.append(f"recording: {recorded:.2f} s measuring (median of {len(recordings)}), "
                     f"{recorded / plain:.1f}x a plain measured comparison; its process {recorded_wall:.1f} s, "
                     f"{recorded_wall / plain_wall:.1f}x a plain comparison's")
    return lines + clock_lines([r for r in rows if r["kind"] in ("record", "compare")])


def clock_lines(rows: list[dict[str, Any]]) -> list[str]:
    """How GPU warm-ups ended and the SM clock timing ran at, over every process (none on the CPU)."""
    clocks = [c for r in rows if (c := r.get("gpu_clock"))]
    if not clocks:
        return []
    counts = ", ".join(f"{s} {sum(c['settled'] == s for c in clocks)}"
                       for s in sorted({c["settled"] for c in clocks}))
    warm = [c["warmup_ms"] / 1000 for c in clocks]
    lines = ["", f"GPU warm-up of the measurement each of {len(clocks)} processes reports: ended by {counts}; "
             f"warm-up s median {statistics.median(warm):.2f}, max {max(warm):.2f}"]
    read = [c for c in clocks if c.get("start_mhz") is not None]
    if read:
        starts, lows = [c["start_mhz"] for c in read], [c["low_mhz"] for c in read]
        lines.append(f"SM clock while timing ({read[0]['source']}): at the start {min(starts):.0f}..{max(starts):.0f} MHz, "
                     f"lowest {min(lows):.0f} MHz, maximum {read[0].get('max_mhz') or 0:.0f} MHz")
    else:
        lines.append(f"SM clock not read: {clocks[0].get('unread')}")
    return lines


def main() -> None:
    from regression_power import branch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="comparison processes per model (default 50)")
    parser.add_argument("--slowed-trials", type=int, help="comparison processes per slowed model (default: --trials); "
                        "false alarms need more trials than detection does")
    parser.add_argument("--baselines", type=int, default=3, help="baselines recorded, one process each (default 3)")
    parser.add_argument("--recordings", type=int, default=1, help="recordings of each baseline, in rounds over them "
                        "(default 1); from 3 on, their spread may widen the bound (pytest_trt/baselines/spread.py)")
    parser.add_argument("--backend", default="onnxruntime", help="--trt-backend of every process (default onnxruntime)")
    parser.add_argument("--family", choices=(CNN, MATMUL, MLP, REC), help="the models: cnn (default on a CPU "
                        "backend), matmul (default on a GPU backend), mlp (the example MLP) or rec (PP-OCRv4 rec from "
                        "the rapidocr-onnxruntime wheel)")
    parser.add_argument("--sizes", default="", help="mlp, rec: slowed copies, bench/slowdown.py side-branch sizes "
                        "(calibrate them with bench/slowdown.py MODEL); 0 is an unchanged copy in other bytes")
    parser.add_argument("--load", type=int, default=0, help="CPU-spinning processes kept running beside the bench "
                        "(default 0: a quiet host; 2 loads a 2-core runner)")
    parser.add_argument("--load-while", choices=("all", "compare"), default="all",
                        help="when --load runs: through the whole bench (default), or from the first comparison on, "
                        "so that baselines are recorded on a quiet host and compared on a busy one")
    parser.add_argument("--widths", default="16,32", help="cnn: slowed models' side branches, as regression_power.py "
                        "--widths takes them: a width or width x input columns (default 16,32)")
    parser.add_argument("--blocks", default="20,21,22", help="matmul: blocks of each chain, the unchanged one first "
                        "(default 20,21,22: unchanged, +5%%, +10%%)")
    parser.add_argument("--matmul-width", type=int, default=2048, help="matmul: the chain's width and batch "
                        "(default 2048; smaller ones make a quick smoke run on a CPU)")
    parser.add_argument("--threshold", type=float, help="--trt-regression-threshold (default: the plugin's)")
    parser.add_argument("--pytest-arg", action="append", default=[], metavar="ARG",
                        help="passed to every pytest process, e.g. --pytest-arg=--trt-min-duration-ms=300")
    parser.add_argument("--save", type=Path, help="append every finished process here (JSON lines) and resume from it")
    parser.add_argument("--workdir", type=Path, help="the generated project (default: next to --save, else temporary)")
    parser.add_argument("--time-limit", type=float, help="start no process after this many seconds (resume later)")
    parser.add_argument("--seed", type=int, default=0, help="shuffles the order of models within rounds")
    parser.add_argument("--no-git", action="store_true", help="leave the project out of git, so no comparison can "
                        "time the baseline's model beside the new one (the default commits every model)")
    parser.add_argument("--report-only", action="store_true", help="print the table of what --save holds")
    args = parser.parse_args()
    if args.trials < 0 or args.baselines < 1 or args.recordings < 1 or (args.slowed_trials or 0) < 0:
        parser.error("--trials and --slowed-trials must be >= 0, --baselines and --recordings >= 1")
    slowed_trials = args.trials if args.slowed_trials is None else args.slowed_trials
    from pytest_trt import backends

    try:
        on_gpu = backends.get(args.backend).device is backends.DeviceKind.GPU
    except backends.BackendError as exc:
        parser.error(f"--backend: {exc}")
    family = args.family or (MATMUL if on_gpu else CNN)
    try:
        blocks = [int(b) for b in args.blocks.split(",") if b]
    except ValueError:
        parser.error(f"--blocks takes block counts separated by commas, got {args.blocks!r}")
    if family == MATMUL and (len(blocks) < 2 or min(blocks) < 1):
        parser.error(f"--blocks needs the unchanged chain and at least one longer one, got {args.blocks!r}")
    sizes = [int(n) for n in args.sizes.split(",") if n]
    if family == MATMUL:
        made = matmul_models(blocks, args.matmul_width)
    elif family == MLP:
        made = slowed_models(mlp_model, sizes)
    elif family == REC:
        cache = ROOT / "bench" / ".downloads"
        cache.mkdir(exist_ok=True)
        made = slowed_models(functools.partial(rec_model, cache), sizes)
    else:
        made = cnn_models([branch(w) for w in args.widths.split(",") if w])
    rows = load(args.save)
    command = " ".join(["python bench/regression_processes.py", *sys.argv[1:]])
    if args.report_only:
        print("\n".join(table(rows, command)))
        return
    if not args.no_git and shutil.which("git") is None:
        parser.error("git is not on PATH: the project is kept in git so that a slowed model is timed beside the "
                     "baseline's; pass --no-git to bench without that")
    extra = [*args.pytest_arg] + ([f"--trt-regression-threshold={args.threshold}"] if args.threshold else [])
    # A resumed run must measure as the saved one did, or its rows would mix two settings.
    settings = {"kind": "settings", "backend": args.backend, "family": family,
                **({"widths": args.widths} if family == CNN else {"blocks": args.blocks, "width": args.matmul_width}
                   if family == MATMUL else {"sizes": args.sizes}),
                "load": args.load, **({"load_while": args.load_while} if args.load_while != "all" else {}),
                "pytest_args": extra, "baselines": args.baselines, "git": not args.no_git,
                **({"recordings": args.recordings} if args.recordings != 1 else {})}
    saved = next((r for r in rows if r["kind"] == "settings"), None)
    older = {"backend": "onnxruntime", "family": CNN, "load": 0, "git": False}  # files saved before these keys
    if saved is not None and {k: saved.get(k, older.get(k)) for k in settings} != settings:
        parser.error(f"{args.save} was started with {saved}; resume it with the same --backend, --family, "
                     "--widths or --blocks, --baselines, --threshold and --pytest-arg, or save to another file")
    spinners: list[subprocess.Popen[bytes]] = []

    def start_load() -> None:
        if not spinners:
            spinners.extend(subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load))

    try:
        if args.load_while == "all":
            start_load()
        run_bench(args, rows, settings, saved, extra, made, family, slowed_trials, command, start_load)
    finally:
        for spinner in spinners:
            spinner.kill()


def run_bench(args: argparse.Namespace, rows: list[dict[str, Any]], settings: dict[str, Any],
              saved: dict[str, Any] | None, extra: list[str], made: dict[str, Callable[[], Any]], family: str,
              slowed_trials: int, command: str, start_load: Callable[[], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="regression-processes-") as tmp:
        folder = args.workdir or (args.save.with_name(args.save.name + ".work") if args.save else Path(tmp))
        models = make_project(folder, family, made, git=settings["git"])
        started = time.perf_counter()

        def out_of_time() -> bool:
            return args.time_limit is not None and time.perf_counter() - started > args.time_limit

        failed_in_a_row = 0

        def keep(row: dict[str, Any]) -> None:
            nonlocal failed_in_a_row
            rows.append(row)
            append_row(args.save, row)
            if row.get("status") != NO_REPORT:
                failed_in_a_row = 0
                return
            failed_in_a_row += 1
            print(f"pytest wrote no report (exit {row['exit']}):\n{row['output']}", flush=True)
            if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                raise SystemExit(f"{failed_in_a_row} processes in a row wrote no report; stopping")

        if saved is None:
            keep(settings)
        # A baseline saved by an earlier run counts only where its folder is still there (a run
        # resumed on another machine records its own).
        recorded = [r["baseline"] for r in rows if r["kind"] == "record" and r["status"] != NO_REPORT]
        for round_ in range(args.recordings):
            for b in range(args.baselines):
                there = (folder / f"baselines-{b}").is_dir()
                if (there and recorded.count(b) > round_) or out_of_time():
                    continue
                result = run_pytest(folder, models[SAME], folder / f"baselines-{b}", args.backend,
                                    ["--trt-update-baselines", *extra])
                keep({"kind": "record", "baseline": b, "recording": round_, **result})
                print(f"baseline {b}, recording {round_ + 1}: recorded in {result['wall_s']:.1f} s "
                      f"({result.get('note', result['status'])})", flush=True)
        done = {(r["variant"], r["trial"]) for r in rows if r["kind"] == "compare" and r["status"] != NO_REPORT}
        start_load()
        order = random.Random(args.seed)
        for trial in range(args.trials):
            if out_of_time():
                break
            names = [name for name in models if name == SAME or trial < slowed_trials]
            order.shuffle(names)
            for name in names:
                if (name, trial) in done or out_of_time():
                    continue
                # Every model meets every baseline in turn, also once only the unchanged one is left.
                b = (trial + names.index(name)) % args.baselines
                result = run_pytest(folder, models[name], folder / f"baselines-{b}", args.backend, extra)
                keep({"kind": "compare", "variant": name, "trial": trial, "baseline": b, **result})
            print(f"round {trial + 1}/{args.trials} ({time.perf_counter() - started:.0f} s)", flush=True)
        if out_of_time():
            print(f"stopped at --time-limit {args.time_limit:g} s; run again with the same arguments to go on")
    print()
    print("\n".join(table(rows, command)))


if __name__ == "__main__":
    main()
