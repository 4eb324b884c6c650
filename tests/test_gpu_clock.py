"""Warm-up to the GPU's working clock and the clock each GPU measurement records, driven by a
scripted GPU session and a fake NVML (no GPU, no sleeping, no timing asserts)."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from test_measure import FakeRunner, ScriptedSession, settings

from pytest_trt import fingerprint
from pytest_trt.measure_defaults import GPU_WARMUP_MAX_MS, GPU_WINDOW_MS
from pytest_trt.timing import gpu_clock
from pytest_trt.timing.gpu_clock import ClockSource, Settled
from pytest_trt.timing.measure import PerfResult, measure

IDLE, WORKING = 345.0, 1980.0


class RampingGpu:
    """A GPU whose SM clock rises from IDLE once it has run ``ramp_ms`` of work (the session's
    GPU time so far); each iteration's latency scales with the inverse of the clock. ``clock``
    maps GPU time to MHz."""

    def __init__(self, clock: Callable[[float], float], work_ms: float = 1.0) -> None:
        self.clock = clock
        self.work_ms = work_ms  # at WORKING MHz
        self.elapsed_ms = 0.0
        self.session = ScriptedSession(self._latency)

    def _latency(self, i: int) -> float:
        ms = self.work_ms * WORKING / self.clock(self.elapsed_ms)
        self.elapsed_ms += ms
        return ms

    def mhz(self) -> float:
        return self.clock(self.elapsed_ms)


def ramp(after_ms: float, low: float = IDLE, high: float = WORKING) -> Callable[[float], float]:
    """The idle clock for ``after_ms`` of work, then the working one."""
    return lambda elapsed: low if elapsed < after_ms else high


def linear(over_ms: float) -> Callable[[float], float]:
    """A clock rising steadily from idle to working over ``over_ms`` of work."""
    return lambda elapsed: IDLE + (WORKING - IDLE) * min(1.0, elapsed / over_ms)


class FakeNvml(types.ModuleType):
    """The part of pynvml gpu_clock uses; the clock comes from ``read``."""

    NVML_CLOCK_SM = 1

    class NVMLError(Exception):
        pass

    def __init__(self, read: Callable[[], float], max_mhz: float = WORKING, init_error: str = "") -> None:
        super().__init__("pynvml")
        self._read = read
        self._max = max_mhz
        self._init_error = init_error
        self.looked_up: list[tuple[str, Any]] = []

    def nvmlInit(self) -> None:
        if self._init_error:
            raise self.NVMLError(self._init_error)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        self.looked_up.append(("uuid", uuid))
        return "gpu"

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        self.looked_up.append(("index", index))
        return "gpu"

    def nvmlDeviceGetClockInfo(self, handle: str, kind: int) -> float:
        assert (handle, kind) == ("gpu", self.NVML_CLOCK_SM)
        return self._read()

    def nvmlDeviceGetMaxClockInfo(self, handle: str, kind: int) -> float:
        return self._max


@pytest.fixture(autouse=True)
def fresh_readers(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(fingerprint, "gpu_facts", lambda index=0: None)
    gpu_clock.reader_for.cache_clear()
    yield
    gpu_clock.reader_for.cache_clear()


def with_nvml(monkeypatch: pytest.MonkeyPatch, nvml: FakeNvml | None) -> None:
    if nvml is None:
        monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    else:
        monkeypatch.setitem(sys.modules, "pynvml", nvml)


class GpuRunner(FakeRunner):
    device = "cuda:0"


def measure_gpu(gpu: RampingGpu, **kw: Any) -> PerfResult:
    base = {"warmup_ms": 200.0, "min_iterations": 50, "min_duration_ms": 1000.0}
    return measure(GpuRunner(gpu.session), {"x": np.zeros(1)}, settings(**{**base, **kw}), batch=1)


def test_warm_up_goes_on_until_the_sm_clock_reaches_its_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    # The clock ramps only after 1.5 s of work: a 200 ms warm-up alone timed the idle clock.
    gpu = RampingGpu(ramp(1500.0))
    with_nvml(monkeypatch, FakeNvml(gpu.mhz))
    result = measure_gpu(gpu)
    assert result.samples_ms == pytest.approx([1.0] * len(result.samples_ms))
    clock = result.gpu_clock
    assert clock is not None
    assert (clock.source, clock.settled) == (ClockSource.NVML, Settled.CLOCK_AT_MAX)
    assert (clock.start_mhz, clock.end_mhz, clock.low_mhz, clock.max_mhz) == (WORKING,) * 4
    assert 1500.0 <= clock.warmup_ms < 1500.0 + GPU_WINDOW_MS + 10.0
    assert result.warnings == []


def test_a_capped_gpu_settles_when_its_clock_holds_steady(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = RampingGpu(ramp(0.0, high=1700.0))  # power-capped below the 1980 MHz maximum
    with_nvml(monkeypatch, FakeNvml(gpu.mhz))
    result = measure_gpu(gpu)
    clock = result.gpu_clock
    assert clock is not None and clock.settled is Settled.CLOCK_STEADY
    # Three readings, one per window: the 200 ms warm-up and two windows more.
    assert clock.warmup_ms == pytest.approx(200.0 + 2 * GPU_WINDOW_MS, abs=3.0)
    assert clock.start_mhz == 1700.0


def test_a_clock_that_never_settles_stops_at_the_limit_and_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = (400.0 * 1.03**k for k in range(10**6))  # a clock that keeps climbing, never near its maximum
    gpu = RampingGpu(ramp(0.0))
    with_nvml(monkeypatch, FakeNvml(lambda: next(readings), max_mhz=1e9))
    result = measure_gpu(gpu)
    clock = result.gpu_clock
    assert clock is not None and clock.settled is Settled.LIMIT
    assert GPU_WARMUP_MAX_MS <= clock.warmup_ms < GPU_WARMUP_MAX_MS + GPU_WINDOW_MS + 10.0
    (warning,) = [w for w in result.warnings if w.startswith("GPU warm-up")]
    assert warning.startswith(f"GPU warm-up stopped at {clock.warmup_ms:.0f} ms with the SM clock still moving (")
    assert warning.endswith(
        "MHz in its last windows, maximum 1000000000 MHz): the timings may include the clock's ramp; raise "
        "warmup_ms (--trt-warmup-ms)"
    )


def test_an_idle_clock_holding_steady_under_load_is_not_warm(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = RampingGpu(ramp(900.0))  # holds 345 MHz for 900 ms of work, then jumps
    with_nvml(monkeypatch, FakeNvml(gpu.mhz))
    result = measure_gpu(gpu)
    assert result.gpu_clock is not None and result.gpu_clock.settled is Settled.CLOCK_AT_MAX
    assert result.samples_ms == pytest.approx([1.0] * len(result.samples_ms))


def test_without_nvml_warm_up_lasts_until_two_windows_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = RampingGpu(linear(700.0))
    with_nvml(monkeypatch, None)
    result = measure_gpu(gpu)
    assert result.samples_ms == pytest.approx([1.0] * len(result.samples_ms), rel=0.03)
    clock = result.gpu_clock
    assert clock is not None
    assert (clock.source, clock.settled) == (ClockSource.NONE, Settled.WINDOWS_AGREE)
    assert clock.unread == "pynvml (nvidia-ml-py) is not installed"
    assert (clock.start_mhz, clock.end_mhz) == (None, None)
    assert clock.warmup_ms > 700.0


def test_without_nvml_and_paces_that_never_agree_it_stops_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = RampingGpu(lambda elapsed: IDLE * 1.0005**elapsed)  # 5% faster every 100 ms of work
    with_nvml(monkeypatch, None)
    result = measure_gpu(gpu)
    assert result.gpu_clock is not None and result.gpu_clock.settled is Settled.LIMIT
    (warning,) = [w for w in result.warnings if w.startswith("GPU warm-up")]
    assert f"with no two successive {GPU_WINDOW_MS:g} ms windows within 3% of each other (last: " in warning


def test_the_old_fixed_warm_up_timed_the_ramp(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the fixed 200 ms warm-up measured on the same GPU: the idle clock, 5.7x slow."""
    gpu = RampingGpu(ramp(1500.0))
    gpu.session.clock = "host"  # a host-clock session warms up for warmup_ms only
    result = measure_gpu(gpu)
    assert result.samples_ms[0] == pytest.approx(WORKING / IDLE)
    assert result.gpu_clock is None


def test_a_clock_falling_while_timing_is_warned_of(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = RampingGpu(lambda elapsed: WORKING if elapsed < 700.0 else 1500.0)
    with_nvml(monkeypatch, FakeNvml(gpu.mhz))
    result = measure_gpu(gpu)
    clock = result.gpu_clock
    assert clock is not None and (clock.start_mhz, clock.low_mhz, clock.end_mhz) == (WORKING, 1500.0, 1500.0)
    assert ("the GPU's SM clock fell from 1980 to 1500 MHz while timing (power or thermal limit, or other work "
            "on the GPU): the timings mix two clocks") in result.warnings


def test_no_warm_up_asked_for_still_records_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = RampingGpu(ramp(0.0))
    with_nvml(monkeypatch, FakeNvml(gpu.mhz))
    result = measure_gpu(gpu, warmup_ms=0.0)
    clock = result.gpu_clock
    assert clock is not None and (clock.settled, clock.warmup_ms, clock.start_mhz) == (Settled.NO_WARMUP, 0.0, WORKING)


def test_the_clock_is_in_the_result_not_in_the_mode_baselines_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = RampingGpu(ramp(0.0))
    with_nvml(monkeypatch, FakeNvml(gpu.mhz))
    result = measure_gpu(gpu)
    plain = json.loads(json.dumps(result.as_dict()))
    assert plain["gpu_clock"] == {
        "source": "nvml", "settled": "clock-at-max", "warmup_ms": plain["gpu_clock"]["warmup_ms"],
        "start_mhz": WORKING, "end_mhz": WORKING, "low_mhz": WORKING, "max_mhz": WORKING, "unread": "",
    }
    assert "gpu_clock" not in plain["mode"] and not any("mhz" in key for key in plain["mode"])
    assert gpu_clock.describe(plain["gpu_clock"]).startswith(
        "SM clock 1980 -> 1980 MHz (lowest 1980, max 1980; nvml); warm-up 0.20 s, until the SM clock reached its maximum"
    )


def test_the_gpu_is_found_in_nvml_by_its_cuda_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml(lambda: WORKING)
    with_nvml(monkeypatch, nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # NVML's index 0 is another GPU then
    monkeypatch.setattr(fingerprint, "gpu_facts", lambda index=0: {"uuid": "0123456789abcdef0123456789abcdef"})
    reader, unread = gpu_clock.reader_for("cuda:0")
    assert reader is not None and unread == ""
    assert nvml.looked_up == [("uuid", "GPU-01234567-89ab-cdef-0123-456789abcdef")]


def test_without_a_uuid_under_cuda_visible_devices_the_clock_is_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml(lambda: WORKING)
    with_nvml(monkeypatch, nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert gpu_clock.reader_for("cuda:0") == (None, "NVML: cuda:0 has no UUID to find it by under CUDA_VISIBLE_DEVICES")
    assert nvml.looked_up == []


def test_nvml_that_fails_to_start_falls_back_to_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = RampingGpu(ramp(0.0))
    with_nvml(monkeypatch, FakeNvml(gpu.mhz, init_error="Driver Not Loaded"))
    result = measure_gpu(gpu)
    clock = result.gpu_clock
    assert clock is not None
    assert (clock.source, clock.settled, clock.unread) == (ClockSource.NONE, Settled.WINDOWS_AGREE, "NVML: Driver Not Loaded")
    assert gpu_clock.describe(clock.as_dict()).startswith("SM clock not read (NVML: Driver Not Loaded); warm-up 0.30 s")


def test_a_runner_naming_no_gpu_is_judged_by_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = RampingGpu(ramp(0.0))
    with_nvml(monkeypatch, FakeNvml(gpu.mhz))
    result = measure(FakeRunner(gpu.session), {"x": np.zeros(1)}, settings(warmup_ms=200.0), batch=1)
    clock = result.gpu_clock
    assert clock is not None and (clock.source, clock.unread) == (ClockSource.NONE, "the runner names no GPU it runs on")
