"""Emptying the cache (``--trt-cache-clear``) and keeping it under a size (``--trt-cache-max-size``,
least recently used first). Both delete only entries that are provably the cache's own (a marked
root, the cache's own record for that path, nothing but the cache's file names), never wait for a
lock (an entry another process holds stays), and never follow a link."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_trt.errors import CacheError
from pytest_trt.store.entries import own_record
from pytest_trt.store.folder import CacheFolder
from pytest_trt.store.layout import RECORD_FILE, FoundFolder, walk
from pytest_trt.store.marker import marker_problem
from pytest_trt.store.removal import own_size, removal_refusal, remove_own_files

_SHOWN = 5  # items a clear warning names


def clear(folder: CacheFolder, root: Path) -> int:
    """Remove every entry that is provably the cache's own, and temp folders left by killed
    writers, that no other process holds locked right now; returns how many entries. CacheError
    when the marker is gone. What it finds and cannot show it wrote is named in one warning."""
    problem = marker_problem(root)
    if problem is not None:
        raise CacheError(
            f"--trt-cache-clear: refusing to clear {root}: {problem}, so it is not a cache "
            "pytest-trt made (or the marker was removed); nothing was removed"
        )
    removed = 0
    left: list[str] = []
    for found in list(walk(root, left)):
        if folder.root is None:  # a removal failed and turned the cache off
            break
        with folder.try_lock(found.kind, found.key) as locked:
            if locked:
                removed += _clear_one(folder, found, left)
    if left:
        shown = "; ".join(left[:_SHOWN]) + ("; ..." if len(left) > _SHOWN else "")
        folder.warn(
            f"pytest-trt: --trt-cache-clear left {len(left)} item(s) in {root} that it "
            f"cannot show it wrote: {shown}"
        )
    return removed


def _clear_one(folder: CacheFolder, found: FoundFolder, left: list[str]) -> int:
    """Under the key's lock: 1 when the entry was removed; what is refused goes to ``left``."""
    if found.leftover:
        remove_own_files(found.path)
        return 0
    try:
        refusal = (
            removal_refusal(found.path) if own_record(found.path, found.kind, found.key) is not None
            else f"its {RECORD_FILE} is not this entry's"
        )
    except OSError:  # gone meanwhile, or unreadable: nothing to remove
        return 0
    if refusal is not None:
        left.append(f"{found.path} ({refusal})")
        return 0
    return 1 if folder.remove(found.kind, found.key) else 0


@dataclass(frozen=True)
class Spared:
    """Entries eviction leaves: those this process used (``keys``), and those used since
    ``used_since`` (epoch seconds: this run's other processes)."""

    keys: frozenset[str]
    used_since: float


@dataclass(frozen=True, order=True)
class _Candidate:
    last_used: float
    size: int
    kind: str
    key: str


def evict(folder: CacheFolder, root: Path, max_size_bytes: int, spared: Spared) -> int:
    """Remove least recently used entries until the cache's own entries fit ``max_size_bytes``;
    returns how many. A missing marker is a warning, and nothing is removed."""
    problem = marker_problem(root)
    if problem is not None:
        folder.warn(f"pytest-trt: not evicting anything from {root}: {problem}, so it is not a cache "
                    "pytest-trt made (or the marker was removed)")
        return 0
    candidates = sorted(_own_entries(root))
    total = sum(c.size for c in candidates)
    evicted = 0
    for candidate in candidates:
        if total <= max_size_bytes or folder.root is None:
            break
        if candidate.key in spared.keys or candidate.last_used >= spared.used_since:
            continue
        if _evict_one(folder, candidate):
            total -= candidate.size
            evicted += 1
    return evicted


def _own_entries(root: Path) -> list[_Candidate]:
    found = []
    for entry in walk(root):
        record = own_record(entry.path, entry.kind, entry.key)
        if record is not None:
            found.append(_Candidate(record.last_used, own_size(entry.path), entry.kind, entry.key))
    return found


def _evict_one(folder: CacheFolder, candidate: _Candidate) -> bool:
    with folder.try_lock(candidate.kind, candidate.key) as locked:
        entry = folder.entry_dir(candidate.kind, candidate.key)
        return locked and own_record(entry, candidate.kind, candidate.key) is not None and \
            folder.remove(candidate.kind, candidate.key)
