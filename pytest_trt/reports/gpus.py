"""Which xdist worker ran on which GPU (``--trt-gpus``), and how long each waited for that GPU's
measurement lock: read from the records' ``gpu`` placements, for the terminal summary and the
JSON report's ``meta``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_trt.judge.records import TestRecord


@dataclass(frozen=True)
class WorkerOnGpu:
    """One process's share of the run on one GPU: its gated tests and its lock waits."""

    worker: str  # "" outside xdist
    index: int
    name: str
    uuid: str
    tests: int
    lock_wait_s: float


def workers_on_gpus(records: Sequence[TestRecord]) -> list[WorkerOnGpu]:
    """One entry per (worker, GPU) that ran gated tests on a GPU backend, by GPU then worker."""
    found: dict[tuple[str, int, str], WorkerOnGpu] = {}
    for record in records:
        gpu = record.gpu
        if gpu is None:
            continue
        key = (gpu.worker, gpu.index, gpu.uuid)
        waited = record.perf.lock_wait_s if record.perf is not None else 0.0
        known = found.get(key)
        tests, total = (known.tests, known.lock_wait_s) if known is not None else (0, 0.0)
        found[key] = WorkerOnGpu(gpu.worker, gpu.index, gpu.name, gpu.uuid, tests + 1, total + waited)
    return sorted(found.values(), key=lambda w: (w.index, _worker_order(w.worker)))


def _worker_order(worker: str) -> tuple[int, str]:
    digits = worker[2:] if worker.startswith("gw") else ""
    return (int(digits), worker) if digits.isdigit() else (-1, worker)


def summary_lines(records: Sequence[TestRecord]) -> list[str]:
    """A line per GPU: its workers and each one's wait for the GPU's measurement lock. Nothing
    for a run of one process on one GPU, where there is nothing to share out."""
    placed = workers_on_gpus(records)
    if not placed or (len({w.index for w in placed}) == 1 and not any(w.worker for w in placed)):
        return []
    lines = []
    for index in sorted({w.index for w in placed}):
        on_it = [w for w in placed if w.index == index]
        name = f" ({on_it[0].name})" if on_it[0].name else ""
        count = f"{len(on_it)} worker{'s' if len(on_it) != 1 else ''}"
        waits = ", ".join(f"{w.worker or 'main'} {w.lock_wait_s:.1f} s" for w in on_it)
        lines.append(f"GPU {index}{name}: {count} ({sum(w.tests for w in on_it)} tests); "
                     f"waited for its measurement lock: {waits}")
    return lines
