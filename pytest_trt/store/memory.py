"""How many bytes one read or allocation may take: half the memory available when it is asked
(all of it for a cache entry, which is read once and not copied).

Sizes known before reading (an ``.npz`` member's header, a cache entry's record, the shapes of
generated inputs, a count of calibration batches) are checked against this limit first, so that
a file or an argument larger than memory allows is a clear error instead of a MemoryError, an
allocation that brings the machine to swap, or an abort. Available memory is the smallest of the
system's ``MemAvailable``, the room left in this process's cgroup and in its address-space limit
(``ulimit -v``); where none of them can be read there is no limit. Half, because what is read is
then converted and copied (feeds cut into batches, an engine deserialized beside its bytes).
"""

from __future__ import annotations

import os
from pathlib import Path

_CGROUP = Path("/sys/fs/cgroup")


def limit_bytes() -> int | None:
    """The most bytes one read or allocation may take now; None where memory cannot be read."""
    available = available_bytes()
    return None if available is None else available // 2


def describe_limit(limit: int) -> str:
    """``the memory limit of 11.1 GiB (half the memory available now)``."""
    return f"the memory limit of {format_bytes(limit)} (half the memory available now)"


def describe_available(available: int) -> str:
    """``the 22.2 GiB of memory available now``."""
    return f"the {format_bytes(available)} of memory available now"


def format_bytes(size: int) -> str:
    """``44.7 GiB``: a size in powers of 1024, as people read it."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def available_bytes() -> int | None:
    known = [room for room in (_meminfo_available(), _cgroup_room(), _address_space_room()) if room is not None]
    return max(0, min(known)) if known else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None


def _meminfo_available() -> int | None:
    text = _read(Path("/proc/meminfo"))
    for line in (text or "").splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) >= 2 and parts[1].isdigit() else None
    return None


def _cgroup_room() -> int | None:
    """The cgroup's limit less its usage (cgroup v2, else v1); None without a limit."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        limit, usage = _read(_CGROUP / limit_file), _read(_CGROUP / usage_file)
        if limit is None or usage is None or not limit.isdigit() or not usage.isdigit():
            continue
        if int(limit) >= 2**60:  # v1 writes "no limit" as a huge number
            return None
        return int(limit) - int(usage)
    return None


def _address_space_room() -> int | None:
    """``ulimit -v`` less the address space this process already maps; None without a limit."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    statm = _read(Path("/proc/self/statm"))
    used = int(statm.split()[0]) * os.sysconf("SC_PAGE_SIZE") if statm else 0
    return int(soft) - used
