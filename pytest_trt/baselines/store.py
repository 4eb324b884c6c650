"""The ``baselines/`` store: one small, sorted JSON file per test module under a folder per
hardware class, meant to be committed so that a pull request's diff shows which tests moved.

Layout: ``<root>/<hardware class>/<module path, "/" -> "__", ".py" dropped>.json`` holding
``{"schema": 1, "hardware": ..., "module": ..., "tests": {nodeid: entry}}``. An entry keeps a
fixed set of latency quantiles plus n (enough to rebuild the sample for a statistical test), the
throughput, accuracy error statistics, the software, model hash, build spec and workload it ran
with, and when and from which commit it was recorded.

What the store promises (docs/reliability.md lists the tests of each):

* Writes merge into what is on disk (other tests' entries are never touched), go through a temp
  file and ``os.replace`` (no half files), and are serialized by one lock per store.
* The lock and the temp files live in ``<root>/.pytest-trt/``, whose own ``.gitignore`` keeps
  them out of ``git add baselines/``; a temp file whose writer died is removed by a later run.
* A file that cannot be read (not JSON, wrong shape, newer schema, another hardware class's) is
  never compared with and never overwritten, unless the user asks for it to be replaced.
* Every number of an entry is checked (``validate_entry``) before a comparison reads it.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import itertools
import json
import math
import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from pytest_trt.baselines.subject import BuildFacts, ModelRef, Workload
from pytest_trt.errors import BaselineFileError
from pytest_trt.serde import to_data
from pytest_trt.store.files import remove_stale_temps, write_atomic
from pytest_trt.store.owners import ProcessOwner, read_owner_file, write_owner_file
from pytest_trt.timing import host_probe
from pytest_trt.timing.stats import percentile_label, quantile_summary

SCHEMA = 1

# Percent points kept per test. The low tail (min, p0.5, p1, p2) is dense because the regression
# test compares the sample floor (see regression.py); the body and p99 serve reports.
BASELINE_POINTS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 100.0)

# Accuracy error statistics kept per output: what regression.accuracy_drift compares.
DRIFT_STATS = ("max_abs", "p99_abs", "mean_abs", "max_rel", "p99_rel", "mean_rel")

# Six significant digits: finer than any timer resolves, coarse enough for readable diffs.
_DIGITS = 6

# The store's own folder under its root: the lock and temp files, never committed.
PRIVATE_DIR = ".pytest-trt"
LOCK_NAME = "lock"
DEFAULT_LOCK_TIMEOUT_S = 600.0  # --trt-lock-timeout's default: the store is held for a write only
_GITIGNORE = "# Lock and temp files of pytest-trt's baseline store: never committed.\n*\n"

REPLACE_OPTION = "--trt-replace-unreadable-baselines"
_SHOWN_PROBLEMS = 3  # of an invalid entry, in its error line
# A test's note when its entry was staged but its file could not be written at the session end.
NOT_WRITTEN_NOTE = "baseline not recorded: its file could not be written (see the session's errors)"
NOT_COMPARED = (
    f"not compared: fix, move or remove the file, or replace it with --trt-update-baselines {REPLACE_OPTION}"
)


class BaselineEntryError(BaselineFileError):
    """One test's entry in a readable baseline file holds a value a comparison cannot use."""


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
        from pytest_trt.fingerprint import cpu_class_name

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


def plain(value: Any) -> Any:
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


def _parse(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineFileError(f"baseline file {path}: cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineFileError(
            f"baseline file {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
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


# ---- entry validation ------------------------------------------------------------------------------


def _shown_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number_problems(name: str, value: Any, *, positive: bool) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [f"{name} is {_shown_value(value)}, must be a number"]
    if not math.isfinite(value):
        return [f"{name} is {value}, must be finite"]
    if positive and value <= 0:
        return [f"{name} is {value:g}, must be > 0"]
    if value < 0:
        return [f"{name} is {value:g}, must be >= 0"]
    return []


def _percent_of(label: Any) -> float | None:
    """50.0 for the label ``p50``; None for anything ``percentile_label`` does not write."""
    if not isinstance(label, str) or not label.startswith("p"):
        return None
    try:
        percent = float(label[1:])
        return percent if percentile_label(percent) == label else None
    except ValueError:
        return None


def _summary_problems(entry: Mapping[str, Any], key: str, *, positive: bool) -> list[str]:
    """A stored sample summary (``_sample_summary``): n, mean and quantiles including the floor."""
    summary = entry.get(key)
    if summary is None:
        return [f"{key} is missing"]
    if not isinstance(summary, Mapping):
        return [f"{key} is {_shown_value(summary)}, must be an object"]
    problems = []
    n = summary.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        problems.append(f"{key}.n is {_shown_value(n)}, must be a positive integer")
    if "mean" in summary:
        problems += _number_problems(f"{key}.mean", summary["mean"], positive=positive)
    quantiles = summary.get("quantiles")
    if not isinstance(quantiles, Mapping):
        return [*problems, f"{key}.quantiles is {_shown_value(quantiles)}, must be an object"]
    known, points, labelled = [], [], set()
    for label, value in quantiles.items():
        percent = _percent_of(label)
        if percent is None:
            problems.append(f"{key}.quantiles has the key {_shown_value(label)}, not a percentile like 'p50'")
        else:
            known.append((percent, label, value))
    for percent, label, value in sorted(known, key=lambda item: item[0]):
        labelled.add(percent)
        bad = _number_problems(f"{key}.quantiles.{label}", value, positive=positive)
        problems += bad
        if not bad:
            points.append((percent, label, float(value)))
    if 0.0 not in labelled:
        problems.append(f"{key}.quantiles.p0 is missing (the floor that is compared)")
    if len(labelled) < 2:
        problems.append(f"{key}.quantiles has {len(labelled)} percentile(s), needs at least two")
    for (_, low_label, low), (_, high_label, high) in itertools.pairwise(points):
        if high < low:
            problems.append(
                f"{key}.quantiles.{high_label} is {high:g}, below {low_label} ({low:g}): "
                "quantiles must not decrease with the percentile"
            )
    return problems


def validate_entry(entry: Any) -> list[str]:
    """Why a stored entry's numbers cannot be compared with, one line per bad field named by its
    dotted path (``host_probe_ms.quantiles.p0 is 0, must be > 0``); [] for a sound entry.

    Latency quantiles must be finite, >= 0 and non-decreasing in percentile order, with the floor
    (p0) among them and n a positive int; host-probe quantiles the same and > 0, since every
    comparison divides by the probe floor (a zero floor made any slowdown "host ran inf% slower");
    throughput finite and >= 0; the error statistics that drift warnings read finite and >= 0.
    """
    if not isinstance(entry, Mapping):
        return [f"the entry is {_shown_value(entry)}, must be an object"]
    problems = _summary_problems(entry, "latency_ms", positive=False)
    if "host_probe_ms" in entry:
        problems += _summary_problems(entry, "host_probe_ms", positive=True)
        kind = entry["host_probe_ms"].get("probe") if isinstance(entry["host_probe_ms"], Mapping) else None
        if kind is not None and not isinstance(kind, str):
            problems.append(f"host_probe_ms.probe is {_shown_value(kind)}, must be a string naming the probe")
    if "throughput_qps" in entry:
        problems += _number_problems("throughput_qps", entry["throughput_qps"], positive=False)
    for key in ("model", "software", "build", "accuracy"):
        if entry.get(key) is not None and not isinstance(entry[key], Mapping):
            problems.append(f"{key} is {_shown_value(entry[key])}, must be an object")
    accuracy = entry.get("accuracy")
    if isinstance(accuracy, Mapping):
        for output, stats in accuracy.items():
            if not isinstance(stats, Mapping):
                problems.append(f"accuracy.{output} is {_shown_value(stats)}, must be an object")
                continue
            for stat in DRIFT_STATS:
                if stat in stats:
                    problems += _number_problems(f"accuracy.{output}.{stat}", stats[stat], positive=False)
    return problems


def _sample_summary(samples_ms: Sequence[float]) -> dict[str, Any]:
    """n, mean and the BASELINE_POINTS quantiles of a sample: enough to rebuild it for the test."""
    samples = np.asarray(samples_ms, dtype=np.float64)
    quantiles = quantile_summary(samples, BASELINE_POINTS)
    return {
        "n": int(samples.size),
        "mean": _round(float(samples.mean())),
        "quantiles": {percentile_label(p): _round(v) for p, v in zip(BASELINE_POINTS, quantiles)},
    }


@dataclass
class WriteOutcome:
    """What ``BaselineStore.write`` did: files written, how many entries went into them, files
    replaced although unreadable (on request), problems (a file left alone, an OSError), each a
    line naming the file and the tests not recorded, and the nodeids of those tests."""

    written: list[Path] = field(default_factory=list)
    recorded: int = 0
    replaced: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_recorded: list[str] = field(default_factory=list)


def _tests_named(nodeids: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(sorted(nodeids)[:limit])
    return f"{len(nodeids)} test(s) not recorded ({shown}{', ...' if len(nodeids) > limit else ''})"


def _os_problem(exc: OSError, path: Path | None = None) -> str:
    """``Permission denied: /x/y``: the reason, and the path where it is not ``path`` itself."""
    reason = exc.strerror or str(exc)
    if exc.filename is None or (path is not None and str(exc.filename) == str(path)):
        return reason
    return f"{reason}: {exc.filename}"


@dataclass(frozen=True)
class BaselineInput:
    """What an entry is made from and compared with: the test's identity, what it ran, and its
    measurement and accuracy (``measure.PerfResult``, ``accuracy.AccuracyResult``)."""

    nodeid: str
    module: str  # test file relative to the rootdir, with forward slashes
    backend: str
    runtime_version: str
    model: ModelRef
    build: BuildFacts
    workload: Workload
    perf: Any = None
    accuracy: Any = None


class BaselineStore:
    """Baselines of one hardware class under ``root``."""

    def __init__(self, root: Path, hardware: str, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> None:
        if not hardware or _slug(hardware) != hardware:
            raise ValueError(f"hardware must be a hardware_class() name, got {hardware!r}")
        self.lock_timeout_s = lock_timeout_s
        self.root = Path(root)
        self.hardware = hardware
        self.folder = self.root / hardware
        self.private = self.root / PRIVATE_DIR
        self._parsed: dict[Path, dict[str, Any]] = {}
        self._staged: dict[str, dict[str, dict[str, Any]]] = {}

    def path_for(self, module: str) -> Path:
        return self.folder / module_file_name(module)

    def _path_or_none(self, module: str) -> Path | None:
        try:
            return self.path_for(module)
        except ValueError:
            return None

    def _load(self, path: Path) -> dict[str, Any] | None:
        """The parsed file, or None where there is none. A file that is not this store's to
        compare with (unreadable, another hardware class's, another module's) raises
        BaselineFileError."""
        if path not in self._parsed:
            if not path.is_file():
                if path.exists():
                    raise BaselineFileError(f"baseline file {path}: not a regular file")
                return None
            data = _parse(path)
            recorded_on = data.get("hardware")
            if recorded_on != self.hardware:
                raise BaselineFileError(
                    f"baseline file {path}: recorded on hardware {recorded_on!r}, but it lies in the folder "
                    f"of {self.hardware!r}, this machine's hardware class"
                )
            module = data.get("module")
            if not isinstance(module, str) or self._path_or_none(module) != path:
                raise BaselineFileError(f"baseline file {path}: its 'module' {module!r} does not match the file name")
            self._parsed[path] = data
        return self._parsed[path]

    def lookup(self, module: str, nodeid: str) -> dict[str, Any] | None:
        """The stored entry of ``nodeid``, or None. Raises BaselineFileError for a file that
        cannot be compared with, and BaselineEntryError for an entry whose numbers are invalid
        (``validate_entry``)."""
        path = self.path_for(module)
        data = self._load(path)
        entry = None if data is None else data["tests"].get(nodeid)
        if entry is None:
            return None
        problems = validate_entry(entry)
        if problems:
            more = f"; and {len(problems) - _SHOWN_PROBLEMS} more" if len(problems) > _SHOWN_PROBLEMS else ""
            shown = "; ".join(problems[:_SHOWN_PROBLEMS])
            raise BaselineEntryError(f"baseline file {path}: entry {nodeid!r}: {shown}{more}")
        return entry

    @staticmethod
    def entry_from_record(
        record: BaselineInput, commit: str | None, software: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """What is stored for one test. ``software`` adds facts the record lacks (driver, CUDA)."""
        perf = record.perf
        if perf is None or not perf.samples_ms:
            raise ValueError(f"{record.nodeid}: no latency sample to record as a baseline")
        probe = {"host_probe_ms": {**_sample_summary(perf.probe_ms), "probe": host_probe.KIND}} if perf.probe_ms else {}
        accuracy: dict[str, dict[str, float]] = {}
        for output in getattr(record.accuracy, "outputs", None) or []:
            numbers = {k: _round(float(v)) for k, v in output.stats.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)}
            accuracy[output.name] = numbers
        return plain({
            "latency_ms": _sample_summary(perf.samples_ms),
            **probe,
            "throughput_qps": _round(perf.throughput),
            "accuracy": accuracy,
            "software": {"backend": record.backend, "runtime": record.runtime_version, **(software or {})},
            "model": {"file": Path(record.model.path).name, "content_hash": record.model.content_hash},
            "build": to_data(record.build),
            "workload": workload_of(record),
            "recorded_at": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            "commit": commit,
        })

    def stage(self, module: str, nodeid: str, entry: Mapping[str, Any]) -> None:
        """Queue ``entry`` for the next ``write``; a later stage of the same test replaces it."""
        module_file_name(module)  # validate now, not at session end
        self._staged.setdefault(module, {})[nodeid] = plain(entry)

    @property
    def staged(self) -> dict[str, dict[str, dict[str, Any]]]:
        """module -> nodeid -> entry not yet written (what an xdist worker ships to the controller)."""
        return {m: dict(e) for m, e in self._staged.items()}

    # ---- writing ---------------------------------------------------------------------------------

    @property
    def lock_path(self) -> Path:
        return self.private / LOCK_NAME

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store's one lock, kept in its private folder (made here, with a
        ``.gitignore`` that keeps the folder out of git). A link in place of the folder or the
        lock is refused: the lock's open would follow it elsewhere. Problems setting the lock up
        raise BaselineFileError naming the path."""
        if self.root.exists() and not self.root.is_dir():
            raise BaselineFileError(f"baseline folder {self.root} is a file, not a folder (--trt-baseline-dir)")
        for path in (self.private, self.lock_path):
            if path.is_symlink():
                raise BaselineFileError(f"baseline store {self.root}: {path} is a symbolic link; remove it")
        ignore = self.private / ".gitignore"
        try:
            self.private.mkdir(parents=True, exist_ok=True)
            if not ignore.is_file():
                write_atomic(ignore, _GITIGNORE, temp_dir=self.private)
        except OSError as exc:
            raise BaselineFileError(
                f"baseline store {self.root}: cannot write its folder {self.private} ({_os_problem(exc)})"
            ) from None
        lock = FileLock(str(self.lock_path))
        owner_path = self.lock_path.with_name(LOCK_NAME + ".owner")
        try:
            lock.acquire(timeout=self.lock_timeout_s)
        except Timeout:
            holder = read_owner_file(owner_path)
            held = f", held by {holder.describe()}" if holder is not None else ""
            raise BaselineFileError(
                f"baseline store {self.root}: gave up after {self.lock_timeout_s:g} s waiting for its lock "
                f"{self.lock_path}{held}; raise --trt-lock-timeout (ini trt_lock_timeout) or stop that process"
            ) from None
        except OSError as exc:
            raise BaselineFileError(
                f"baseline store {self.root}: cannot take its lock {self.lock_path} ({_os_problem(exc)})"
            ) from None
        try:
            with contextlib.suppress(OSError):  # the holder record is advice for people only
                write_owner_file(owner_path, ProcessOwner.current())
            yield
        finally:
            with contextlib.suppress(OSError):
                owner_path.unlink()
            lock.release()

    def remove_stale_temps(self) -> list[Path]:
        """Remove temp files of writers that died (kill -9) from the private folder."""
        return remove_stale_temps(self.private) if self.private.is_dir() else []

    def _merge(self, path: Path, module: str, entries: Mapping[str, Any], replace_unreadable: bool) -> str | None:
        """Under the lock: merge ``entries`` into ``path``. Returns the reason the file was
        replaced (None if it was readable); raises BaselineFileError for a file left alone."""
        self._parsed.pop(path, None)  # another writer may have merged since we read it
        replaced = None
        try:
            current = self._load(path)
        except BaselineFileError as exc:
            if not replace_unreadable:
                raise
            current, replaced = None, str(exc)
        tests = dict(current["tests"]) if current else {}
        tests.update(entries)
        data = {"schema": SCHEMA, "hardware": self.hardware, "module": module, "tests": tests}
        write_atomic(path, _dumps(data), temp_dir=self.private)
        self._parsed[path] = plain(data)
        return replaced

    def write(self, *, replace_unreadable: bool = False) -> WriteOutcome:
        """Merge staged entries into their files; the staged entries are consumed.

        A file that cannot be read (``_load``) is left as it is and its staged entries are not
        recorded, unless ``replace_unreadable``: then it is replaced by the staged entries alone,
        since its own cannot be read. An OSError on one file does not stop the others.
        """
        outcome = WriteOutcome()
        staged, self._staged = self._staged, {}
        handled: set[str] = set()
        if not staged:
            return outcome
        try:
            with self._locked():
                self.remove_stale_temps()
                for module in sorted(staged):
                    handled.add(module)
                    path, entries = self.path_for(module), staged[module]
                    try:
                        replaced = self._merge(path, module, entries, replace_unreadable)
                    except BaselineFileError as exc:
                        outcome.problems.append(
                            f"{exc}; left as it is, {_tests_named(list(entries))}: fix or remove it, or pass "
                            f"{REPLACE_OPTION} to replace it with this run's entries"
                        )
                        outcome.not_recorded += sorted(entries)
                        continue
                    except OSError as exc:
                        outcome.problems.append(
                            f"baseline file {path}: cannot be written ({_os_problem(exc, path)}); "
                            f"{_tests_named(list(entries))}"
                        )
                        outcome.not_recorded += sorted(entries)
                        continue
                    outcome.written.append(path)
                    outcome.recorded += len(entries)
                    if replaced is not None:
                        outcome.replaced.append(
                            f"{replaced}; replaced ({REPLACE_OPTION}) by this run's {len(entries)} entr"
                            f"{'y' if len(entries) == 1 else 'ies'}"
                        )
        except BaselineFileError as exc:
            reason = str(exc)
            pending = sorted(nodeid for module in staged if module not in handled for nodeid in staged[module])
            outcome.problems.append(f"{reason}; {_tests_named(pending)}" if pending else reason)
            outcome.not_recorded += pending
        return outcome

    def known(self) -> dict[str, set[str]]:
        """module -> nodeids stored for this hardware class. Raises BaselineFileError for a file
        in the folder that cannot be read."""
        found: dict[str, set[str]] = {}
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("*.json")):
            data = self._load(path)
            if data is None:  # removed since the glob
                continue
            found[data["module"]] = set(data["tests"])
        return found

    def unused(self, used: Mapping[str, set[str]]) -> dict[str, set[str]]:
        """Stored baselines no test uses any more, among the modules in ``used``.

        ``used`` maps each module this run collected (before ``-k``/``-m`` deselection) to the
        nodeids in it that still measure latency; modules the run did not collect are not judged,
        so a partial run never flags the baselines of tests it did not look at. A file that cannot
        be read is not judged either (its tests report it).
        """
        found = {}
        for module, ids in used.items():
            try:
                data = self._load(self.path_for(module))
            except (BaselineFileError, ValueError):
                continue
            gone = set(data["tests"]) - set(ids) if data is not None else set()
            if gone:
                found[module] = gone
        return found

    def prune(self, unused: Mapping[str, set[str]]) -> int:
        """Remove the given entries; a file left empty is deleted. Returns how many were removed.
        Raises BaselineFileError (a file that cannot be read is not touched) or OSError."""
        removed = 0
        with self._locked():
            self.remove_stale_temps()
            for module in sorted(unused):
                path = self.path_for(module)
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
                    write_atomic(path, _dumps(data), temp_dir=self.private)
                    self._parsed[path] = data
        return removed


def workload_of(record: BaselineInput) -> dict[str, Any]:
    """The record's workload plus how it was timed: both decide whether numbers are comparable."""
    workload = to_data(record.workload)
    perf = record.perf
    if perf is not None:
        workload.update(clock=perf.clock, mode=dict(perf.mode), batch=workload.get("batch", perf.batch))
    workload["backend"] = record.backend
    return plain(workload)


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
    on_gpu: bool, fingerprint: Mapping[str, Any], *, older_scheme: bool = False
) -> tuple[str, dict[str, str]]:
    """(hardware class, software facts) for a run, from ``fingerprint.machine_fingerprint()``
    (``older_scheme``: the class under the older naming, see ``hardware_class``).

    A GPU backend's timings belong to the GPU; a CPU backend's to the CPU, even on a GPU host
    (``on_gpu``: the running backend is registered as a GPU backend).
    """
    gpu = fingerprint.get("gpu")
    if on_gpu and gpu:
        software = {"driver": gpu.get("driver_version"), "cuda": gpu.get("cuda_runtime_version")}
        return hardware_class(gpu, older_scheme=older_scheme), {k: str(v) for k, v in software.items() if v}
    return hardware_class(fingerprint, older_scheme=older_scheme), {}


@dataclass
class SessionEnd:
    """What the session end did with the baselines: ``lines`` for the terminal summary,
    ``errors``, each a problem that fails the session (a file left alone, a write that failed),
    and the nodeids whose staged baseline was not written because of them."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_recorded: set[str] = field(default_factory=set)


def finish_session(
    store: BaselineStore,
    *,
    staged: Mapping[str, Mapping[str, Mapping[str, Any]]],
    used: Mapping[str, set[str]],
    update: bool,
    prune: bool,
    replace_unreadable: bool = False,
) -> SessionEnd:
    """Controller side, once per session: remove temp files of dead writers, write the entries
    staged here and by xdist workers (``staged``: module -> nodeid -> entry), then list or prune
    baselines no test uses. Problems come back as lines naming the file, never as an exception
    out of the summary."""
    end = SessionEnd()
    store.remove_stale_temps()
    for module, entries in staged.items():
        for nodeid, entry in entries.items():
            store.stage(module, nodeid, entry)
    if update and store.staged:
        outcome = store.write(replace_unreadable=replace_unreadable)
        if outcome.written:
            end.lines.append(
                f"baselines recorded for {outcome.recorded} test(s) in {len(outcome.written)} file(s) "
                f"under {store.folder}"
            )
        end.lines += [f"baselines: {line}" for line in outcome.replaced]
        end.errors += [f"baselines: {line}" for line in outcome.problems]
        end.not_recorded.update(outcome.not_recorded)
    unused = store.unused(used)
    if unused and prune:
        try:
            end.lines.append(f"baselines pruned: {store.prune(unused)} unused")
        except BaselineFileError as exc:
            end.errors.append(f"baselines: not pruned: {exc}")
        except OSError as exc:
            end.errors.append(f"baselines: not pruned: {store.root}: {_os_problem(exc)}")
    elif unused:
        end.lines.append("unused baselines (their tests are gone or no longer measured; remove with --trt-prune-baselines):")
        end.lines += [f"  {nodeid}" for module in sorted(unused) for nodeid in sorted(unused[module])]
    return end
