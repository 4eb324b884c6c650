"""Reading files that others can plant things in (a shared cache): only regular files, never
through a symbolic link, never more bytes than the caller expects. A FIFO would block ``open``
and a link to ``/dev/zero`` would read until memory runs out; both are refused instead."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from pytest_trt.errors import PytestTrtError

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)  # a link in the last component fails with ELOOP
    | getattr(os, "O_NONBLOCK", 0)  # opening a FIFO returns at once instead of waiting for a writer
    | getattr(os, "O_BINARY", 0)
)

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


class NotRegularFile(PytestTrtError, OSError):
    """The path is a symbolic link, a FIFO, a device, a socket or a folder. An OSError too, so
    that callers reading a file can catch every reason it could not be read in one clause."""


class FileTooLarge(PytestTrtError, OSError):
    """The file holds more bytes than the caller allowed (an OSError too, like NotRegularFile)."""


def is_real_dir(path: Path) -> bool:
    """A folder itself, not a symbolic link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def describe_mode(mode: int) -> str:
    """'a FIFO (named pipe)', 'a symbolic link', ... for a file that is not regular."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes`` of them.

    Raises FileNotFoundError when absent, NotRegularFile for anything but a regular file (a link
    is refused, not followed), FileTooLarge when it holds more than ``max_bytes``, OSError else."""
    if not hasattr(os, "O_NOFOLLOW") and os.path.islink(path):
        raise NotRegularFile(errno.ELOOP, "a symbolic link", str(path))
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(errno.ELOOP, "a symbolic link", str(path)) from None
        raise
    with os.fdopen(fd, "rb", buffering=0) as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(errno.EINVAL, describe_mode(info.st_mode), str(path))
        if info.st_size > max_bytes:
            raise FileTooLarge(errno.EFBIG, f"{info.st_size} bytes, more than {max_bytes}", str(path))
        # Read one byte past the limit: a file that grew after fstat is caught too. A regular file
        # read returns up to ~2 GiB per call, so an artifact is normally one chunk (no copy).
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = stream.read(max_bytes + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise FileTooLarge(errno.EFBIG, f"more than {max_bytes} bytes", str(path))
        return b"".join(chunks)
