"""Writing files so that a reader sees the whole new file or the old one, never half of either."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic_with(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temp file beside ``path``, flush it to disk, then rename it over
    ``path``. A crash or an exception leaves no temp file that a later run would read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:60]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str) -> None:
    """``data`` to ``path`` atomically; text is written as UTF-8."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_atomic_with(path, lambda stream: stream.write(payload))
