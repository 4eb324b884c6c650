"""Where the cache keeps what, under its root, and how to find what it wrote::

    PYTEST_TRT_CACHE                      the marker: this folder is a cache pytest-trt made
    <kind>/<key[:2]>/<key>/artifact.bin   the bytes, exactly as built
    <kind>/<key[:2]>/<key>/record.json    what went into the key, sizes, sha256, times
    <kind>/<key[:2]>/.tmp-<key>-*/        an entry being written (or left by a killed writer)
    locks/<key>.lock                      one cross-process lock per key
    locks/<key>.owner                     who holds it (pid, host, since when)
    work/<pid>-<random>/                  one process's scratch files (see workdirs.py)

The name patterns here decide what the cache may consider its own: nothing else is ever deleted.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_trt.store.regular_files import describe_mode

ARTIFACT_FILE = "artifact.bin"
RECORD_FILE = "record.json"
MARKER_FILE = "PYTEST_TRT_CACHE"
LOCKS_DIR = "locks"
WORK_DIR = "work"
TMP_PREFIX = ".tmp-"
RESERVED_KINDS = (LOCKS_DIR, WORK_DIR)
KIND = re.compile(r"[a-z0-9][a-z0-9_-]*")
_KEY = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")
# Every name the cache writes inside an entry folder (or its temp folders): anything else in one
# means the folder is not only ours, and it is left alone.
OWN_ENTRY_NAMES = re.compile(rf"{re.escape(ARTIFACT_FILE)}|{re.escape(RECORD_FILE)}|\.{re.escape(RECORD_FILE)}\..+\.tmp")
OWN_TMP_FOLDER = re.compile(rf"{re.escape(TMP_PREFIX)}([0-9a-f]{{64}})-.+")


def entry_dir(root: Path, kind: str, key: str) -> Path:
    return root / kind / key[:2] / key


def lock_path(root: Path, key: str) -> Path:
    return root / LOCKS_DIR / f"{key}.lock"


def owner_path(root: Path, key: str) -> Path:
    return root / LOCKS_DIR / f"{key}.owner"


def leftover_prefix(key: str) -> str:
    """How the temp folders of ``key``'s writers start."""
    return f"{TMP_PREFIX}{key}-"


def is_leftover_of(name: str, key: str) -> bool:
    return name.startswith(leftover_prefix(key)) and OWN_TMP_FOLDER.fullmatch(name) is not None


def entry_path_problem(root: Path, kind: str, key: str) -> tuple[Path, str] | None:
    """(path, what it is) for the first of the kind folder, shard and entry that is neither absent
    nor a real folder (a link, a file, unreadable), or None when the entry's path is clear."""
    path = root
    for name in (kind, key[:2], key):
        path = path / name
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            return path, f"unreadable ({exc})"
        if not stat.S_ISDIR(mode):
            return path, describe_mode(mode) if stat.S_ISLNK(mode) else "not a folder"
    return None


@dataclass(frozen=True)
class FoundFolder:
    """An entry folder, or a temp folder left by a writer (``leftover``), where the cache puts them."""

    kind: str
    key: str
    path: Path
    leftover: bool


def walk(root: Path, links: list[str] | None = None) -> Iterator[FoundFolder]:
    """Every entry and temp folder laid out the way the cache writes them. Links are never
    followed; those met are noted in ``links``."""
    for kind_dir in _scan(root, links):
        if kind_dir.name in RESERVED_KINDS or not KIND.fullmatch(kind_dir.name):
            continue
        for shard in _scan(Path(kind_dir.path), links):
            if not _SHARD.fullmatch(shard.name):
                continue
            for entry in _scan(Path(shard.path), links):
                leftover = OWN_TMP_FOLDER.fullmatch(entry.name)
                if leftover is not None:
                    yield FoundFolder(kind_dir.name, leftover.group(1), Path(entry.path), True)
                elif _KEY.fullmatch(entry.name) and entry.name.startswith(shard.name):
                    yield FoundFolder(kind_dir.name, entry.name, Path(entry.path), False)


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
