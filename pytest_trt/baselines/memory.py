"""Does a test's engine take more device memory than at its baseline?

Device memory is not noise-bound as time is: the same engine and buffers on the same software
take the same bytes, give or take what an allocator rounds to. So the check is a plain bound,
``MEMORY_TOLERANCE`` over the baseline and more than ``MEMORY_SLACK_BYTES`` in all, judged once.
A growth fails the test where the figure is the engine's own; where it is the GPU's growth since
the session opened (``MemoryChange.engine_own`` False), another process on the GPU can cause it,
so it is a warning (a ``max_device_memory_mb=`` budget still fails).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_trt.baselines.entry import BaselineEntry

MEMORY_TOLERANCE = 0.05
MEMORY_SLACK_BYTES = 2 * 2**20  # the CUDA allocation granularity: a growth within it is rounding
# The GPU's growth since a session opened also holds what a process loads once, on its first
# session's first runs (kernel modules, library handles): 10-14 MB more in a process's first
# session than in a later one for PP-OCRv4 rec on an H100, so whether a test ran first moves it.
GPU_WIDE_SLACK_BYTES = 64 * 2**20
_MIB = 2**20


@dataclass(frozen=True)
class MemoryChange:
    """A measurement's device memory against its baseline's."""

    baseline_bytes: int
    new_bytes: int
    # True where the figure is the engine's own (TensorRT: its activation memory and buffers);
    # False where it is the GPU's growth since the session opened (onnxruntime's GPU providers),
    # which another process's allocations on the same GPU add to.
    engine_own: bool = True

    @property
    def change(self) -> float:
        """The fraction more (negative: less) than the baseline; inf from a baseline of 0."""
        if self.baseline_bytes == 0:
            return 0.0 if self.new_bytes == 0 else float("inf")
        return self.new_bytes / self.baseline_bytes - 1.0

    @property
    def slack_bytes(self) -> int:
        """A growth up to this many bytes is not a regression, whatever its share."""
        return MEMORY_SLACK_BYTES if self.engine_own else GPU_WIDE_SLACK_BYTES

    @property
    def regressed(self) -> bool:
        grown = self.new_bytes - self.baseline_bytes
        return grown > self.slack_bytes and grown > MEMORY_TOLERANCE * self.baseline_bytes

    @property
    def fails(self) -> bool:
        """A growth that fails the test: beyond the tolerance, on a figure that is the engine's own."""
        return self.regressed and self.engine_own

    def message(self) -> str:
        return (
            f"{self.new_bytes / _MIB:.1f} MB vs baseline {self.baseline_bytes / _MIB:.1f} MB "
            f"({self.change * 100:+.1f}%; tolerance {MEMORY_TOLERANCE * 100:g}% and "
            f"{self.slack_bytes / _MIB:g} MB)"
        )


def memory_change(
    baseline: BaselineEntry, device_memory: int | None, *, engine_own: bool = True
) -> MemoryChange | None:
    """The change, where both the baseline and the new measurement know their device memory."""
    if baseline.device_memory_bytes is None or device_memory is None:
        return None
    return MemoryChange(baseline.device_memory_bytes, device_memory, engine_own)
