"""The host-speed probe: the same workload every time, on buffers whose placement cannot vary."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_trt.timing import host_probe
from pytest_trt.timing.host_probe import HostProbe


def test_the_probe_buffers_start_on_a_cache_line() -> None:
    # numpy guarantees 16 bytes; where the operands started moved the probe's speed by a few
    # percent from one measurement to the next.
    for _ in range(20):
        probe = HostProbe()
        for buffer in (probe._a, probe._b, probe._out):
            assert buffer.ctypes.data % host_probe.ALIGNMENT == 0
            assert buffer.shape == (host_probe.SIZE, host_probe.SIZE) and buffer.dtype == np.float32


def test_aligned_copies_keep_the_values() -> None:
    values = np.random.default_rng(1).standard_normal((5, 7)).astype(np.float32)
    copy = host_probe._aligned(values)
    assert copy.ctypes.data % host_probe.ALIGNMENT == 0
    np.testing.assert_array_equal(copy, values)


def test_the_probe_computes_the_product_and_times_it() -> None:
    probe = HostProbe()
    ms = probe.probe()
    assert ms > 0 and probe.last_ms == ms and HostProbe.fastest_ms <= ms
    np.testing.assert_allclose(probe._out, probe._a @ probe._b, rtol=1e-5, atol=1e-4)


def test_the_probe_kind_names_what_it_times() -> None:
    # A baseline stores it; changing the workload without changing the name would divide new
    # probe times by old ones (regression._probe_change).
    named = f"matmul-f32-{host_probe.SIZE}x{host_probe.SIZE}x{host_probe.REPEATS}-aligned-warm"
    assert named == host_probe.KIND


@pytest.mark.parametrize("kind", [None, "matmul-f32-48x48x16"])
def test_entries_validate_the_probe_name(kind) -> None:
    from pytest_trt.baselines.validation import validate_entry

    entry = {
        "latency_ms": {"n": 100, "quantiles": {"p0": 1.0, "p50": 1.1}},
        "host_probe_ms": {"n": 50, "quantiles": {"p0": 0.04, "p50": 0.05}},
    }
    if kind is not None:
        entry["host_probe_ms"]["probe"] = kind
    assert validate_entry(entry) == []
    entry["host_probe_ms"]["probe"] = 3
    assert validate_entry(entry) == ["host_probe_ms.probe is 3, must be a string naming the probe"]
