"""The cache's folder and what this session may do there: read and write (``READ_WRITE``), only
read (``READ_ONLY``, a cache mounted read-only), or nothing (``OFF``). Every entry operation goes
through here, so that a failing disk turns the cache off with one warning instead of failing a
test, and a path the cache will not go through (a link, a foreign folder) is warned about once and
left alone; the artifact it was for is built and not kept."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from enum import Enum
from pathlib import Path
from typing import Any

from pytest_trt.errors import CorruptEntry
from pytest_trt.store import entries, layout
from pytest_trt.store.files import remove_stale_temps
from pytest_trt.store.locks import KeyLocks
from pytest_trt.store.marker import DamagedMarker, claim_root, writing_problem
from pytest_trt.store.regular_files import is_real_dir
from pytest_trt.store.removal import discard_entry, removal_refusal, remove_leftovers
from pytest_trt.store.stats import CacheStats
from pytest_trt.types import Artifact


class CacheWarning(UserWarning):
    """A cache problem that does not fail the test: a corrupt entry, an unwritable directory."""


class CacheMode(Enum):
    OFF = "off"  # no root, or it could not be used: build, keep nothing
    READ_WRITE = "read-write"
    READ_ONLY = "read-only"  # serve entries, store nothing (a cache mounted read-only in CI)


class Access(Enum):
    """What one operation may do with one key's entry."""

    NONE = "none"  # build, neither read nor store
    READ = "read"  # read without the lock (read-only cache), never write
    LOCKED = "locked"  # read and write, under the key's lock


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_warn(message: str) -> None:
    try:
        warnings.warn(message, CacheWarning, stacklevel=4)
    except CacheWarning:
        # Warnings made errors (-W error, filterwarnings=error) must not fail a test the cache
        # has already recovered from; say it on stderr instead.
        print(f"CacheWarning: {message}", file=sys.stderr)


class CacheFolder:
    """The cache's root for this session. ``root`` (and ``stats.root``, which the summary shows)
    is None once the cache is off, as it is from the start where the marker is damaged. Raises
    CacheError when ``root`` is a non-empty folder without the cache's marker."""

    def __init__(
        self,
        root: Path,
        stats: CacheStats,
        *,
        warn: Callable[[str], None],
        locks: KeyLocks,
    ) -> None:
        self.root: Path | None = root
        self.mode = CacheMode.READ_WRITE
        self.locks = locks
        self.warn = warn
        self._stats = stats
        self._refused: set[Path] = set()  # foreign paths already warned about
        stats.root = str(root)
        try:
            claim_root(root)
        except OSError as exc:
            self.disable(f"the directory cannot be written: {exc}")
            return
        except DamagedMarker as exc:
            # A damaged cache never fails a run: it runs uncached, the folder left as it is.
            self.disable(str(exc))
            return
        problem = writing_problem(root)
        if problem is not None:
            self._read_only(problem)
        else:  # owner records' temp files of killed runs (they carry the writer's pid)
            remove_stale_temps(root / layout.LOCKS_DIR)

    # ---- mode and warnings --------------------------------------------------------------------

    def disable(self, reason: str) -> None:
        """Turn the cache off for this session, with one warning saying why."""
        if self.root is None:
            return
        root, self.root = self.root, None
        self.mode = CacheMode.OFF
        self._stats.root = None
        self.warn(
            f"pytest-trt: engine cache {root} turned off for this session ({reason}); "
            "artifacts are still built, but not kept across runs"
        )

    def _read_only(self, reason: str) -> None:
        self.mode = CacheMode.READ_ONLY
        self.warn(
            f"pytest-trt: engine cache {self.root} is read-only for this session ({reason}); its "
            "entries are served, new artifacts are built but not kept"
        )

    def refuse(self, path: Path, what: str, kind: str) -> None:
        """Warn once about a path the cache will not go through; what belongs there is built and
        not kept."""
        if path not in self._refused:
            self._refused.add(path)
            self.warn(
                f"pytest-trt: left {path} alone: it is {what}, and the engine cache does not read, "
                f"write or delete through it (the {kind!r} artifact kept there is built, not kept)"
            )

    def entry_dir(self, kind: str, key: str) -> Path:
        assert self.root is not None
        return layout.entry_dir(self.root, kind, key)

    def own_dir(self, name: str) -> Path | None:
        """``root/name`` made if needed, or None when it is a link or cannot be made."""
        if self.root is None:
            return None
        path = self.root / name
        with suppress(OSError):
            path.mkdir(exist_ok=True)
        return path if is_real_dir(path) else None

    # ---- access and locks ---------------------------------------------------------------------

    @contextmanager
    def access(self, kind: str, key: str) -> Iterator[Access]:
        """What this operation may do with the key's entry, holding its lock when it may write."""
        if self.root is None:
            yield Access.NONE
        elif self.mode is CacheMode.READ_ONLY:
            # No lock: none can be made in a read-only folder. Reading without one is safe because
            # an entry appears whole in one rename and every read is checked against its record's
            # size and sha256, so a read racing a writer elsewhere (another account with write
            # access) gets the old entry, the new one or a mismatch counted as a miss; never a mix.
            yield Access.READ if self._entry_path_ok(kind, key) else Access.NONE
        else:
            with self._locked(kind, key) as access:
                yield access

    @contextmanager
    def _locked(self, kind: str, key: str) -> Iterator[Access]:
        """LOCKED while holding the key's lock; NONE when it cannot be taken or a path is foreign.
        CacheError when another process holds it too long."""
        if not self._lock_files_ok(kind, key):
            yield Access.NONE
            return
        try:
            lock = self.locks.acquire(kind, key)
        except OSError as exc:
            self.disable(f"cannot lock {self.locks.lock_path(key)}: {exc}")
            yield Access.NONE
            return
        try:
            if not self._entry_path_ok(kind, key):
                yield Access.NONE
                return
            remove_leftovers(self.entry_dir(kind, key), key)
            yield Access.LOCKED
        finally:
            self.locks.release(lock, key)

    @contextmanager
    def try_lock(self, kind: str, key: str) -> Iterator[bool]:
        """The key's lock if no other process holds it now (clear and eviction never wait)."""
        if not self._lock_files_ok(kind, key):
            yield False
            return
        with self.locks.try_hold(key) as locked:
            yield locked

    def _entry_path_ok(self, kind: str, key: str) -> bool:
        """True when the kind folder, shard and entry are each absent or a real folder."""
        assert self.root is not None
        problem = layout.entry_path_problem(self.root, kind, key)
        if problem is not None:
            self.refuse(*problem, kind)
        return problem is None

    def _lock_files_ok(self, kind: str, key: str) -> bool:
        """The lock and owner files are absent or regular files: a planted link is not opened."""
        problem = self.locks.planted_file(key)
        if problem is not None:
            self.refuse(*problem, kind)
        return problem is None

    # ---- entries ------------------------------------------------------------------------------

    def read(self, kind: str, key: str) -> tuple[Artifact, entries.EntryRecord] | None:
        """The entry, None when absent; CorruptEntry when it cannot be trusted."""
        return entries.read_entry(self.entry_dir(kind, key), kind, key)

    def write(self, kind: str, key: str, parts: Mapping[str, Any], artifact: Artifact, build_s: float) -> None:
        """Store an entry, replacing any; a failing disk turns the cache off instead of failing."""
        entry = self.entry_dir(kind, key)
        if os.path.lexists(entry) and not self.remove(kind, key):
            return  # a folder that is not only ours is in the way: built, not kept (warned)
        try:
            entries.write_entry(entry, kind, key, parts, artifact, build_s)
        except OSError as exc:
            self.disable(f"writing {entry} failed: {exc}")

    def record_hit(self, kind: str, key: str, record: entries.EntryRecord, load_s: float) -> None:
        entry = self.entry_dir(kind, key)
        try:
            entries.record_hit(entry, record, load_s)
        except OSError as exc:
            self.disable(f"updating {entry / layout.RECORD_FILE} failed: {exc}")

    def drop_corrupt(self, kind: str, key: str, exc: CorruptEntry, access: Access) -> None:
        """Count and report a damaged entry; remove it where this access may write."""
        self._stats.corrupt += 1
        entry = self.entry_dir(kind, key)
        if access is not Access.LOCKED:
            self.warn(f"pytest-trt: corrupt cache entry {entry} ({exc}); not served, rebuilding (not kept: "
                      "the cache is read-only)")
            return
        self.warn(f"pytest-trt: corrupt cache entry {entry} ({exc}); removed, rebuilding")
        self.remove(kind, key)

    def remove(self, kind: str, key: str) -> bool:
        """Remove the entry in one rename: never a half-deleted entry. Only a real folder holding
        nothing but the names the cache writes is removed; False (with a warning) when the folder
        is left alone."""
        entry = self.entry_dir(kind, key)
        try:
            refusal = removal_refusal(entry)
            if refusal is None:
                discard_entry(entry, key)
        except FileNotFoundError:
            return True
        except OSError as exc:
            self.disable(f"removing {entry} failed: {exc}")
            return False
        if refusal is not None:
            self.refuse(entry, refusal, kind)
            return False
        return True

    def created(self, kind: str, key: str) -> float:
        """When the cache's own entry for this key was made (epoch seconds); 0 without one."""
        record = entries.own_record(self.entry_dir(kind, key), kind, key)
        return record.created if record is not None else 0.0
