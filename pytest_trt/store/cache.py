"""The engine cache: a content-addressed artifact store shared by every backend (engines, timing
caches, optimized models, reference outputs), for processes that may run at once.

``EngineCache`` is its one face, composing parts that each do one job: ``layout`` (where what
lies), ``keys`` (what an entry is for), ``marker`` (whose folder it is), ``locks`` (one lock per
key), ``entries`` (an entry written whole and read verified), ``folder`` (what this session may
do there), ``removal`` and ``pruning`` (deleting only what the cache wrote) and ``stats`` (what it
did). docs/reliability.md lists what it promises and the tests that check each promise.

Every read and write of an entry happens under its key's file lock, so N processes asking for one
missing artifact build it once. A damaged entry is reported, removed and rebuilt, never served.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pytest_trt.errors import CacheError, CorruptEntry
from pytest_trt.store import pruning, workdirs
from pytest_trt.store.folder import Access, CacheFolder, CacheMode, default_warn, print_to_stderr
from pytest_trt.store.keys import canonical_json, entry_key
from pytest_trt.store.layout import WORK_DIR
from pytest_trt.store.locks import KeyLocks
from pytest_trt.store.stats import CacheEvent, CacheOutcome, CacheStats
from pytest_trt.types import Artifact

T = TypeVar("T")
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class EngineCache:
    """The persistent artifact store. ``root=None`` keeps nothing on disk (``get_or_build`` just
    builds; once-per-session reuse is the caller's in-memory memo).

    ``session_start`` (epoch seconds) marks what this run made or used: entries touched since then
    are never evicted and, under ``rebuild``, count as already rebuilt. pytest-xdist workers should
    receive the controller's value so that one worker's rebuild serves the others.

    A key's lock held by another process is waited for up to ``lock_timeout_s``; after
    ``lock_notice_s`` of waiting, ``notify`` is told who holds it. Raises CacheError when ``root``
    is a non-empty folder without the cache's marker (see ``marker.claim_root``).
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
        self._used: set[str] = set()  # keys this process read or wrote: eviction spares them
        self._rebuild_done: set[str] = set()  # keys already rebuilt under --trt-rebuild
        self._work: Path | None = None
        self._work_in_cache = False  # the work folder lies in the cache's root (its disk)
        self._retired_work: list[Path] = []  # work folders left for a full disk, removed at close
        self._folder: CacheFolder | None = None
        if root is not None:
            locks = KeyLocks(Path(root), timeout_s=lock_timeout_s, notice_s=lock_notice_s,
                             notify=notify if notify is not None else print_to_stderr)
            self._folder = CacheFolder(Path(root), self.stats, warn=warn if warn is not None else default_warn, locks=locks)
        if self.mode is CacheMode.READ_WRITE and self.root is not None:
            workdirs.remove_stale(self.root / WORK_DIR)
        workdirs.remove_stale(workdirs.temp_parent(create=False))
        workdirs.remove_stale_fallbacks()

    @property
    def root(self) -> Path | None:
        """The cache folder; None without one, or once the cache turned off for this session."""
        return self._folder.root if self._folder is not None else None

    @property
    def mode(self) -> CacheMode:
        return self._folder.mode if self._folder is not None else CacheMode.OFF

    def key(self, kind: str, parts: Mapping[str, Any]) -> str:
        """sha256 of the canonical JSON of the schema version, ``kind`` and ``parts``."""
        return entry_key(kind, parts)

    def entry_dir(self, kind: str, key: str) -> Path:
        if self._folder is None or self._folder.root is None:
            raise CacheError("the engine cache has no directory (persistent cache off)")
        return self._folder.entry_dir(kind, key)

    # ---- artifacts ------------------------------------------------------------------------------

    def get_or_build(
        self,
        kind: str,
        parts: Mapping[str, Any],
        build: Callable[[], Artifact],
        load: Callable[[Artifact], T],
    ) -> tuple[T, CacheEvent]:
        """Load the entry for (kind, parts), or build, store and load it. Any exception from
        ``load`` on a stored entry counts as a failed deserialization: the entry is rebuilt.
        Exceptions from ``build``, and from ``load`` on a fresh build, propagate, and nothing
        is stored."""
        key = self.key(kind, parts)
        self._used.add(key)
        try:
            return self._get_or_build(kind, key, parts, build, load)
        except OSError as exc:
            if not self._work_disk_full(exc):
                raise
        # Scratch files share the cache's disk, which is full: with the cache off and the work
        # folder moved to a private temp folder, the artifact is built (and not kept) once more.
        return self._get_or_build(kind, key, parts, build, load)

    def _get_or_build(
        self,
        kind: str,
        key: str,
        parts: Mapping[str, Any],
        build: Callable[[], Artifact],
        load: Callable[[Artifact], T],
    ) -> tuple[T, CacheEvent]:
        if self._folder is None:
            return self._build_and_load(kind, key, parts, build, load, CacheOutcome.UNCACHED, Access.NONE)
        with self._folder.access(kind, key) as access:
            if access is Access.NONE:
                return self._build_and_load(kind, key, parts, build, load, CacheOutcome.UNCACHED, access)
            outcome, found = self._lookup(self._folder, kind, key, load, access)
            if found is not None:
                return found
            return self._build_and_load(kind, key, parts, build, load, outcome, access)

    def get_bytes(self, kind: str, parts: Mapping[str, Any]) -> bytes | None:
        """The stored bytes for (kind, parts), or None (absent, corrupt, or --trt-rebuild)."""
        key = self.key(kind, parts)
        self._used.add(key)
        if self._folder is None:
            return None
        with self._folder.access(kind, key) as access:
            if access is Access.NONE:
                return None
            outcome, found = self._lookup(self._folder, kind, key, lambda artifact: artifact.data, access)
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
        if self._folder is None:
            return
        with self._folder.access(kind, key) as access:
            if access is Access.LOCKED:
                self._rebuild_done.add(key)
                self._folder.write(kind, key, parts, Artifact(bytes(data), dict(metadata or {})), build_s)

    def update_bytes(
        self, kind: str, parts: Mapping[str, Any], merge: Callable[[bytes | None], bytes]
    ) -> bytes:
        """Read-modify-write under the key's lock (e.g. merge a TensorRT timing cache); ``merge``
        gets the stored bytes or None and returns what to store. Not counted as hits or misses."""
        key = self.key(kind, parts)
        self._used.add(key)
        folder = self._folder
        if folder is None:
            return merge(None)
        with folder.access(kind, key) as access:
            if access is Access.NONE:
                return merge(None)
            old: bytes | None = None
            if not self._rebuild_pending(folder, kind, key):
                try:
                    found = folder.read(kind, key)
                    old = found[0].data if found else None
                except CorruptEntry as exc:
                    folder.drop_corrupt(kind, key, exc, access)
            new = merge(old)
            if access is Access.LOCKED and folder.root is not None:
                folder.write(kind, key, parts, Artifact(bytes(new)), 0.0)
            return new

    # ---- the folder as a whole ------------------------------------------------------------------

    def clear(self) -> int:
        """Remove every entry that is provably the cache's own, and temp folders left by killed
        writers, that no other process holds locked right now; returns how many entries. Raises
        CacheError when the folder cannot be cleared (read-only, or its marker is gone)."""
        if self._folder is None or self._folder.root is None:
            return 0
        if self.mode is CacheMode.READ_ONLY:
            raise CacheError(
                f"--trt-cache-clear: the engine cache {self._folder.root} is read-only for this run, so "
                "nothing was removed; clear it where it is writable, or drop --trt-cache-clear"
            )
        return pruning.clear(self._folder, self._folder.root)

    def evict(self) -> int:
        """Remove least recently used entries until the cache fits ``max_size_bytes``. Entries used
        by this session (this process, or since ``session_start``), entries locked by another
        process, and entries whose record is not the cache's own stay. Returns how many were
        removed."""
        folder = self._folder
        if folder is None or folder.root is None or self.mode is not CacheMode.READ_WRITE or self.max_size_bytes is None:
            return 0
        spared = pruning.Spared(keys=frozenset(self._used), used_since=self.session_start)
        evicted = pruning.evict(folder, folder.root, self.max_size_bytes, spared)
        self.stats.evicted += evicted
        return evicted

    def work_dir(self) -> Path:
        """A private folder for this process's scratch files (converted models), made on first use
        under the cache root (or a private temp folder without a writable cache) and removed by
        ``close``; if the process is killed first, a later run on this host removes it."""
        if self._work is not None and self._work_in_cache and self.mode is not CacheMode.READ_WRITE:
            self._retire_work()  # the cache turned off (a full or failing disk): leave its disk
        if self._work is None:
            folder = self._folder
            parent = folder.own_dir(WORK_DIR) if folder is not None and folder.mode is CacheMode.READ_WRITE else None
            try:
                self._work = workdirs.create(parent or workdirs.temp_parent(create=True))
                self._work_in_cache = parent is not None
            except OSError:
                self._work = workdirs.create(None)
                self._work_in_cache = False
        return self._work

    def close(self) -> None:
        """Remove this process's work folders."""
        for folder in [*self._retired_work, *([self._work] if self._work is not None else [])]:
            workdirs.remove(folder)
        self._work, self._retired_work = None, []

    def _retire_work(self) -> None:
        """Stop using the work folder in the cache; it is removed at ``close`` (models made there
        may still be in use)."""
        if self._work is not None:
            self._retired_work.append(self._work)
        self._work, self._work_in_cache = None, False

    def _work_disk_full(self, exc: OSError) -> bool:
        """True (the cache turned off, the work folder retired) when ``exc`` says the disk of the
        work folder in the cache is full."""
        if exc.errno not in _DISK_FULL or self._work is None or not self._work_in_cache:
            return False
        if self._folder is not None:
            self._folder.disable(f"its disk is full: {exc}; scratch files go to a private temp folder")
        self._retire_work()
        return True

    # ---- hits, misses and builds ----------------------------------------------------------------

    def _rebuild_pending(self, folder: CacheFolder, kind: str, key: str) -> bool:
        """True the first time this session meets ``key`` under --trt-rebuild, unless the entry was
        already made during this run (by this or another worker)."""
        if not self.rebuild or key in self._rebuild_done:
            return False
        self._rebuild_done.add(key)
        return folder.created(kind, key) < self.session_start

    def _lookup(
        self, folder: CacheFolder, kind: str, key: str, load: Callable[[Artifact], T], access: Access
    ) -> tuple[CacheOutcome, tuple[T, CacheEvent] | None]:
        """(outcome for a build, None) or (HIT, (value, event)). Caller holds the access."""
        if self._rebuild_pending(folder, kind, key):
            return _replace(folder, kind, key, access), None
        start = time.perf_counter()  # a hit costs the read and checksum too, not just load()
        try:
            found = folder.read(kind, key)
            if found is None:
                return CacheOutcome.MISS, None
            artifact, record = found
            value = _load_stored(load, artifact)
            load_s = time.perf_counter() - start
        except CorruptEntry as exc:
            folder.drop_corrupt(kind, key, exc, access)
            return CacheOutcome.REBUILT, None
        if access is Access.LOCKED:
            folder.record_hit(kind, key, record, load_s)
        saved = max(0.0, record.build_s - load_s) if record.build_s is not None else 0.0
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
        access: Access,
    ) -> tuple[T, CacheEvent]:
        start = time.perf_counter()
        artifact = _checked_artifact(build(), kind)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        # Loaded before it is stored: what fails to load right after its build is a build
        # failure, and is not kept for a later run to find and call damaged.
        value = load(artifact)
        load_s = time.perf_counter() - start
        if access is Access.LOCKED and self._folder is not None and self._folder.root is not None:
            self._folder.write(kind, key, parts, artifact, build_s)
        event = CacheEvent(kind, key, outcome, build_s=build_s, load_s=load_s, size_bytes=len(artifact.data))
        self._count(event, built=True)
        return value, event

    def _count(self, event: CacheEvent, *, built: bool) -> None:
        self.events.append(event)
        self.stats.count(event, built=built)


def _replace(folder: CacheFolder, kind: str, key: str, access: Access) -> CacheOutcome:
    """--trt-rebuild: drop the entry (where this access may write) so that it is built anew."""
    if not os.path.lexists(folder.entry_dir(kind, key)):
        return CacheOutcome.MISS
    if access is Access.LOCKED:
        folder.remove(kind, key)
    return CacheOutcome.REPLACED


def _load_stored(load: Callable[[Artifact], T], artifact: Artifact) -> T:
    """``load`` on a stored entry; any failure means the entry cannot be used (CorruptEntry),
    except a full disk, which says nothing about the entry."""
    try:
        return load(artifact)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise
        raise CorruptEntry(f"the backend could not load it: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise CorruptEntry(f"the backend could not load it: {type(exc).__name__}: {exc}") from exc


def _checked_artifact(artifact: Artifact, kind: str) -> Artifact:
    """What ``build`` returned, as an Artifact of bytes with JSON metadata; CacheError else."""
    if not isinstance(artifact, Artifact) or not isinstance(artifact.data, (bytes, bytearray, memoryview)):
        raise CacheError(
            f"build for cache kind {kind!r} must return an Artifact with bytes data, got {artifact!r:.80}"
        )
    artifact = Artifact(bytes(artifact.data), dict(artifact.metadata))
    canonical_json(artifact.metadata, f"artifact metadata for cache kind {kind!r}")
    return artifact
