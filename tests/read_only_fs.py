"""A read-only mount, simulated for tests that run as root (root ignores permission bits, so
``chmod -R a-w`` proves nothing there): an audit hook makes every write under the given folders
fail the way a read-only file system does (EROFS), and records each attempt.

Audit hooks cannot be removed, so the hook is installed once per process and only acts on the
folders currently in ``ROOTS``."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOTS: list[str] = []
ATTEMPTS: list[tuple[str, str]] = []  # (audit event, path) of every write refused
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {"os.remove", "os.rmdir", "os.truncate", "os.chmod", "os.chown", "os.utime",
                "os.mkfifo", "os.mknod", "shutil.rmtree"}
_installed = False
_busy = False


def _written_paths(event: str, args: tuple[Any, ...]) -> list[Any]:
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        return [path] if writes else []
    if event == "os.mkdir":
        return [] if os.path.lexists(args[0]) else [args[0]]  # an existing folder says EEXIST first
    if event == "os.rename":
        return [args[0], args[1]]
    if event in ("os.link", "os.symlink"):
        return [args[1]]
    if event in _PATH_EVENTS:
        return [args[0]]
    return []


def _under(path: Any) -> bool:
    if not isinstance(path, (str, bytes, os.PathLike)):
        return False
    full = os.path.abspath(os.fsdecode(path))
    return any(full == root or full.startswith(root + os.sep) for root in ROOTS)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    global _busy
    if not ROOTS or _busy:
        return
    _busy = True
    try:
        refused = [p for p in _written_paths(event, args) if _under(p)]
    finally:
        _busy = False
    if refused:
        ATTEMPTS.append((event, os.fsdecode(refused[0])))
        raise OSError(errno.EROFS, "Read-only file system (simulated)", os.fsdecode(refused[0]))


def install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


@contextmanager
def read_only(root: Path) -> Iterator[list[tuple[str, str]]]:
    """Within the block, ``root`` behaves as a read-only mount; yields the refused writes."""
    install()
    ROOTS.append(os.path.abspath(root))
    ATTEMPTS.clear()
    try:
        yield ATTEMPTS
    finally:
        ROOTS.remove(os.path.abspath(root))
