"""``--trt-gpus``: which GPUs of the host a run uses, and the one this process is pinned to.

A process uses one GPU. Without pytest-xdist that is the first GPU of the list; under ``-n N``
worker ``gwK`` takes ``list[K % len(list)]``, so workers spread round-robin over the GPUs and,
with more workers than GPUs, several share one (their timed windows then queue on that GPU's
measurement lock, timing/lock.py). The device count comes from ``fingerprint.gpu_count`` (the
CUDA driver, so ``CUDA_VISIBLE_DEVICES`` applies), asked only when ``--trt-gpus`` is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_trt.errors import PytestTrtError

ALL = "all"
_WORKER = re.compile(r"gw(\d+)")


class GpusError(PytestTrtError, ValueError):
    """A ``--trt-gpus`` value that is malformed or names GPUs this host does not have. The
    message names the value; the caller adds the option or ini key."""


@dataclass(frozen=True)
class GpuSelection:
    """A ``--trt-gpus`` value as written: every GPU (``all``), the first ``first`` GPUs (``N``),
    or the GPUs at ``indices`` (``0,2,3``; one GPU as ``3,``)."""

    text: str
    first: int | None = None
    indices: tuple[int, ...] = ()

    def resolve(self, count: int) -> tuple[int, ...]:
        """The device indices, checked against the ``count`` GPUs of this host."""
        if count < 1:
            raise GpusError(f"{self.text!r} names GPUs, but no CUDA device is visible here")
        have = f"this host has {count} GPU{'s' if count != 1 else ''} (indices 0-{count - 1})"
        if self.first is not None:
            if self.first > count:
                raise GpusError(f"{self.text!r} asks for the first {self.first} GPUs, but {have}")
            return tuple(range(self.first))
        if self.indices:
            missing = [i for i in self.indices if i >= count]
            if missing:
                raise GpusError(f"{self.text!r} names GPU {', '.join(map(str, missing))}, but {have}")
            return self.indices
        return tuple(range(count))


def parse_gpus(raw: object) -> GpuSelection:
    """``all``, a count ``N`` >= 1, or device indices separated by commas (``0,2,3``; ``3,`` is
    GPU 3 alone). Raises GpusError naming the value."""
    text = str(raw).strip()
    if text.lower() == ALL:
        return GpuSelection(ALL)
    if "," not in text:
        if not text.isdigit() or int(text) < 1:
            raise GpusError(
                f"invalid GPU selection {text!r} (give all, a number of GPUs >= 1, or device indices "
                "separated by commas such as 0,2,3; one GPU by index as 3,)"
            )
        return GpuSelection(text, first=int(text))
    parts = [part.strip() for part in text.split(",")]
    parts = parts[:-1] if parts[-1] == "" and len(parts) > 1 else parts  # "3," is GPU 3
    if not all(part.isdigit() for part in parts):
        raise GpusError(f"invalid GPU index list {text!r} (device indices are whole numbers >= 0: 0,2,3)")
    indices = tuple(int(part) for part in parts)
    twice = sorted({i for i in indices if indices.count(i) > 1})
    if twice:
        raise GpusError(f"{text!r} names GPU {', '.join(map(str, twice))} more than once")
    return GpuSelection(text, indices=indices)


def worker_number(worker_id: str | None) -> int:
    """K of an xdist worker id ``gwK``; 0 outside xdist (the controller or a plain run)."""
    match = _WORKER.fullmatch(worker_id or "")
    return int(match.group(1)) if match else 0


def pinned(gpus: tuple[int, ...], worker_id: str | None) -> int:
    """The GPU of ``worker_id`` among ``gpus``: round-robin by the worker's number."""
    return gpus[worker_number(worker_id) % len(gpus)]
