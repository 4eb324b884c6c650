"""Cold vs warm engine cache: run a pytest-trt suite in fresh processes, side by side.

Each repetition runs the suite twice with ``--trt-engine-cache``: cold (an empty cache folder)
then warm (the folder the cold run just filled), each in a new Python process, so imports and
process start are paid equally by both. Repetitions interleave cold and warm runs so that drift
on the machine hits both alike. Prints the wall times and their ratio, the cache summary of each
run, and per-artifact build time (cold) vs load time (warm).

    python bench/cache.py                      # the demo suite in examples/, 3 repetitions
    python bench/cache.py --repeat 5 --perf    # keep trt_perf measurement in the runs
    python bench/cache.py path/to/suite -- -k mlp
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_runs import plugin_args

from pytest_trt.model import ModelError, load_model
from pytest_trt.store.layout import RECORD_FILE

SUMMARY = re.compile(r"engine cache \S+: (\d+) hits?, (\d+) miss(?:es)? \((\d+) builds?, ([\d.]+) s\)")


@dataclass
class Run:
    label: str
    wall_s: float
    hits: int
    misses: int
    builds: int
    build_s: float


def run_suite(suite: Path, cache_dir: Path, label: str, extra: list[str]) -> Run:
    command = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", *plugin_args(),
               f"--trt-engine-cache={cache_dir}", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=suite if suite.is_dir() else suite.parent,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    wall_s = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{label} run failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    match = SUMMARY.search(done.stdout)
    if match is None:
        sys.exit(f"{label} run printed no engine cache summary line:\n{done.stdout[-3000:]}")
    hits, misses, builds, build_s = match.groups()
    return Run(label, wall_s, int(hits), int(misses), int(builds), float(build_s))


def model_names(suite: Path) -> dict[str, str]:
    """content hash -> model file name, for labelling cache entries."""
    names = {}
    for path in sorted(suite.rglob("*.onnx")):
        try:
            names[load_model(path).content_hash] = path.name
        except ModelError:
            continue
    return names


def artifact_rows(cache_dir: Path, names: dict[str, str]) -> list[tuple[str, str, float, float | None]]:
    """(kind, what, build_s, last load_s) of every entry, from the cache records."""
    rows = []
    for record_path in sorted(cache_dir.glob(f"*/*/*/{RECORD_FILE}")):
        record = json.loads(record_path.read_text())
        parts = record.get("parts", {})
        model = names.get(parts.get("model_hash", ""), f"model {parts.get('model_hash', '?')[:8]}")
        build = parts.get("build") or {}
        shapes = ", ".join(f"{k}{v}" for k, v in (build.get("shapes") or {}).items())
        if build:
            what = f"{model} {build.get('precision', '')} {shapes}".strip()
        elif "transform" in parts:
            what = f"{model} as {parts['transform'].get('precision', '?')}"
        else:
            what = f"{model} (reference outputs)"
        rows.append((record["kind"], what, record.get("build_s", 0.0), record.get("last_load_s")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", nargs="?", default=str(REPO / "examples"), help="test folder or file")
    parser.add_argument("--repeat", type=int, default=3, help="cold+warm pairs (default 3)")
    parser.add_argument("--perf", action="store_true", help="keep trt_perf measurement (default: --trt-perf=off)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    args = parser.parse_args()
    suite = Path(args.suite).resolve()
    extra = ([] if args.perf else ["--trt-perf=off"]) + args.pytest_args

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        for i in range(args.repeat):
            cache_dir = Path(tmp) / f"cache-{i}"
            runs.append(run_suite(suite, cache_dir, "cold", extra))
            runs.append(run_suite(suite, cache_dir, "warm", extra))
        rows = artifact_rows(cache_dir, model_names(suite))

    print(f"suite {suite}  ({args.repeat} cold+warm pairs, fresh processes, interleaved; "
          f"{'with' if args.perf else 'without'} perf measurement)\n")
    print(f"{'run':<6}{'wall s':>8}{'hits':>6}{'misses':>8}{'builds':>8}{'build s':>9}")
    for run in runs:
        print(f"{run.label:<6}{run.wall_s:>8.2f}{run.hits:>6}{run.misses:>8}{run.builds:>8}{run.build_s:>9.3f}")
    cold = statistics.median(r.wall_s for r in runs if r.label == "cold")
    warm = statistics.median(r.wall_s for r in runs if r.label == "warm")
    print(f"\nmedian wall: cold {cold:.2f} s, warm {warm:.2f} s; cold/warm = {cold / warm:.2f}x")
    warm_builds = sum(r.builds for r in runs if r.label == "warm")
    print("warm runs built nothing (no graph optimization, no reference inference)" if warm_builds == 0
          else f"warm runs still built {warm_builds} artifacts")

    print(f"\n{'kind':<16}{'artifact':<41}{'build s':>9}{'load s':>9}{'build/load':>12}")
    for kind, what, build_s, load_s in rows:
        ratio = f"{build_s / load_s:.0f}x" if load_s else "-"
        load_text = f"{load_s:.4f}" if load_s is not None else "-"
        print(f"{kind:<16}{what[:40]:<41}{build_s:>9.4f}{load_text:>9}{ratio:>12}")


if __name__ == "__main__":
    main()
