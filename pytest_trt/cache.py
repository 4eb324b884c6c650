"""Content-addressed artifact store shared by every backend: engines, timing caches, optimized
models, reference outputs.

Layout under the root::

    <kind>/<key[:2]>/<key>/artifact.bin   the bytes, exactly as built
    <kind>/<key[:2]>/<key>/record.json    what went into the key, sizes, sha256, times
    locks/<key>.lock                      one cross-process lock per key

An entry appears in one ``os.replace`` of a finished temporary folder, so a reader sees a whole
entry or none; a writer killed half way leaves only a ``.tmp-<key>-*`` folder that nothing loads
and the next user of that key removes. Every read and write of an entry happens under its key's
file lock (OS locks, released by the kernel when the holder dies), so N processes asking for one
missing artifact build it once. A damaged entry is reported, removed and rebuilt, never served.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from filelock import FileLock, Timeout

from .errors import CacheError, CorruptEntry
from .types import Artifact
from .files import write_atomic

# Bump whenever the layout or record format changes: old entries then simply stop matching.
SCHEMA_VERSION = 1

ARTIFACT_FILE = "artifact.bin"
RECORD_FILE = "record.json"
LOCKS_DIR = "locks"
_TMP_PREFIX = ".tmp-"
_KIND = re.compile(r"[a-z0-9][a-z0-9_-]*")
_RECORD_FIELDS = {"key": str, "kind": str, "size_bytes": int, "sha256": str}

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")


class CacheWarning(UserWarning):
    """A cache problem that does not fail the test: a corrupt entry, an unwritable directory."""


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


@dataclass
class CacheEvent:
    """How one artifact was obtained.

    outcome: hit | miss | rebuilt (entry was corrupt) | replaced (--trt-rebuild) |
    memory (the caller's in-session memo) | uncached (no persistent cache).
    ``build_s`` is time spent building in this call; ``saved_s`` is, for a hit, the recorded build
    time minus the load time.
    """

    kind: str
    key: str
    outcome: str
    build_s: float = 0.0
    load_s: float = 0.0
    size_bytes: int = 0
    saved_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _record_time(entry: Path, name: str) -> float:
    """Epoch seconds of an ISO time in an entry's record; 0 (oldest) when missing or unreadable."""
    try:
        return datetime.fromisoformat(json.loads((entry / RECORD_FILE).read_text())[name]).timestamp()
    except (OSError, ValueError, TypeError, KeyError):
        return 0.0


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _folder_size(path: Path) -> int:
    return sum(entry.stat().st_size for entry in os.scandir(path) if entry.is_file())


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
    """

    def __init__(
        self,
        root: Path | None,
        *,
        rebuild: bool = False,
        max_size_bytes: int | None = None,
        warn: Callable[[str], None] | None = None,
        lock_timeout_s: float = 3600.0,
        session_start: float | None = None,
    ) -> None:
        self.rebuild = rebuild
        self.max_size_bytes = max_size_bytes
        self.lock_timeout_s = lock_timeout_s
        self.session_start = time.time() if session_start is None else session_start
        self.stats = CacheStats()
        self.events: list[CacheEvent] = []
        self._warn = warn if warn is not None else _default_warn
        self._used: set[str] = set()  # keys this process read or wrote: eviction spares them
        self._rebuild_done: set[str] = set()  # keys already rebuilt under --trt-rebuild
        self.root: Path | None = None
        if root is not None:
            self.root = Path(root)
            self.stats.root = str(self.root)
            try:
                (self.root / LOCKS_DIR).mkdir(parents=True, exist_ok=True)
                probe = self.root / LOCKS_DIR / f".probe-{os.getpid()}"
                write_atomic(probe, b"")
                probe.unlink()
            except OSError as exc:
                self._disable(f"the directory cannot be written: {exc}")

    # ---- keys and paths -------------------------------------------------------------------

    def key(self, kind: str, parts: Mapping[str, Any]) -> str:
        """sha256 of the canonical JSON of the schema version, ``kind`` and ``parts``."""
        if not isinstance(kind, str) or not _KIND.fullmatch(kind) or kind == LOCKS_DIR:
            raise CacheError(
                f"cache kind must be lower-case letters, digits, '-' or '_' (not {LOCKS_DIR!r}), got {kind!r}"
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
        with self._locked(kind, key) as locked:
            if not locked:
                return self._build_and_load(kind, key, parts, build, load, "uncached")
            outcome, found = self._lookup(kind, key, load)
            if found is not None:
                return found
            return self._build_and_load(kind, key, parts, build, load, outcome)

    def get_bytes(self, kind: str, parts: Mapping[str, Any]) -> bytes | None:
        """The stored bytes for (kind, parts), or None (absent, corrupt, or --trt-rebuild)."""
        key = self.key(kind, parts)
        self._used.add(key)
        with self._locked(kind, key) as locked:
            if not locked:
                return None
            outcome, found = self._lookup(kind, key, lambda artifact: artifact.data)
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
        with self._locked(kind, key) as locked:
            if locked:
                self._rebuild_done.add(key)
                self._write(kind, key, parts, Artifact(bytes(data), dict(metadata or {})), build_s)

    def update_bytes(
        self, kind: str, parts: Mapping[str, Any], merge: Callable[[bytes | None], bytes]
    ) -> bytes:
        """Read-modify-write under the key's lock (e.g. merge a TensorRT timing cache); ``merge``
        gets the stored bytes or None and returns what to store. Not counted as hits or misses."""
        key = self.key(kind, parts)
        self._used.add(key)
        with self._locked(kind, key) as locked:
            if not locked:
                return merge(None)
            old: bytes | None = None
            if not self._rebuild_pending(kind, key):
                try:
                    found = self._read(kind, key)
                    old = found[0].data if found else None
                except CorruptEntry as exc:
                    self._drop_corrupt(kind, key, exc)
            new = merge(old)
            if self.root is not None:
                self._write(kind, key, parts, Artifact(bytes(new)), 0.0)
            return new

    def clear(self) -> int:
        """Remove every entry, and temp folders left by killed writers, that no other process
        holds locked right now; returns how many entries."""
        removed = 0
        for kind, key, path in list(self._walk(leftovers=True)):
            if self.root is None:  # a removal failed and turned the cache off
                break
            with self._try_lock(key) as locked:
                if not locked:
                    continue
                if path.name.startswith(_TMP_PREFIX):
                    shutil.rmtree(path, ignore_errors=True)
                elif path.exists():
                    self._remove(kind, key)
                    removed += 1
        return removed

    def evict(self) -> int:
        """Remove least recently used entries until the cache fits ``max_size_bytes``. Entries used
        by this session (this process, or since ``session_start``) and entries locked by another
        process stay. Returns how many were removed."""
        if self.root is None or self.max_size_bytes is None:
            return 0
        entries = []
        for kind, key, path in self._walk():
            try:
                size = _folder_size(path)
            except OSError:
                continue
            entries.append((_record_time(path, "last_used"), size, kind, key))
        total = sum(size for _, size, _, _ in entries)
        evicted = 0
        for last_used, size, kind, key in sorted(entries):
            if total <= self.max_size_bytes:
                break
            if self.root is None:
                break
            if key in self._used or last_used >= self.session_start:
                continue
            with self._try_lock(key) as locked:
                if locked and self.entry_dir(kind, key).exists():
                    self._remove(kind, key)
                    total -= size
                    evicted += 1
        self.stats.evicted += evicted
        return evicted

    # ---- internals ------------------------------------------------------------------------

    def _disable(self, reason: str) -> None:
        if self.root is None:
            return
        root, self.root = self.root, None
        self.stats.root = None
        self._warn(
            f"pytest-trt: engine cache {root} turned off for this session ({reason}); "
            "artifacts are still built, but not kept across runs"
        )

    @contextmanager
    def _locked(self, kind: str, key: str) -> Iterator[bool]:
        """Hold the key's lock; yields False (cache off) when there is no usable directory."""
        if self.root is None:
            yield False
            return
        lock = FileLock(self._lock_path(key), timeout=self.lock_timeout_s)
        try:
            lock.acquire()
        except Timeout:
            raise CacheError(
                f"gave up after {self.lock_timeout_s:g} s waiting for the lock {lock.lock_file} on cache "
                f"entry {kind}/{key[:12]}: another process is still building or reading it"
            ) from None
        except OSError as exc:
            self._disable(f"cannot lock {lock.lock_file}: {exc}")
            yield False
            return
        try:
            self._remove_leftovers(kind, key)
            yield True
        finally:
            lock.release()

    @contextmanager
    def _try_lock(self, key: str) -> Iterator[bool]:
        lock = FileLock(self._lock_path(key))
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def _remove_leftovers(self, kind: str, key: str) -> None:
        """Under the key's lock, temp folders for this key belong to dead writers."""
        assert self.root is not None
        shard = self.root / kind / key[:2]
        for stale in shard.glob(f"{_TMP_PREFIX}{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in (shard / key).glob(".*.tmp"):
            with suppress(OSError):
                stale.unlink()

    def _rebuild_pending(self, kind: str, key: str) -> bool:
        """True the first time this session meets ``key`` under --trt-rebuild, unless the entry was
        already made during this run (by this or another worker)."""
        if not self.rebuild or key in self._rebuild_done:
            return False
        self._rebuild_done.add(key)
        return _record_time(self.entry_dir(kind, key), "created") < self.session_start

    def _lookup(
        self, kind: str, key: str, load: Callable[[Artifact], T]
    ) -> tuple[str, tuple[T, CacheEvent] | None]:
        """(outcome for a build, None) or ("hit", (value, event)). Caller holds the lock."""
        if self._rebuild_pending(kind, key):
            if self.entry_dir(kind, key).exists():
                self._remove(kind, key)
                return "replaced", None
            return "miss", None
        start = time.perf_counter()  # a hit costs the read and checksum too, not just load()
        try:
            found = self._read(kind, key)
            if found is None:
                return "miss", None
            artifact, record = found
            try:
                value = load(artifact)
            except Exception as exc:
                raise CorruptEntry(f"the backend could not load it: {type(exc).__name__}: {exc}") from exc
            load_s = time.perf_counter() - start
        except CorruptEntry as exc:
            self._drop_corrupt(kind, key, exc)
            return "rebuilt", None
        self._touch(kind, key, dict(record, last_load_s=round(load_s, 6)))
        recorded = record.get("build_s")
        saved = max(0.0, recorded - load_s) if isinstance(recorded, (int, float)) else 0.0
        event = CacheEvent(kind, key, "hit", load_s=load_s, size_bytes=len(artifact.data), saved_s=saved)
        self._count(event, built=False)
        return "hit", (value, event)

    def _build_and_load(
        self,
        kind: str,
        key: str,
        parts: Mapping[str, Any],
        build: Callable[[], Artifact],
        load: Callable[[Artifact], T],
        outcome: str,
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
        if self.root is not None:
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
        if event.outcome == "hit":
            stats.hits += 1
            stats.saved_s += event.saved_s
        elif event.outcome in ("miss", "rebuilt", "replaced"):
            stats.misses += 1
        if built:
            stats.builds += 1
        stats.build_s += event.build_s
        stats.load_s += event.load_s

    def _read(self, kind: str, key: str) -> tuple[Artifact, dict[str, Any]] | None:
        entry = self.entry_dir(kind, key)
        if not entry.exists():
            return None
        try:
            raw_record = (entry / RECORD_FILE).read_bytes()
        except FileNotFoundError:
            raise CorruptEntry(f"{RECORD_FILE} is missing") from None
        except OSError as exc:
            raise CorruptEntry(f"{RECORD_FILE} cannot be read: {exc}") from None
        try:
            record = json.loads(raw_record)
        except ValueError as exc:
            raise CorruptEntry(f"{RECORD_FILE} is not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise CorruptEntry(f"{RECORD_FILE} is not a JSON object")
        for name, kind_of in _RECORD_FIELDS.items():
            if not isinstance(record.get(name), kind_of):
                raise CorruptEntry(f"{RECORD_FILE} has no valid {name!r}")
        if record["key"] != key or record["kind"] != kind:
            raise CorruptEntry(f"{RECORD_FILE} belongs to {record['kind']}/{record['key'][:12]}")
        try:
            data = (entry / ARTIFACT_FILE).read_bytes()
        except FileNotFoundError:
            raise CorruptEntry(f"{ARTIFACT_FILE} is missing") from None
        except OSError as exc:
            raise CorruptEntry(f"{ARTIFACT_FILE} cannot be read: {exc}") from None
        if len(data) != record["size_bytes"]:
            raise CorruptEntry(
                f"{ARTIFACT_FILE} has {len(data)} bytes, the record says {record['size_bytes']} (truncated?)"
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest != record["sha256"]:
            raise CorruptEntry(
                f"{ARTIFACT_FILE} sha256 {digest[:12]}.. does not match the recorded {record['sha256'][:12]}.."
            )
        metadata = record.get("metadata")
        return Artifact(data, dict(metadata) if isinstance(metadata, dict) else {}), record

    def _drop_corrupt(self, kind: str, key: str, exc: CorruptEntry) -> None:
        self.stats.corrupt += 1
        self._warn(f"pytest-trt: corrupt cache entry {self.entry_dir(kind, key)} ({exc}); removed, rebuilding")
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
        tmp: Path | None = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{key}-", dir=entry.parent))
            _write_durably(tmp / ARTIFACT_FILE, artifact.data)
            _write_durably(tmp / RECORD_FILE, text.encode())
            if entry.exists():
                self._remove(kind, key)
            os.replace(tmp, entry)
        except OSError as exc:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            self._disable(f"writing {entry} failed: {exc}")

    def _touch(self, kind: str, key: str, record: dict[str, Any]) -> None:
        """Record a hit: last_used drives eviction, last_load_s shows what the hit cost."""
        record = dict(record, last_used=_now())
        text = json.dumps(record, sort_keys=True, indent=2) + "\n"
        try:
            write_atomic(self.entry_dir(kind, key) / RECORD_FILE, text.encode())
        except OSError as exc:
            self._disable(f"updating {self.entry_dir(kind, key) / RECORD_FILE} failed: {exc}")

    def _remove(self, kind: str, key: str) -> None:
        """Move the entry aside in one rename, then delete it: never a half-deleted entry."""
        entry = self.entry_dir(kind, key)
        doomed = entry.parent / f"{_TMP_PREFIX}{key}-removed-{uuid.uuid4().hex}"
        try:
            os.replace(entry, doomed)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._disable(f"removing {entry} failed: {exc}")
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def _walk(self, *, leftovers: bool = False) -> Iterator[tuple[str, str, Path]]:
        """(kind, key, folder) of every entry on disk, and with ``leftovers`` of temp folders."""
        if self.root is None or not self.root.is_dir():
            return
        for kind_dir in sorted(self.root.iterdir()):
            if not kind_dir.is_dir() or kind_dir.name == LOCKS_DIR or not _KIND.fullmatch(kind_dir.name):
                continue
            for shard in kind_dir.iterdir():
                if not shard.is_dir() or len(shard.name) != 2:
                    continue
                for entry in shard.iterdir():
                    if not entry.is_dir():
                        continue
                    if not entry.name.startswith("."):
                        yield kind_dir.name, entry.name, entry
                    elif leftovers and entry.name.startswith(_TMP_PREFIX):
                        key = entry.name[len(_TMP_PREFIX):].split("-", 1)[0]
                        yield kind_dir.name, key, entry
