"""Content-addressed artifact store shared by every backend: engines, timing caches, optimized
models, reference outputs.

Layout under the root::

    PYTEST_TRT_CACHE                      the marker: this folder is a cache pytest-trt made
    <kind>/<key[:2]>/<key>/artifact.bin   the bytes, exactly as built
    <kind>/<key[:2]>/<key>/record.json    what went into the key, sizes, sha256, times
    locks/<key>.lock                      one cross-process lock per key
    locks/<key>.owner                     who holds it (pid, host, since when)
    work/<pid>-<random>/                  one process's scratch files (see workdirs.py)

An entry appears in one ``os.replace`` of a finished temporary folder, so a reader sees a whole
entry or none; a writer killed half way leaves only a ``.tmp-<key>-*`` folder that nothing loads
and the next user of that key removes. Every read and write of an entry happens under its key's
file lock (OS locks, released by the kernel when the holder dies), so N processes asking for one
missing artifact build it once. A damaged entry is reported, removed and rebuilt, never served;
only regular files are read, never through a link, never more bytes than the record says.

The cache deletes only what it can show it wrote: nothing outside a folder holding its marker
(a new or empty folder gets one; a non-empty folder without one is refused), nothing reached
through a symbolic link, no entry whose folder holds a name the cache does not write, and in
``clear`` and eviction no entry whose record is not the cache's own for that path.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from filelock import FileLock, Timeout

from pytest_trt.errors import CacheError, CorruptEntry
from pytest_trt.store import workdirs
from pytest_trt.store.files import write_atomic
from pytest_trt.store.owners import Liveness, ProcessOwner, read_owner_file, write_owner_file
from pytest_trt.store.regular_files import FileTooLarge, NotRegularFile, describe_mode, read_regular_file
from pytest_trt.types import Artifact

# Bump whenever the layout or record format changes: old entries then simply stop matching.
SCHEMA_VERSION = 1

ARTIFACT_FILE = "artifact.bin"
RECORD_FILE = "record.json"
MARKER_FILE = "PYTEST_TRT_CACHE"
LOCKS_DIR = "locks"
WORK_DIR = "work"
_MARKER_FORMAT = "pytest-trt engine cache"
_MARKER_VERSION = 1
_TMP_PREFIX = ".tmp-"
_KIND = re.compile(r"[a-z0-9][a-z0-9_-]*")
_RESERVED_KINDS = (LOCKS_DIR, WORK_DIR)
_KEY = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")
# Every name the cache writes inside an entry folder (or its temp folders): anything else in one
# means the folder is not only ours, and it is left alone.
_OWN_ENTRY_NAMES = re.compile(rf"{re.escape(ARTIFACT_FILE)}|{re.escape(RECORD_FILE)}|\.{re.escape(RECORD_FILE)}\..+\.tmp")
_OWN_TMP_FOLDER = re.compile(rf"{re.escape(_TMP_PREFIX)}([0-9a-f]{{64}})-.+")
# write_atomic's temp file for the marker: two processes marking one new folder at once see it.
_MARKER_TEMP = re.compile(rf"\.{MARKER_FILE}\..+\.tmp")
_RECORD_FIELDS = {"key": str, "kind": str, "size_bytes": int, "sha256": str}
_MAX_RECORD_BYTES = 16 * 1024 * 1024
_RECORD_LIMIT = "16 MiB, far more than any record the cache writes"
_MAX_MARKER_BYTES = 64 * 1024

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")


class CacheWarning(UserWarning):
    """A cache problem that does not fail the test: a corrupt entry, an unwritable directory."""


class CacheMode(Enum):
    OFF = "off"  # no root, or it could not be used: build, keep nothing
    READ_WRITE = "read-write"
    READ_ONLY = "read-only"  # serve entries, store nothing (a cache mounted read-only in CI)


class _Access(Enum):
    """What one operation may do with one key's entry."""

    NONE = "none"  # build, neither read nor store
    READ = "read"  # read without the lock (read-only cache), never write
    LOCKED = "locked"  # read and write, under the key's lock


_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?)b?\s*", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``123``, ``500MB``/``500M`` (powers of 1000), ``2GiB``/``2Gi`` (of 1024)."""
    match = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise CacheError(
            f"--trt-cache-max-size: cannot read {text!r} as a size; give bytes or a number with "
            "K, M, G or T (powers of 1000) or KiB, MiB, GiB or TiB (powers of 1024), e.g. 2GB or 500MiB"
        )
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    if binary and not unit:
        raise CacheError(f"--trt-cache-max-size: {text!r} has 'i' without a unit (K, M, G or T)")
    return int(float(number) * base ** _SIZE_POWERS[unit.lower()])


class CacheOutcome(str, Enum):
    """How one artifact was obtained."""

    HIT = "hit"
    MISS = "miss"
    REBUILT = "rebuilt"  # the entry was damaged
    REPLACED = "replaced"  # --trt-rebuild
    UNCACHED = "uncached"  # no persistent cache

    def __str__(self) -> str:
        return self.value

    @property
    def built(self) -> bool:
        return self is not CacheOutcome.HIT


@dataclass
class CacheEvent:
    """How one artifact was obtained. ``build_s`` is time spent building in this call;
    ``saved_s`` is, for a hit, the recorded build time minus the load time."""

    kind: str
    key: str
    outcome: CacheOutcome
    build_s: float = 0.0
    load_s: float = 0.0
    size_bytes: int = 0
    saved_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome.value}


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


@dataclass
class CacheStats:
    """Counters for the terminal summary. ``CacheStats(**other.as_dict())`` round-trips, so xdist
    workers can send theirs to the controller, which sums them with ``add``."""

    root: str | None = None
    hits: int = 0
    misses: int = 0
    builds: int = 0
    build_s: float = 0.0
    load_s: float = 0.0
    saved_s: float = 0.0
    corrupt: int = 0
    evicted: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: CacheStats) -> None:
        for counter in fields(self):
            if counter.name != "root":
                setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))

    def summary_line(self) -> str:
        builds = f"{_plural(self.builds, 'build')}, {self.build_s:.2f} s"
        if self.root is None:
            return f"engine cache off (artifacts kept for this session only): {builds}"
        line = (
            f"engine cache {self.root}: {_plural(self.hits, 'hit')}, "
            f"{_plural(self.misses, 'miss', 'misses')} ({builds}), {self.corrupt} corrupt"
        )
        if self.evicted:
            line += f", {self.evicted} evicted"
        return line + f"; saved ~{self.saved_s:.1f} s"


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Arrays as .npz bytes, for caching reference outputs without pickle."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(a) for name, a in arrays.items()})
    return buffer.getvalue()


def decode_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of ``encode_arrays``; refuses pickled (object) arrays."""
    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _canonical_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CacheError(f"{what} must be plain JSON data (dict, list, str, number, bool, None): {exc}") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _record_time(record: Mapping[str, Any] | None, name: str) -> float:
    """Epoch seconds of an ISO time in an entry's record; 0 (oldest) when missing or unreadable."""
    try:
        return datetime.fromisoformat(record[name]).timestamp() if record is not None else 0.0
    except (ValueError, TypeError, KeyError):
        return 0.0


def _is_real_dir(path: Path) -> bool:
    """A folder itself, not a symbolic link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _read_entry_file(path: Path, max_bytes: int, limit: str) -> bytes:
    """One file of an entry; anything but a regular file of at most ``max_bytes`` (``limit`` says
    where that number comes from) is corrupt."""
    try:
        return read_regular_file(path, max_bytes)
    except FileNotFoundError:
        raise CorruptEntry(f"{path.name} is missing") from None
    except NotRegularFile as exc:
        raise CorruptEntry(f"{path.name} is not a regular file but {exc.strerror}") from None
    except FileTooLarge:
        raise CorruptEntry(f"{path.name} is larger than {limit}") from None
    except OSError as exc:
        raise CorruptEntry(f"{path.name} cannot be read: {exc}") from None


def _parse_record(raw: bytes) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise CorruptEntry(f"{RECORD_FILE} is not valid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise CorruptEntry(f"{RECORD_FILE} is not a JSON object")
    for name, kind_of in _RECORD_FIELDS.items():
        if not isinstance(record.get(name), kind_of):
            raise CorruptEntry(f"{RECORD_FILE} has no valid {name!r}")
    if record["size_bytes"] < 0:
        raise CorruptEntry(f"{RECORD_FILE} has a negative 'size_bytes'")
    return record


def _own_record(entry: Path, kind: str, key: str) -> dict[str, Any] | None:
    """The entry's record if it is the cache's own record for this path, else None."""
    try:
        record = _parse_record(_read_entry_file(entry / RECORD_FILE, _MAX_RECORD_BYTES, _RECORD_LIMIT))
    except CorruptEntry:
        return None
    return record if record["key"] == key and record["kind"] == kind else None


def _remove_own_files(folder: Path) -> bool:
    """Unlink the names the cache writes in an entry or temp folder (unlink never follows a link),
    then the folder itself; False when something else keeps it (or it is a link)."""
    if not _is_real_dir(folder):
        return False
    try:
        with os.scandir(folder) as children:
            names = [child.name for child in children]
    except OSError:
        return False
    for name in names:
        if _OWN_ENTRY_NAMES.fullmatch(name):
            with suppress(OSError):  # a folder named like our file stays, and so does its parent
                os.unlink(folder / name)
    try:
        os.rmdir(folder)
    except OSError:
        return False
    return True


def _removal_refusal(entry: Path) -> str | None:
    """Why the cache may not remove the folder at an entry's path (a link, a file, a folder holding
    names it does not write), or None. FileNotFoundError when there is nothing."""
    mode = os.lstat(entry).st_mode
    if not stat.S_ISDIR(mode):
        return describe_mode(mode) if stat.S_ISLNK(mode) else "not a folder"
    foreign = sorted(name for name in os.listdir(entry) if not _OWN_ENTRY_NAMES.fullmatch(name))
    if foreign:
        return f"a folder holding files the cache did not write ({', '.join(foreign[:3])})"
    return None


def _marker_bytes() -> bytes:
    marker = {
        "format": _MARKER_FORMAT,
        "marker_version": _MARKER_VERSION,
        "created": _now(),
        "about": "pytest-trt engine cache. pytest-trt deletes files only in folders holding this "
                 "marker, and there only what it wrote.",
    }
    return (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode()


def _marker_problem(root: Path) -> str | None:
    """Why ``root`` does not carry a valid marker, or None when it does."""
    try:
        marker = json.loads(read_regular_file(root / MARKER_FILE, _MAX_MARKER_BYTES))
    except FileNotFoundError:
        return f"it has no {MARKER_FILE} marker file"
    except NotRegularFile as exc:
        return f"its {MARKER_FILE} is {exc.strerror}, not a marker file"
    except (OSError, ValueError) as exc:
        return f"its {MARKER_FILE} marker cannot be read ({exc})"
    if not isinstance(marker, dict) or marker.get("format") != _MARKER_FORMAT:
        return f"its {MARKER_FILE} file is not a pytest-trt cache marker"
    return None


def _claim_root(root: Path) -> None:
    """Make sure ``root`` is a cache folder pytest-trt made: mark a new or empty folder, accept a
    marked one, refuse anything else with CacheError. OSError: it cannot be made or marked."""
    root.mkdir(parents=True, exist_ok=True)
    names = os.listdir(root)
    if MARKER_FILE in names:
        problem = _marker_problem(root)
        if problem is not None:
            raise CacheError(
                f"the engine cache folder {root} cannot be used: {problem}, so pytest-trt cannot "
                "tell that it made this folder, and will neither store nor delete anything there. "
                "Delete the folder to start a new cache in it, or point --trt-engine-cache at "
                "another folder"
            )
        return
    if all(_MARKER_TEMP.fullmatch(name) for name in names):  # empty, or another process marking it
        write_atomic(root / MARKER_FILE, _marker_bytes())
        return
    older = (
        " It looks like a cache made by an older pytest-trt, before caches carried the marker."
        if (root / LOCKS_DIR).is_dir() else ""
    )
    raise CacheError(
        f"the engine cache folder {root} is not empty and has no {MARKER_FILE} marker, so "
        f"pytest-trt cannot tell files it wrote from files it did not, and will neither store nor "
        f"delete anything there.{older} Delete the folder (or empty it) to start a new cache in "
        "it, or point --trt-engine-cache (trt_engine_cache_dir, PYTEST_TRT_ENGINE_CACHE) at a "
        "new or empty folder"
    )


def _print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _default_warn(message: str) -> None:
    try:
        warnings.warn(message, CacheWarning, stacklevel=3)
    except CacheWarning:
        # Warnings made errors (-W error, filterwarnings=error) must not fail a test the cache
        # has already recovered from; say it on stderr instead.
        print(f"CacheWarning: {message}", file=sys.stderr)


class EngineCache:
    """The persistent artifact store. ``root=None`` keeps nothing on disk (``get_or_build`` just
    builds; once-per-session reuse is the caller's in-memory memo).

    ``session_start`` (epoch seconds) marks what this run made or used: entries touched since then
    are never evicted and, under ``rebuild``, count as already rebuilt. pytest-xdist workers should
    receive the controller's value so that one worker's rebuild serves the others.

    A key's lock held by another process is waited for up to ``lock_timeout_s``; after
    ``lock_notice_s`` of waiting, ``notify`` is told who holds it. Raises CacheError when ``root``
    is a non-empty folder without the cache's marker (see ``_claim_root``).
    """

    def __init__(
        self,
        root: Path | None,
        *,
        rebuild: bool = False,
        max_size_bytes: int | None = None,
        warn: Callable[[str], None] | None = None,
        notify: Callable[[str], None] | None = None,
        lock_timeout_s: float = 600.0,
        lock_notice_s: float = 5.0,
        session_start: float | None = None,
    ) -> None:
        self.rebuild = rebuild
        self.max_size_bytes = max_size_bytes
        self.lock_timeout_s = lock_timeout_s
        self.lock_notice_s = lock_notice_s
        self.session_start = time.time() if session_start is None else session_start
        self.stats = CacheStats()
        self.events: list[CacheEvent] = []
        self._warn = warn if warn is not None else _default_warn
        self._notify = notify if notify is not None else _print_to_stderr
        self._used: set[str] = set()  # keys this process read or wrote: eviction spares them
        self._rebuild_done: set[str] = set()  # keys already rebuilt under --trt-rebuild
        self._refused: set[Path] = set()  # foreign paths already warned about
        self._work: Path | None = None
        self.mode = CacheMode.OFF
        self.root: Path | None = None
        if root is not None:
            self.root = Path(root)
            self.stats.root = str(self.root)
            self.mode = CacheMode.READ_WRITE
            try:
                _claim_root(self.root)
            except OSError as exc:
                self._disable(f"the directory cannot be written: {exc}")
            else:
                problem = self._writing_problem()
                if problem is not None:
                    self._read_only(problem)
        if self.mode is CacheMode.READ_WRITE and self.root is not None:
            workdirs.remove_stale(self.root / WORK_DIR)
        workdirs.remove_stale(workdirs.temp_parent(create=False))

    # ---- keys and paths -------------------------------------------------------------------

    def key(self, kind: str, parts: Mapping[str, Any]) -> str:
        """sha256 of the canonical JSON of the schema version, ``kind`` and ``parts``."""
        if not isinstance(kind, str) or not _KIND.fullmatch(kind) or kind in _RESERVED_KINDS:
            raise CacheError(
                "cache kind must be lower-case letters, digits, '-' or '_' (not "
                f"{' or '.join(map(repr, _RESERVED_KINDS))}), got {kind!r}"
            )
        if not isinstance(parts, Mapping):
            raise CacheError(f"cache key parts for {kind!r} must be a mapping, got {type(parts).__name__}")
        payload = {"schema": SCHEMA_VERSION, "kind": kind, "parts": parts}
        text = _canonical_json(payload, f"cache key parts for {kind!r}")
        return hashlib.sha256(text.encode()).hexdigest()

    def entry_dir(self, kind: str, key: str) -> Path:
        if self.root is None:
            raise CacheError("the engine cache has no directory (persistent cache off)")
        return self.root / kind / key[:2] / key

    def _lock_path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / LOCKS_DIR / f"{key}.lock"

    def _owner_path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / LOCKS_DIR / f"{key}.owner"

    def _own_dir(self, name: str) -> Path | None:
        """``root/name`` made if needed, or None when it is a link or cannot be made."""
        if self.root is None:
            return None
        path = self.root / name
        with suppress(OSError):
            path.mkdir(exist_ok=True)
        return path if _is_real_dir(path) else None

    # ---- public operations ------------------------------------------------------------------

    def get_or_build(
        self,
        kind: str,
        parts: Mapping[str, Any],
        build: Callable[[], Artifact],
        load: Callable[[Artifact], T],
    ) -> tuple[T, CacheEvent]:
        """Load the entry for (kind, parts), or build, store and load it. Any exception from
        ``load`` on a stored entry counts as a failed deserialization: the entry is rebuilt.
        Exceptions from ``build``, and from ``load`` on a fresh build, propagate."""
        key = self.key(kind, parts)
        self._used.add(key)
        with self._access(kind, key) as access:
            if access is _Access.NONE:
                return self._build_and_load(kind, key, parts, build, load, CacheOutcome.UNCACHED, access)
            outcome, found = self._lookup(kind, key, load, access)
            if found is not None:
                return found
            return self._build_and_load(kind, key, parts, build, load, outcome, access)

    def get_bytes(self, kind: str, parts: Mapping[str, Any]) -> bytes | None:
        """The stored bytes for (kind, parts), or None (absent, corrupt, or --trt-rebuild)."""
        key = self.key(kind, parts)
        self._used.add(key)
        with self._access(kind, key) as access:
            if access is _Access.NONE:
                return None
            outcome, found = self._lookup(kind, key, lambda artifact: artifact.data, access)
        if found is not None:
            return found[0]
        self._count(CacheEvent(kind, key, outcome), built=False)
        return None

    def put_bytes(
        self,
        kind: str,
        parts: Mapping[str, Any],
        data: bytes,
        metadata: Mapping[str, Any] | None = None,
        *,
        build_s: float = 0.0,
    ) -> None:
        """Store ``data`` for (kind, parts), replacing any entry. ``build_s`` is what computing
        it cost, so later hits can report the time saved; it counts as a build."""
        key = self.key(kind, parts)
        self._used.add(key)
        self.stats.builds += 1
        self.stats.build_s += build_s
        with self._access(kind, key) as access:
            if access is _Access.LOCKED:
                self._rebuild_done.add(key)
                self._write(kind, key, parts, Artifact(bytes(data), dict(metadata or {})), build_s)

    def update_bytes(
        self, kind: str, parts: Mapping[str, Any], merge: Callable[[bytes | None], bytes]
    ) -> bytes:
        """Read-modify-write under the key's lock (e.g. merge a TensorRT timing cache); ``merge``
        gets the stored bytes or None and returns what to store. Not counted as hits or misses."""
        key = self.key(kind, parts)
        self._used.add(key)
        with self._access(kind, key) as access:
            if access is _Access.NONE:
                return merge(None)
            old: bytes | None = None
            if not self._rebuild_pending(kind, key):
                try:
                    found = self._read(kind, key)
                    old = found[0].data if found else None
                except CorruptEntry as exc:
                    self._drop_corrupt(kind, key, exc, access)
            new = merge(old)
            if access is _Access.LOCKED and self.root is not None:
                self._write(kind, key, parts, Artifact(bytes(new)), 0.0)
            return new

    def clear(self) -> int:
        """Remove every entry that is provably the cache's own, and temp folders left by killed
        writers, that no other process holds locked right now; returns how many entries. Raises
        CacheError when the folder cannot be cleared (read-only, or its marker is gone)."""
        if self.mode is CacheMode.OFF or self.root is None:
            return 0
        if self.mode is CacheMode.READ_ONLY:
            raise CacheError(
                f"--trt-cache-clear: the engine cache {self.root} is read-only for this run, so "
                "nothing was removed; clear it where it is writable, or drop --trt-cache-clear"
            )
        problem = _marker_problem(self.root)
        if problem is not None:
            raise CacheError(
                f"--trt-cache-clear: refusing to clear {self.root}: {problem}, so it is not a cache "
                "pytest-trt made (or the marker was removed); nothing was removed"
            )
        removed = 0
        left: list[str] = []
        for kind, key, path, leftover in list(self._walk(left)):
            if self.root is None:  # a removal failed and turned the cache off
                break
            with self._try_lock(kind, key) as locked:
                if not locked:
                    continue
                if leftover:
                    _remove_own_files(path)
                    continue
                try:
                    refusal = _removal_refusal(path) if _own_record(path, kind, key) is not None \
                        else f"its {RECORD_FILE} is not this entry's"
                except OSError:  # gone meanwhile, or unreadable: nothing to remove
                    continue
                if refusal is not None:
                    left.append(f"{path} ({refusal})")
                elif self._remove(kind, key):
                    removed += 1
        if left:
            shown = "; ".join(left[:5]) + ("; ..." if len(left) > 5 else "")
            self._warn(
                f"pytest-trt: --trt-cache-clear left {len(left)} item(s) in {self.root} that it "
                f"cannot show it wrote: {shown}"
            )
        return removed

    def evict(self) -> int:
        """Remove least recently used entries until the cache fits ``max_size_bytes``. Entries used
        by this session (this process, or since ``session_start``), entries locked by another
        process, and entries whose record is not the cache's own stay. Returns how many were
        removed."""
        if self.mode is not CacheMode.READ_WRITE or self.root is None or self.max_size_bytes is None:
            return 0
        problem = _marker_problem(self.root)
        if problem is not None:
            self._warn(f"pytest-trt: not evicting anything from {self.root}: {problem}, so it is not a cache "
                       "pytest-trt made (or the marker was removed)")
            return 0
        entries = []
        for kind, key, path, _ in self._walk():
            record = _own_record(path, kind, key)
            if record is not None:
                entries.append((_record_time(record, "last_used"), _own_size(path), kind, key))
        total = sum(size for _, size, _, _ in entries)
        evicted = 0
        for last_used, size, kind, key in sorted(entries):
            if total <= self.max_size_bytes or self.root is None:
                break
            if key in self._used or last_used >= self.session_start:
                continue
            with self._try_lock(kind, key) as locked:
                entry = self.entry_dir(kind, key)
                if locked and _own_record(entry, kind, key) is not None and self._remove(kind, key):
                    total -= size
                    evicted += 1
        self.stats.evicted += evicted
        return evicted

    def work_dir(self) -> Path:
        """A private folder for this process's scratch files (converted models), made on first use
        under the cache root (or a private temp folder without a writable cache) and removed by
        ``close``; if the process is killed first, a later run on this host removes it."""
        if self._work is None:
            parent = self._own_dir(WORK_DIR) if self.mode is CacheMode.READ_WRITE else None
            try:
                self._work = workdirs.create(parent or workdirs.temp_parent(create=True))
            except OSError:
                self._work = workdirs.create(None)
        return self._work

    def close(self) -> None:
        """Remove this process's work folder."""
        if self._work is not None:
            workdirs.remove(self._work)
            self._work = None

    # ---- internals ------------------------------------------------------------------------

    def _disable(self, reason: str) -> None:
        if self.root is None:
            return
        root, self.root = self.root, None
        self.mode = CacheMode.OFF
        self.stats.root = None
        self._warn(
            f"pytest-trt: engine cache {root} turned off for this session ({reason}); "
            "artifacts are still built, but not kept across runs"
        )

    def _read_only(self, reason: str) -> None:
        self.mode = CacheMode.READ_ONLY
        self._warn(
            f"pytest-trt: engine cache {self.root} is read-only for this session ({reason}); its "
            "entries are served, new artifacts are built but not kept"
        )

    def _writing_problem(self) -> str | None:
        """Why nothing can be written in the (marked) root, or None when it can."""
        assert self.root is not None
        locks = self.root / LOCKS_DIR
        try:
            locks.mkdir(exist_ok=True)
            if not _is_real_dir(locks):
                return f"{locks} is not a folder but {describe_mode(os.lstat(locks).st_mode)}"
            probe = locks / f".probe-{os.getpid()}"
            write_atomic(probe, b"")
            probe.unlink()
        except OSError as exc:
            return f"it cannot be written: {exc}"
        return None

    def _refuse(self, path: Path, what: str, kind: str) -> None:
        """Warn once about a path the cache will not go through; what belongs there is built and
        not kept."""
        if path not in self._refused:
            self._refused.add(path)
            self._warn(
                f"pytest-trt: left {path} alone: it is {what}, and the engine cache does not read, "
                f"write or delete through it (the {kind!r} artifact kept there is built, not kept)"
            )

    def _entry_path_ok(self, kind: str, key: str) -> bool:
        """True when the kind folder, shard and entry are each absent or a real folder."""
        assert self.root is not None
        path = self.root
        for name in (kind, key[:2], key):
            path = path / name
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                return True
            except OSError as exc:
                self._refuse(path, f"unreadable ({exc})", kind)
                return False
            if not stat.S_ISDIR(mode):
                self._refuse(path, describe_mode(mode) if stat.S_ISLNK(mode) else "not a folder", kind)
                return False
        return True

    def _lock_path_ok(self, key: str, kind: str) -> bool:
        """The lock and owner files are absent or regular files: a planted link is not opened."""
        for path in (self._lock_path(key), self._owner_path(key)):
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            except OSError:
                return True  # let the lock itself report it
            if not stat.S_ISREG(mode):
                self._refuse(path, describe_mode(mode), kind)
                return False
        return True

    @contextmanager
    def _access(self, kind: str, key: str) -> Iterator[_Access]:
        """What this operation may do with the key's entry, holding its lock when it may write."""
        if self.root is None:
            yield _Access.NONE
            return
        if self.mode is CacheMode.READ_ONLY:
            # No lock: none can be made in a read-only folder. Reading without one is safe because
            # an entry appears whole in one rename and every read is checked against its record's
            # size and sha256, so a read racing a writer elsewhere (another account with write
            # access) gets the old entry, the new one or a mismatch counted as a miss; never a mix.
            yield _Access.READ if self._entry_path_ok(kind, key) else _Access.NONE
            return
        if not self._lock_path_ok(key, kind):
            yield _Access.NONE
            return
        lock, owner = FileLock(self._lock_path(key)), self._owner_path(key)
        try:
            self._acquire(lock, kind, key)
        except OSError as exc:
            self._disable(f"cannot lock {lock.lock_file}: {exc}")
            yield _Access.NONE
            return
        try:
            _record_owner(owner)
            if not self._entry_path_ok(kind, key):
                yield _Access.NONE
                return
            self._remove_leftovers(kind, key)
            yield _Access.LOCKED
        finally:
            with suppress(OSError):
                os.unlink(owner)
            lock.release()

    def _acquire(self, lock: FileLock, kind: str, key: str) -> None:
        """Take the lock, telling ``notify`` who holds it after ``lock_notice_s``; CacheError when
        ``lock_timeout_s`` runs out."""
        notice_s = min(self.lock_notice_s, self.lock_timeout_s)
        try:
            lock.acquire(timeout=notice_s)
            return
        except Timeout:
            pass
        if self.lock_timeout_s > notice_s:
            self._notify(
                f"pytest-trt: waiting for cache entry {kind}/{key[:12]}, {self._holder(key)}; "
                f"giving up after {self.lock_timeout_s:g} s (--trt-lock-timeout)"
            )
            try:
                lock.acquire(timeout=self.lock_timeout_s - notice_s)
                return
            except Timeout:
                pass
        raise CacheError(
            f"gave up after {self.lock_timeout_s:g} s waiting for the lock {lock.lock_file} on cache "
            f"entry {kind}/{key[:12]}, {self._holder(key)}. Wait for that process or stop it, or "
            "raise --trt-lock-timeout (ini trt_lock_timeout) if its builds take longer"
        )

    def _holder(self, key: str) -> str:
        owner = read_owner_file(self._owner_path(key))
        if owner is None:
            return "held by a process that left no owner record (an older pytest-trt or another tool)"
        if owner.liveness() is Liveness.DEAD:
            return (f"whose recorded holder, {owner.describe()}, has exited (a process it started "
                    "may still hold the lock)")
        return f"held by {owner.describe()}"

    @contextmanager
    def _try_lock(self, kind: str, key: str) -> Iterator[bool]:
        """The key's lock if no other process holds it now (clear and eviction never wait)."""
        if not self._lock_path_ok(key, kind):
            yield False
            return
        lock, owner = FileLock(self._lock_path(key)), self._owner_path(key)
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):
            yield False
            return
        try:
            _record_owner(owner)
            yield True
        finally:
            with suppress(OSError):
                os.unlink(owner)
            lock.release()

    def _remove_leftovers(self, kind: str, key: str) -> None:
        """Under the key's lock, temp folders for this key belong to dead writers."""
        assert self.root is not None
        shard = self.root / kind / key[:2]
        try:
            with os.scandir(shard) as names:
                stale = [e.path for e in names if e.name.startswith(f"{_TMP_PREFIX}{key}-")
                         and _OWN_TMP_FOLDER.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
        except OSError:
            return
        for folder in stale:
            _remove_own_files(Path(folder))
        entry = shard / key
        if _is_real_dir(entry):
            for name in os.listdir(entry):
                if name.startswith(".") and _OWN_ENTRY_NAMES.fullmatch(name):
                    with suppress(OSError):
                        os.unlink(entry / name)

    def _rebuild_pending(self, kind: str, key: str) -> bool:
        """True the first time this session meets ``key`` under --trt-rebuild, unless the entry was
        already made during this run (by this or another worker)."""
        if not self.rebuild or key in self._rebuild_done:
            return False
        self._rebuild_done.add(key)
        return _record_time(_own_record(self.entry_dir(kind, key), kind, key), "created") < self.session_start

    def _lookup(
        self, kind: str, key: str, load: Callable[[Artifact], T], access: _Access
    ) -> tuple[CacheOutcome, tuple[T, CacheEvent] | None]:
        """(outcome for a build, None) or (HIT, (value, event)). Caller holds the access."""
        if self._rebuild_pending(kind, key):
            if os.path.lexists(self.entry_dir(kind, key)):
                if access is _Access.LOCKED:
                    self._remove(kind, key)
                return CacheOutcome.REPLACED, None
            return CacheOutcome.MISS, None
        start = time.perf_counter()  # a hit costs the read and checksum too, not just load()
        try:
            found = self._read(kind, key)
            if found is None:
                return CacheOutcome.MISS, None
            artifact, record = found
            try:
                value = load(artifact)
            except Exception as exc:
                raise CorruptEntry(f"the backend could not load it: {type(exc).__name__}: {exc}") from exc
            load_s = time.perf_counter() - start
        except CorruptEntry as exc:
            self._drop_corrupt(kind, key, exc, access)
            return CacheOutcome.REBUILT, None
        if access is _Access.LOCKED:
            self._touch(kind, key, dict(record, last_load_s=round(load_s, 6)))
        recorded = record.get("build_s")
        saved = max(0.0, recorded - load_s) if isinstance(recorded, (int, float)) else 0.0
        event = CacheEvent(kind, key, CacheOutcome.HIT, load_s=load_s, size_bytes=len(artifact.data), saved_s=saved)
        self._count(event, built=False)
        return CacheOutcome.HIT, (value, event)

    def _build_and_load(
        self,
        kind: str,
        key: str,
        parts: Mapping[str, Any],
        build: Callable[[], Artifact],
        load: Callable[[Artifact], T],
        outcome: CacheOutcome,
        access: _Access,
    ) -> tuple[T, CacheEvent]:
        start = time.perf_counter()
        artifact = build()
        build_s = time.perf_counter() - start
        if not isinstance(artifact, Artifact) or not isinstance(artifact.data, (bytes, bytearray, memoryview)):
            raise CacheError(
                f"build for cache kind {kind!r} must return an Artifact with bytes data, got {artifact!r:.80}"
            )
        artifact = Artifact(bytes(artifact.data), dict(artifact.metadata))
        _canonical_json(artifact.metadata, f"artifact metadata for cache kind {kind!r}")
        if access is _Access.LOCKED and self.root is not None:
            self._write(kind, key, parts, artifact, build_s)
        start = time.perf_counter()
        value = load(artifact)
        load_s = time.perf_counter() - start
        event = CacheEvent(kind, key, outcome, build_s=build_s, load_s=load_s, size_bytes=len(artifact.data))
        self._count(event, built=True)
        return value, event

    def _count(self, event: CacheEvent, *, built: bool) -> None:
        self.events.append(event)
        stats = self.stats
        if event.outcome is CacheOutcome.HIT:
            stats.hits += 1
            stats.saved_s += event.saved_s
        elif event.outcome in (CacheOutcome.MISS, CacheOutcome.REBUILT, CacheOutcome.REPLACED):
            stats.misses += 1
        if built:
            stats.builds += 1
        stats.build_s += event.build_s
        stats.load_s += event.load_s

    def _read(self, kind: str, key: str) -> tuple[Artifact, dict[str, Any]] | None:
        """The entry, None when absent; CorruptEntry when it cannot be trusted. Only regular files
        are opened (no FIFO, device or link) and no read goes past the size in the record."""
        entry = self.entry_dir(kind, key)
        if not os.path.lexists(entry):
            return None
        record = _parse_record(_read_entry_file(entry / RECORD_FILE, _MAX_RECORD_BYTES, _RECORD_LIMIT))
        if record["key"] != key or record["kind"] != kind:
            raise CorruptEntry(f"{RECORD_FILE} belongs to {record['kind']}/{record['key'][:12]}")
        size = record["size_bytes"]
        data = _read_entry_file(entry / ARTIFACT_FILE, size, f"the {size} bytes the record says")
        if len(data) != size:
            raise CorruptEntry(f"{ARTIFACT_FILE} has {len(data)} bytes, the record says {size} (truncated?)")
        digest = hashlib.sha256(data).hexdigest()
        if digest != record["sha256"]:
            raise CorruptEntry(
                f"{ARTIFACT_FILE} sha256 {digest[:12]}.. does not match the recorded {record['sha256'][:12]}.."
            )
        metadata = record.get("metadata")
        return Artifact(data, dict(metadata) if isinstance(metadata, dict) else {}), record

    def _drop_corrupt(self, kind: str, key: str, exc: CorruptEntry, access: _Access) -> None:
        self.stats.corrupt += 1
        entry = self.entry_dir(kind, key)
        if access is not _Access.LOCKED:
            self._warn(f"pytest-trt: corrupt cache entry {entry} ({exc}); not served, rebuilding (not kept: "
                       "the cache is read-only)")
            return
        self._warn(f"pytest-trt: corrupt cache entry {entry} ({exc}); removed, rebuilding")
        self._remove(kind, key)

    def _write(self, kind: str, key: str, parts: Mapping[str, Any], artifact: Artifact, build_s: float) -> None:
        """Store an entry; a failing disk turns the cache off with one warning instead of failing."""
        assert self.root is not None
        now = _now()
        record = {
            "schema": SCHEMA_VERSION,
            "kind": kind,
            "key": key,
            "parts": parts,
            "metadata": artifact.metadata,
            "size_bytes": len(artifact.data),
            "sha256": hashlib.sha256(artifact.data).hexdigest(),
            "build_s": round(build_s, 6),
            "created": now,
            "last_used": now,
        }
        text = json.dumps(record, sort_keys=True, indent=2) + "\n"
        entry = self.entry_dir(kind, key)
        if os.path.lexists(entry) and not self._remove(kind, key):
            return  # a folder that is not only ours is in the way: built, not kept (warned)
        tmp: Path | None = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{key}-", dir=entry.parent))
            _write_durably(tmp / ARTIFACT_FILE, artifact.data)
            _write_durably(tmp / RECORD_FILE, text.encode())
            os.replace(tmp, entry)
        except OSError as exc:
            if tmp is not None:
                _remove_own_files(tmp)
            self._disable(f"writing {entry} failed: {exc}")

    def _touch(self, kind: str, key: str, record: dict[str, Any]) -> None:
        """Record a hit: last_used drives eviction, last_load_s shows what the hit cost."""
        record = dict(record, last_used=_now())
        text = json.dumps(record, sort_keys=True, indent=2) + "\n"
        try:
            write_atomic(self.entry_dir(kind, key) / RECORD_FILE, text.encode())
        except OSError as exc:
            self._disable(f"updating {self.entry_dir(kind, key) / RECORD_FILE} failed: {exc}")

    def _remove(self, kind: str, key: str) -> bool:
        """Move the entry aside in one rename, then delete it: never a half-deleted entry. Only a
        real folder holding nothing but the names the cache writes is removed; False (with a
        warning) when the folder is left alone."""
        entry = self.entry_dir(kind, key)
        try:
            refusal = _removal_refusal(entry)
        except FileNotFoundError:
            return True
        except OSError as exc:
            self._disable(f"removing {entry} failed: {exc}")
            return False
        if refusal is not None:
            self._refuse(entry, refusal, kind)
            return False
        doomed = entry.parent / f"{_TMP_PREFIX}{key}-removed-{uuid.uuid4().hex}"
        try:
            os.replace(entry, doomed)
        except FileNotFoundError:
            return True
        except OSError as exc:
            self._disable(f"removing {entry} failed: {exc}")
            return False
        _remove_own_files(doomed)
        return True

    def _walk(self, left: list[str] | None = None) -> Iterator[tuple[str, str, Path, bool]]:
        """(kind, key, folder, is_leftover) of every entry and temp folder laid out the way the
        cache writes them. Links are never followed; those met are noted in ``left``."""
        if self.root is None:
            return
        for kind_dir in _scan(self.root, left):
            if kind_dir.name in _RESERVED_KINDS or not _KIND.fullmatch(kind_dir.name):
                continue
            for shard in _scan(Path(kind_dir.path), left):
                if not _SHARD.fullmatch(shard.name):
                    continue
                for entry in _scan(Path(shard.path), left):
                    leftover = _OWN_TMP_FOLDER.fullmatch(entry.name)
                    if leftover is not None:
                        yield kind_dir.name, leftover.group(1), Path(entry.path), True
                    elif _KEY.fullmatch(entry.name) and entry.name.startswith(shard.name):
                        yield kind_dir.name, entry.name, Path(entry.path), False


def _scan(folder: Path, links: list[str] | None) -> list[os.DirEntry[str]]:
    """The real sub-folders of ``folder``, sorted; symbolic links among them go to ``links``."""
    try:
        with os.scandir(folder) as entries:
            found = sorted(entries, key=lambda e: e.name)
    except OSError:
        return []
    if links is not None:
        links.extend(f"{e.path} (a symbolic link, not followed)" for e in found if e.is_symlink())
    return [e for e in found if e.is_dir(follow_symlinks=False)]


def _record_owner(path: Path) -> None:
    with suppress(OSError):  # advice for waiting runs only: never worth failing a test over
        write_owner_file(path, ProcessOwner.current())


def _own_size(entry: Path) -> int:
    """Bytes of the files the cache wrote in an entry."""
    total = 0
    with suppress(OSError), os.scandir(entry) as children:
        for child in children:
            if _OWN_ENTRY_NAMES.fullmatch(child.name) and child.is_file(follow_symlinks=False):
                total += child.stat(follow_symlinks=False).st_size
    return total
