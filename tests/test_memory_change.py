"""A device memory figure against its baseline's: the engine's own figure is judged to the
allocator's rounding, the GPU-wide figure of onnxruntime's GPU providers beyond what a process
loads once."""

from __future__ import annotations

import pytest

from pytest_trt.baselines.memory import GPU_WIDE_SLACK_BYTES, MEMORY_SLACK_BYTES, MemoryChange

MiB = 2**20


@pytest.mark.parametrize(
    ("baseline_mb", "new_mb", "engine_own", "regressed"),
    [
        (300, 301, True, False),  # within the allocator's rounding
        (300, 330, True, True),
        (30, 33, True, True),  # +10% and over 2 MB
        (128, 140, False, False),  # a process's first session loads kernels once: not a growth
        (128, 140, True, True),  # the same growth in the engine's own figure is one
        (300, 400, False, True),
        (2000, 2080, False, False),  # over 64 MB but within 5%
    ],
)
def test_a_growth_regresses_beyond_the_share_and_the_slack_of_its_kind(baseline_mb, new_mb, engine_own, regressed):
    change = MemoryChange(baseline_mb * MiB, new_mb * MiB, engine_own)
    assert change.regressed is regressed
    assert change.fails is (regressed and engine_own)  # a GPU-wide growth is said, never failed


def test_the_message_names_the_slack_it_was_judged_by():
    assert MemoryChange(300 * MiB, 400 * MiB, True).message().endswith("(+33.3%; tolerance 5% and 2 MB)")
    assert MemoryChange(300 * MiB, 400 * MiB, False).message().endswith("(+33.3%; tolerance 5% and 64 MB)")
    assert MEMORY_SLACK_BYTES < GPU_WIDE_SLACK_BYTES
