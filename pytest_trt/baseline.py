"""The ``baselines/`` store: one small, sorted JSON file per test module under a folder per
hardware class, meant to be committed so that a pull request's diff shows which tests moved.

Layout: ``<root>/<hardware class>/<module path, "/" -> "__", ".py" dropped>.json`` holding
``{"schema": 1, "hardware": ..., "module": ..., "tests": {nodeid: entry}}``. An entry keeps a
fixed set of latency quantiles plus n (enough to rebuild the sample for a statistical test), the
throughput, accuracy error statistics, the software, model hash, build spec and workload it ran
with, and when and from which commit it was recorded.

Writes merge into what is on disk (other tests' entries are never touched), go through a temp
file in the same folder and ``os.replace`` (no half files), and are serialized by a file lock
kept outside the store, so nothing but baselines lands in the committed folder.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from filelock import FileLock

from .files import write_atomic
from .host_probe import HostProbe
from .regression import Timed, accuracy_drift, decide
from .regression import record as record_baseline
from .results import TestRecord
from .stats import percentile_label, quantile_summary

SCHEMA = 1

# Percent points kept per test. The low tail (min, p0.5, p1, p2) is dense because the regression
# test compares the sample floor (see regression.py); the body and p99 serve reports.
BASELINE_POINTS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 100.0)

# Six significant digits: finer than any timer resolves, coarse enough for readable diffs.
_DIGITS = 6

# Workload keys that exist only when the test was timed.
_TIMING_KEYS = ("clock", "mode")


class BaselineFileError(Exception):
    """A baseline file cannot be read or safely rewritten; the message names the file."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "unknown"


def hardware_class(device: Mapping[str, Any], *, older_scheme: bool = False) -> str:
    """A stable, short folder name for the hardware a measurement belongs to.

    GPU: name, memory (whole GB), compute capability, SM count and the driver's CUDA version
    (``drv12.8``: it moves with the driver's major branch, which changes kernels' speed). CPU
    (host facts of ``fingerprint.host_facts``): vendor and model name, the signature that tells
    generations apart when the name does not (family.model.stepping on x86: every 2-vCPU EPYC
    of a cloud reads just "AMD EPYC"), and the CPUs the process may use. Clocks, serial numbers
    and the driver's minor updates are left out: they change without the hardware changing,
    and the comparison reports software changes instead of hiding the baseline.

    ``older_scheme`` gives the name the same hardware had before (GPU without the driver, CPU
    as model name and core count), so that folders recorded under it can be named in a note.
    """
    if device.get("gpu_name"):
        missing = [k for k in ("total_memory_gb", "compute_capability", "sm_count") if device.get(k) is None]
        if missing:
            raise ValueError(f"hardware_class: GPU fingerprint lacks {', '.join(missing)} (got {dict(device)!r})")
        cc = device["compute_capability"]
        cc_text = ".".join(str(p) for p in cc) if isinstance(cc, (tuple, list)) else str(cc)
        memory = round(float(device["total_memory_gb"]))
        name = f"{device['gpu_name']}-{memory}gb-cc{cc_text}-{device['sm_count']}sm"
        if device.get("driver_version") and not older_scheme:
            name += f"-drv{device['driver_version']}"
        return _slug(name)
    if device.get("cpu_model"):
        if not device.get("cpu_count"):
            raise ValueError(f"hardware_class: CPU fingerprint lacks cpu_count (got {dict(device)!r})")
        identity = device.get("cpu")
        if older_scheme or not isinstance(identity, Mapping):
            return _slug(f"cpu-{device['cpu_model']}-{device['cpu_count']}c")
        from .fingerprint import cpu_class_name

        return _slug(f"cpu-{cpu_class_name(identity)}-{device.get('cpu_usable') or device['cpu_count']}c")
    raise ValueError(
        "hardware_class: device fingerprint needs gpu_name (with total_memory_gb, compute_capability, "
        f"sm_count) or cpu_model (with cpu_count), got {dict(device)!r}"
    )


def is_absolute_module(module: str) -> bool:
    """A test module path that is absolute on POSIX or Windows (``/x``, ``C:\\x``, ``\\\\host\\x``):
    pytest names a test file that way when it lies outside the rootdir."""
    return PurePosixPath(module).is_absolute() or PureWindowsPath(module).is_absolute()


def module_file_name(module: str) -> str:
    """``tests/perf/test_x.py`` -> ``tests__perf__test_x.json``."""
    parts = module.replace("\\", "/").split("/")
    if not module or is_absolute_module(module) or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"baseline module must be a relative path inside the rootdir, got {module!r}")
    stem = "__".join(parts)
    return stem.removesuffix(".py") + ".json"


def _round(value: float) -> float:
    return float(f"{value:.{_DIGITS}g}")


def _plain(value: Any) -> Any:
    """JSON-normal form (tuples -> lists, numpy scalars -> numbers) so stored and fresh compare equal."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, indent=1, default=_json_default) + "\n"


def _lock_for(path: Path) -> FileLock:
    # Kept in the temp dir, keyed by the file's absolute path: the committed folder stays clean.
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    return FileLock(os.path.join(tempfile.gettempdir(), f"pytest-trt-baseline-{key}.lock"))


def _parse(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineFileError(f"baseline file {path}: cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineFileError(
            f"baseline file {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix or delete it, or re-record it with --trt-update-baselines"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("tests"), dict):
        raise BaselineFileError(f"baseline file {path}: expected an object with a 'tests' object")
    schema = data.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise BaselineFileError(f"baseline file {path}: missing or invalid 'schema' (got {schema!r})")
    if schema > SCHEMA:
        raise BaselineFileError(
            f"baseline file {path}: schema {schema} is newer than this pytest-trt reads ({SCHEMA}); upgrade pytest-trt"
        )
    bad = [nodeid for nodeid, entry in data["tests"].items() if not isinstance(entry, dict)]
    if bad:
        raise BaselineFileError(f"baseline file {path}: entry for {bad[0]!r} is not an object")
    return data


def _sample_summary(samples_ms: Sequence[float]) -> dict[str, Any]:
    """n, mean and the BASELINE_POINTS quantiles of a sample: enough to rebuild it for the test."""
    samples = np.asarray(samples_ms, dtype=np.float64)
    quantiles = quantile_summary(samples, BASELINE_POINTS)
    return {
        "n": int(samples.size),
        "mean": _round(float(samples.mean())),
        "quantiles": {percentile_label(p): _round(v) for p, v in zip(BASELINE_POINTS, quantiles)},
    }


class BaselineStore:
    """Baselines of one hardware class under ``root``."""

    def __init__(self, root: Path, hardware: str) -> None:
        if not hardware or _slug(hardware) != hardware:
            raise ValueError(f"hardware must be a hardware_class() name, got {hardware!r}")
        self.root = Path(root)
        self.hardware = hardware
        self.folder = self.root / hardware
        self._parsed: dict[Path, dict[str, Any]] = {}
        self._staged: dict[str, dict[str, dict[str, Any]]] = {}

    def path_for(self, module: str) -> Path:
        return self.folder / module_file_name(module)

    def _load(self, path: Path) -> dict[str, Any] | None:
        if path not in self._parsed:
            if not path.is_file():
                return None
            self._parsed[path] = _parse(path)
        return self._parsed[path]

    def lookup(self, module: str, nodeid: str) -> dict[str, Any] | None:
        """The stored entry of ``nodeid``, or None. Raises BaselineFileError on a corrupt file."""
        data = self._load(self.path_for(module))
        return None if data is None else data["tests"].get(nodeid)

    @staticmethod
    def entry_from_record(
        record: TestRecord, commit: str | None, software: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """What is stored for one test. ``software`` adds facts the record lacks (driver, CUDA)."""
        perf = record.perf
        if perf is None or not perf.samples_ms:
            raise ValueError(f"{record.nodeid}: no latency sample to record as a baseline")
        probe = {"host_probe_ms": _sample_summary(perf.probe_ms)} if perf.probe_ms else {}
        accuracy: dict[str, dict[str, float]] = {}
        for output in getattr(record.accuracy, "outputs", None) or []:
            numbers = {k: _round(float(v)) for k, v in output.stats.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)}
            accuracy[output.name] = numbers
        return _plain({
            "latency_ms": _sample_summary(perf.samples_ms),
            **probe,
            "throughput_qps": _round(perf.throughput),
            "accuracy": accuracy,
            "software": {"backend": record.backend, "runtime": record.runtime_version, **(software or {})},
            "model": {"file": Path(str(record.model.get("path", ""))).name,
                      "content_hash": record.model.get("content_hash")},
            "build": record.build,
            "workload": _workload(record),
            "recorded_at": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            "commit": commit,
        })

    def stage(self, module: str, nodeid: str, entry: Mapping[str, Any]) -> None:
        """Queue ``entry`` for the next ``write``; a later stage of the same test replaces it."""
        module_file_name(module)  # validate now, not at session end
        self._staged.setdefault(module, {})[nodeid] = _plain(entry)

    @property
    def staged(self) -> dict[str, dict[str, dict[str, Any]]]:
        """module -> nodeid -> entry not yet written (what an xdist worker ships to the controller)."""
        return {m: dict(e) for m, e in self._staged.items()}

    def write(self, force: bool = False) -> list[Path]:
        """Merge staged entries into their files and return the files written.

        A file that does not parse is left alone (BaselineFileError) unless ``force``: the explicit
        update replaces it with the staged entries, since its own cannot be read.
        """
        written = []
        for module in sorted(self._staged):
            path = self.path_for(module)
            with _lock_for(path):
                self._parsed.pop(path, None)  # another writer may have merged since we read it
                try:
                    current = self._load(path)
                except BaselineFileError:
                    if not force:
                        raise
                    current = None
                tests = dict(current["tests"]) if current else {}
                tests.update(self._staged[module])
                data = {"schema": SCHEMA, "hardware": self.hardware, "module": module, "tests": tests}
                write_atomic(path, _dumps(data))
                self._parsed[path] = _plain(data)
            written.append(path)
        self._staged.clear()
        return written

    def known(self) -> dict[str, set[str]]:
        """module -> nodeids stored for this hardware class."""
        found: dict[str, set[str]] = {}
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("*.json")):
            data = self._load(path)
            if data is None:  # removed since the glob
                continue
            module = data.get("module")
            if not isinstance(module, str) or self.path_for(module) != path:
                raise BaselineFileError(f"baseline file {path}: its 'module' {module!r} does not match the file name")
            found[module] = set(data["tests"])
        return found

    def unused(self, used: Mapping[str, set[str]]) -> dict[str, set[str]]:
        """Stored baselines no test uses any more, among the modules in ``used``.

        ``used`` maps each module this run collected (before ``-k``/``-m`` deselection) to the
        nodeids in it that still measure latency; modules the run did not collect are not judged,
        so a partial run never flags the baselines of tests it did not look at.
        """
        known = self.known()
        return {m: known[m] - set(ids) for m, ids in used.items() if m in known and known[m] - set(ids)}

    def prune(self, unused: Mapping[str, set[str]]) -> int:
        """Remove the given entries; a file left empty is deleted. Returns how many were removed."""
        removed = 0
        for module in sorted(unused):
            path = self.path_for(module)
            with _lock_for(path):
                self._parsed.pop(path, None)
                data = self._load(path)
                if data is None:
                    continue
                tests = {k: v for k, v in data["tests"].items() if k not in unused[module]}
                removed += len(data["tests"]) - len(tests)
                if not tests:
                    path.unlink()
                    self._parsed.pop(path, None)
                elif len(tests) != len(data["tests"]):
                    data = {**data, "tests": tests}
                    write_atomic(path, _dumps(data))
                    self._parsed[path] = data
        return removed


def _workload(record: TestRecord) -> dict[str, Any]:
    """The record's workload plus how it was timed: both decide whether numbers are comparable."""
    workload = dict(record.workload)
    perf = record.perf
    if perf is not None:
        workload.update(clock=perf.clock, mode=dict(perf.mode), batch=workload.get("batch", perf.batch))
    workload["backend"] = record.backend
    return _plain(workload)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key in sorted(value):
            flat.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, separators=(", ", ": "), sort_keys=True).strip('"')


def staleness(entry: Mapping[str, Any], record: TestRecord) -> str | None:
    """Why the baseline measured a different workload (shapes, batch, precision, IO signature,
    backend or timing mode), or None when it is comparable."""
    stored = entry.get("workload")
    if not isinstance(stored, Mapping):
        return "baseline entry has no workload"
    old, new = _flatten(stored), _flatten(_workload(record))
    if record.perf is None:  # nothing was timed this run: only the workload itself can differ
        old = {k: v for k, v in old.items() if k.split(".")[0] not in _TIMING_KEYS}
    diffs = [f"{key} {_show(old.get(key))} -> {_show(new.get(key))}"
             for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    return "workload changed: " + "; ".join(diffs) if diffs else None


def _short(digest: Any) -> str:
    return f"{str(digest)[:8]}.." if digest else "(none)"


def _version_change(old: str, new: str) -> str:
    """``onnxruntime 1.31.0 -> 1.32.0`` when only the version moved."""
    old_name, _, old_version = old.partition(" ")
    new_name, _, new_version = new.partition(" ")
    if old_name == new_name and old_version and new_version:
        return f"{old_name} {old_version} -> {new_version}"
    return f"{old} -> {new}"


def changes(entry: Mapping[str, Any], record: TestRecord, software: Mapping[str, Any] | None = None) -> list[str]:
    """What changed since the baseline without making it stale: the model, the runtime and other
    software, build options. These are what the comparison exists to judge."""
    found = []
    old_hash = (entry.get("model") or {}).get("content_hash")
    new_hash = record.model.get("content_hash")
    if old_hash != new_hash:
        found.append(f"model {_short(old_hash)} -> {_short(new_hash)}")
    old_sw = dict(entry.get("software") or {})
    new_sw = {"runtime": record.runtime_version, **(software or {})}
    if old_sw.get("runtime") != new_sw["runtime"]:
        found.append(_version_change(str(old_sw.get("runtime")), str(new_sw["runtime"])))
    for key in sorted(set(new_sw) - {"runtime", "backend"}):
        if key in old_sw and old_sw[key] != new_sw[key]:
            found.append(f"{key} {old_sw[key]} -> {new_sw[key]}")
    old_options = (entry.get("build") or {}).get("options")
    new_options = _plain(record.build.get("options"))
    if old_options != new_options:
        found.append(f"build options {_show(old_options)} -> {_show(new_options)}")
    return found


@functools.cache
def current_commit(root: Path) -> str | None:
    """The git commit checked out at ``root`` (with ``-dirty`` for local changes), or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def hardware_for(
    backend: str, fingerprint: Mapping[str, Any], *, older_scheme: bool = False
) -> tuple[str, dict[str, str]]:
    """(hardware class, software facts) for a run, from ``fingerprint.machine_fingerprint()``
    (``older_scheme``: the class under the older naming, see ``hardware_class``).

    TensorRT timings belong to the GPU; onnxruntime's CPU timings to the CPU, even on a GPU host.
    """
    gpu = fingerprint.get("gpu")
    if backend == "tensorrt" and gpu:
        software = {"driver": gpu.get("driver_version"), "cuda": gpu.get("cuda_runtime_version")}
        return hardware_class(gpu, older_scheme=older_scheme), {k: str(v) for k, v in software.items() if v}
    return hardware_class(fingerprint, older_scheme=older_scheme), {}


def compare_record(
    store: BaselineStore,
    record: TestRecord,
    *,
    mode: str,
    update: bool,
    threshold: float,
    remeasure: Callable[[], Timed],
    enforce: bool = True,
    commit: str | None = None,
    software: Mapping[str, Any] | None = None,
) -> list[str]:
    """The per-test baseline step: fill ``record.regression``, ``baseline_note`` and drift
    warnings, stage a new entry when updating, and return the test's failure lines.

    ``mode`` is compare | strict | off; ``remeasure`` re-runs the measurement and returns it
    (when comparing, called at most once, as ``regression.decide`` asks; when updating, as often
    as ``regression.record`` asks); ``enforce`` False reports a regression without failing
    (--trt-perf=report).
    """
    if mode == "off" or record.perf is None:
        return []
    if is_absolute_module(record.module):
        record.baseline_note = "test file outside the rootdir"
        return [(
            f"baseline: the test file {record.module} is outside pytest's rootdir, so it has no name in the "
            "baseline store. pytest may have chosen the rootdir from the value of a path option written "
            "after a space: write --trt-baseline-dir=PATH, with '=', or pass --rootdir"
        )]
    if update:
        recording = record_baseline(record.perf, remeasure, HostProbe.fastest_ms)
        record.perf = recording.kept
        store.stage(record.module, record.nodeid, BaselineStore.entry_from_record(record, commit, software))
        record.baseline_note = recording.note
        return []
    try:
        entry = store.lookup(record.module, record.nodeid)
    except BaselineFileError as exc:
        record.baseline_note = "baseline file unreadable"
        return [f"baseline: {exc}"]
    if entry is None:
        record.baseline_note = "no baseline"
        if mode == "strict":
            return [(
                f"baseline: no baseline for this test on {store.hardware} (--trt-baseline=strict); "
                "record one with --trt-update-baselines"
            )]
        return []
    reason = staleness(entry, record)
    if reason is not None:
        record.baseline_note = f"stale: {reason}"
        if mode == "strict":
            return [f"baseline: stale baseline, not compared ({reason}); re-record it with --trt-update-baselines"]
        return []
    record.baseline_note = "; ".join(changes(entry, record, software))
    verdict = decide(entry, record.perf, remeasure, threshold)
    record.regression = verdict
    record.warnings.extend(accuracy_drift(entry, record))
    if verdict.status == "regressed" and enforce:
        since = f" (changed since the baseline: {record.baseline_note})" if record.baseline_note else ""
        return [f"regression ({record.backend}): {verdict.message}{since}"]
    return []


def finish_session(
    store: BaselineStore,
    *,
    staged: Mapping[str, Mapping[str, Mapping[str, Any]]],
    used: Mapping[str, set[str]],
    update: bool,
    prune: bool,
) -> list[str]:
    """Controller side, once per session: write the entries staged here and by xdist workers
    (``staged``: module -> nodeid -> entry), then list or prune baselines no test uses. Returns
    lines for the terminal summary; a corrupt file becomes a line naming it, never an exception
    out of the summary."""
    lines = []
    try:
        for module, entries in staged.items():
            for nodeid, entry in entries.items():
                store.stage(module, nodeid, entry)
        if update and store.staged:
            count = sum(len(e) for e in store.staged.values())
            written = store.write(force=True)
            lines.append(f"baselines recorded for {count} test(s) in {len(written)} file(s) under {store.folder}")
        unused = store.unused(used)
    except BaselineFileError as exc:
        return [*lines, f"baselines: {exc}"]
    if unused and prune:
        lines.append(f"baselines pruned: {store.prune(unused)} unused")
    elif unused:
        lines.append("unused baselines (their tests are gone or no longer measured; remove with --trt-prune-baselines):")
        lines += [f"  {nodeid}" for module in sorted(unused) for nodeid in sorted(unused[module])]
    return lines
