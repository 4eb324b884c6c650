"""The ``baselines/`` store: one small, sorted JSON file per test module under a folder per
hardware class, meant to be committed so that a pull request's diff shows which tests moved.

Layout: ``<root>/<hardware class>/<module path, "/" -> "__", ".py" dropped>.json`` holding
``{"schema": 1, "hardware": ..., "module": ..., "tests": {nodeid: entry}}``; an entry is a
``BaselineEntry`` in its file form (entry.py).

What the store promises (docs/reliability.md lists the tests of each):

* Writes merge into what is on disk (other tests' entries are never touched), go through a temp
  file and ``os.replace`` (no half files), and are serialized by one lock per store.
* The lock and the temp files live in ``<root>/.pytest-trt/``, whose own ``.gitignore`` keeps
  them out of ``git add baselines/``; a temp file whose writer died is removed by a later run.
* A file that cannot be read (not JSON, wrong shape, newer schema, another hardware class's) is
  never compared with and never overwritten, unless the user asks for it to be replaced.
* Every number of an entry is checked (``validation.read_entry``) before a comparison reads it.
"""

from __future__ import annotations

import contextlib
import json
import stat
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_trt.baselines.entry import BaselineEntry
from pytest_trt.baselines.hardware import module_file_name, slug
from pytest_trt.baselines.history import DEFAULT_LIMIT, HistoryPoint
from pytest_trt.baselines.validation import read_entry, validate_entry
from pytest_trt.errors import BaselineFileError, BaselineLockTimeout
from pytest_trt.serde import SerdeError
from pytest_trt.store.files import remove_stale_temps, write_atomic
from pytest_trt.store.locks import NOTICE_S, acquire_noticing
from pytest_trt.store.owners import ProcessOwner, read_owner_file, write_owner_file
from pytest_trt.store.regular_files import describe_mode

SCHEMA = 1

# The store's own folder under its root: the lock and temp files, never committed.
PRIVATE_DIR = ".pytest-trt"
LOCK_NAME = "lock"
DEFAULT_LOCK_TIMEOUT_S = 600.0  # --trt-lock-timeout's default: the store is held for a write only
_GITIGNORE = "# Lock and temp files of pytest-trt's baseline store: never committed.\n*\n"

REPLACE_OPTION = "--trt-replace-unreadable-baselines"
NOT_COMPARED = (
    f"not compared: fix, move or remove the file, or replace it with --trt-update-baselines {REPLACE_OPTION}"
)


def _file_text(data: Mapping[str, Any]) -> str:
    """A baseline file's text: sorted keys, one space of indent, a final newline, and each history
    point on a line of its own, so a recording adds one line to a diff. ``data`` is JSON data
    already (entries in their file form, other tests' entries as they were read)."""
    lines: dict[str, str] = {}

    def one_line(point: Any) -> Any:
        if not isinstance(point, dict):
            return point
        token = f"\0{len(lines)}"  # a string no JSON value of ours holds; replaced below
        lines[json.dumps(token)] = json.dumps(point, sort_keys=True)
        return token

    tests = {
        nodeid: {**entry, "history": [one_line(p) for p in entry["history"]]}
        if isinstance(entry, dict) and isinstance(entry.get("history"), list) else entry
        for nodeid, entry in data["tests"].items()
    }
    text = json.dumps({**data, "tests": tests}, sort_keys=True, indent=1)
    for token, line in lines.items():
        text = text.replace(token, line, 1)
    return text + "\n"


def _earlier_points(stored: Any) -> list[HistoryPoint]:
    """The recordings an entry on disk holds (its history and its own), for the next recording
    of its test; none from an entry that cannot be read (the new one replaces it)."""
    if not isinstance(stored, dict) or validate_entry(stored):
        return []
    try:
        return BaselineEntry.from_file(stored).series()
    except SerdeError:
        return []


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
    if schema < 1:
        raise BaselineFileError(
            f"baseline file {path}: schema {schema} is not one pytest-trt writes (1 to {SCHEMA}); the file was edited"
        )
    if schema > SCHEMA:
        raise BaselineFileError(
            f"baseline file {path}: schema {schema} is newer than this pytest-trt reads ({SCHEMA}); upgrade pytest-trt"
        )
    bad = [nodeid for nodeid, entry in data["tests"].items() if not isinstance(entry, dict)]
    if bad:
        raise BaselineFileError(f"baseline file {path}: entry for {bad[0]!r} is not an object")
    return data



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


def os_problem(exc: OSError, path: Path | None = None) -> str:
    """``Permission denied: /x/y``: the reason, and the path where it is not ``path`` itself."""
    reason = exc.strerror or str(exc)
    if exc.filename is None or (path is not None and str(exc.filename) == str(path)):
        return reason
    return f"{reason}: {exc.filename}"



def _to_stderr(line: str) -> None:
    print(f"pytest-trt: {line}", file=sys.stderr, flush=True)


class BaselineStore:
    """Baselines of one hardware class under ``root``."""

    def __init__(
        self,
        root: Path,
        hardware: str,
        *,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
        notify: Callable[[str], None] | None = None,
        history_limit: int = DEFAULT_LIMIT,
    ) -> None:
        """``notify`` hears, after a few seconds of waiting for the store's lock, who holds it
        (default: a line on stderr); ``history_limit`` is how many recordings an entry's history
        keeps, the latest included (--trt-baseline-history)."""
        if history_limit < 1:
            raise ValueError(f"history_limit must be at least 1, got {history_limit!r}")
        self.history_limit = history_limit
        if not hardware or slug(hardware) != hardware:
            raise ValueError(f"hardware must be a hardware_class() name, got {hardware!r}")
        self.lock_timeout_s = lock_timeout_s
        self._notify = notify if notify is not None else _to_stderr
        self.root = Path(root)
        self.hardware = hardware
        self.folder = self.root / hardware
        self.private = self.root / PRIVATE_DIR
        self._parsed: dict[Path, dict[str, Any]] = {}
        self._staged: dict[str, dict[str, BaselineEntry]] = {}

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
            try:
                mode = path.stat().st_mode  # a link to a file is read as before; writes refuse it
            except FileNotFoundError:
                return None
            except OSError as exc:  # a folder on the way that cannot be searched, a name too long
                raise BaselineFileError(f"baseline file {path}: cannot be read ({os_problem(exc, path)})") from None
            if not stat.S_ISREG(mode):
                raise BaselineFileError(f"baseline file {path}: not a regular file but {describe_mode(mode)}")
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

    def lookup(self, module: str, nodeid: str) -> BaselineEntry | None:
        """The stored entry of ``nodeid``, or None. Raises BaselineFileError for a file that
        cannot be compared with, and BaselineEntryError for an entry whose values are invalid
        (``validation.read_entry``)."""
        path = self.path_for(module)
        data = self._load(path)
        entry = None if data is None else data["tests"].get(nodeid)
        return None if entry is None else read_entry(entry, path, nodeid)

    def earlier(self, module: str, nodeid: str) -> list[HistoryPoint]:
        """The recordings stored for ``nodeid`` (its history and the entry's own), oldest first;
        none where there is no entry or it cannot be read (a new recording replaces it)."""
        try:
            data = self._load(self.path_for(module))
        except (BaselineFileError, ValueError):
            return []
        return [] if data is None else _earlier_points(data["tests"].get(nodeid))

    def stage(self, module: str, nodeid: str, entry: BaselineEntry) -> None:
        """Queue ``entry`` for the next ``write``; a later stage of the same test replaces it."""
        module_file_name(module)  # validate now, not at session end
        self._staged.setdefault(module, {})[nodeid] = entry

    @property
    def staged(self) -> dict[str, dict[str, BaselineEntry]]:
        """module -> nodeid -> entry not yet written (what an xdist worker ships to the controller)."""
        return {m: dict(e) for m, e in self._staged.items()}

    # ---- writing ---------------------------------------------------------------------------------

    @property
    def lock_path(self) -> Path:
        return self.private / LOCK_NAME

    def _prepare_private(self) -> None:
        """The private folder and its ``.gitignore``, made if needed; BaselineFileError for a root
        that is a file or cannot be searched, a link in place of the folder or the lock, or a
        folder that cannot be written."""
        try:
            if self.root.exists() and not self.root.is_dir():
                raise BaselineFileError(f"baseline folder {self.root} is a file, not a folder (--trt-baseline-dir)")
            for path in (self.private, self.lock_path):
                if path.is_symlink():
                    raise BaselineFileError(f"baseline store {self.root}: {path} is a symbolic link; remove it")
        except OSError as exc:
            raise BaselineFileError(f"baseline store {self.root}: cannot be searched ({os_problem(exc)})") from None
        ignore = self.private / ".gitignore"
        try:
            self.private.mkdir(parents=True, exist_ok=True)
            if not ignore.is_file():
                write_atomic(ignore, _GITIGNORE, temp_dir=self.private)
        except OSError as exc:
            raise BaselineFileError(
                f"baseline store {self.root}: cannot write its folder {self.private} ({os_problem(exc)})"
            ) from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store's one lock, kept in its private folder (made here, with a
        ``.gitignore`` that keeps the folder out of git). A link in place of the folder or the
        lock is refused: the lock's open would follow it elsewhere. Problems setting the lock up
        raise BaselineFileError naming the path."""
        self._prepare_private()
        lock = FileLock(str(self.lock_path))
        owner_path = self.lock_path.with_name(LOCK_NAME + ".owner")

        def held() -> str:
            holder = read_owner_file(owner_path)
            return f", held by {holder.describe()}" if holder is not None else ""

        def notice() -> None:
            self._notify(f"waiting for the baseline store's lock {self.lock_path}{held()}; giving up after "
                         f"{self.lock_timeout_s:g} s (--trt-lock-timeout)")

        try:
            taken = acquire_noticing(lock, self.lock_timeout_s, NOTICE_S, notice)
        except OSError as exc:
            raise BaselineFileError(
                f"baseline store {self.root}: cannot take its lock {self.lock_path} ({os_problem(exc)})"
            ) from None
        if not taken:
            raise BaselineLockTimeout(
                f"baseline store {self.root}: gave up after {self.lock_timeout_s:g} s waiting for its lock "
                f"{self.lock_path}{held()}; raise --trt-lock-timeout (ini trt_lock_timeout) or stop that process"
            )
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
        try:
            return remove_stale_temps(self.private) if self.private.is_dir() else []
        except OSError:  # a root that cannot be searched: its write reports it
            return []

    def _merge(
        self, path: Path, module: str, entries: Mapping[str, BaselineEntry], replace_unreadable: bool
    ) -> str | None:
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
        # The recordings on disk join the new entry's history: a writer that merged since this
        # process read the file (another xdist controller, another CI job) loses none of them.
        tests.update(
            (nodeid, entry.with_history(_earlier_points(tests.get(nodeid)), self.history_limit).to_file())
            for nodeid, entry in entries.items()
        )
        data = {"schema": SCHEMA, "hardware": self.hardware, "module": module, "tests": tests}
        write_atomic(path, _file_text(data), temp_dir=self.private)
        self._parsed[path] = data
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
                            f"baseline file {path}: cannot be written ({os_problem(exc, path)}); "
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
                    write_atomic(path, _file_text(data), temp_dir=self.private)
                    self._parsed[path] = data
        return removed
