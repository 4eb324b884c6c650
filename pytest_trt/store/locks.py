"""One cross-process lock per cache key (an OS file lock, released by the kernel when its holder
dies), with an owner record beside it saying who holds it, so that a waiting run can tell."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from pytest_trt.errors import CacheLockTimeout
from pytest_trt.store.layout import lock_path, owner_path
from pytest_trt.store.owners import Liveness, ProcessOwner, read_owner_file, write_owner_file
from pytest_trt.store.regular_files import describe_mode

NOTICE_S = 5.0  # a wait this long names the lock's holder


def acquire_noticing(lock: FileLock, timeout_s: float, notice_s: float, notice: Callable[[], None]) -> bool:
    """Take ``lock`` within ``timeout_s``; if it is not free after ``notice_s``, call ``notice``
    (which names the holder) once and wait for the rest. False when the time ran out. OSError
    when the lock file cannot be opened."""
    first = min(notice_s, timeout_s)
    if _acquired(lock, first):
        return True
    if timeout_s <= first:
        return False
    notice()
    return _acquired(lock, timeout_s - first)


def _acquired(lock: FileLock, timeout_s: float) -> bool:
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        return False
    return True


class KeyLocks:
    """The locks under ``root/locks``. ``acquire`` waits up to ``timeout_s``, telling ``notify``
    who holds the lock after ``notice_s``; ``try_hold`` never waits (clear and eviction)."""

    def __init__(self, root: Path, *, timeout_s: float, notice_s: float, notify: Callable[[str], None]) -> None:
        self.root = root
        self.timeout_s = timeout_s
        self.notice_s = notice_s
        self._notify = notify

    def lock_path(self, key: str) -> Path:
        return lock_path(self.root, key)

    def planted_file(self, key: str) -> tuple[Path, str] | None:
        """(path, what it is) when the lock or owner file is something other than absent or a
        regular file (a planted link is never opened), else None."""
        for path in (lock_path(self.root, key), owner_path(self.root, key)):
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            except OSError:
                return None  # let the lock itself report it
            if not stat.S_ISREG(mode):
                return path, describe_mode(mode)
        return None

    def acquire(self, kind: str, key: str) -> FileLock:
        """The key's lock, held, with our owner record written; release with ``release``.
        CacheLockTimeout when ``timeout_s`` runs out, OSError when the lock cannot be taken."""
        lock = FileLock(self.lock_path(key))

        def notice() -> None:
            self._notify(
                f"pytest-trt: waiting for cache entry {kind}/{key[:12]}, {self._holder(key)}; "
                f"giving up after {self.timeout_s:g} s (--trt-lock-timeout)"
            )

        if not acquire_noticing(lock, self.timeout_s, self.notice_s, notice):
            raise CacheLockTimeout(
                f"gave up after {self.timeout_s:g} s waiting for the lock {lock.lock_file} on cache "
                f"entry {kind}/{key[:12]}, {self._holder(key)}. Wait for that process or stop it, or "
                "raise --trt-lock-timeout (ini trt_lock_timeout) if its builds take longer"
            )
        self._record_owner(key)
        return lock

    def release(self, lock: FileLock, key: str) -> None:
        with suppress(OSError):
            os.unlink(owner_path(self.root, key))
        lock.release()

    @contextmanager
    def try_hold(self, key: str) -> Iterator[bool]:
        """The key's lock if no other process holds it now; False (not held) otherwise. Check
        ``planted_file`` first."""
        lock = FileLock(self.lock_path(key))
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):
            yield False
            return
        self._record_owner(key)
        try:
            yield True
        finally:
            self.release(lock, key)

    def _holder(self, key: str) -> str:
        owner = read_owner_file(owner_path(self.root, key))
        if owner is None:
            return "held by a process that left no owner record (an older pytest-trt or another tool)"
        if owner.liveness() is Liveness.DEAD:
            return (f"whose recorded holder, {owner.describe()}, has exited (a process it started "
                    "may still hold the lock)")
        return f"held by {owner.describe()}"

    def _record_owner(self, key: str) -> None:
        with suppress(OSError):  # advice for waiting runs only: never worth failing a test over
            write_owner_file(owner_path(self.root, key), ProcessOwner.current())
