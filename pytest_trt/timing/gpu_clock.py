"""The GPU's SM clock around a measurement: warm-up lasts until the GPU runs at its working clock,
and every GPU measurement records the clock it ran at.

A GPU idles at a low clock and its driver raises it only once work keeps arriving (an H200 idles
at 345 MHz and runs at 1980 MHz). A fixed short warm-up then times part of the ramp, and the
first measurements of a process read slow by more than the slowdowns a baseline must catch.

So a timing loop on the GPU's own clock (``cuda-events``) warms up for ``warmup_ms`` and then in
further windows of ``GPU_WINDOW_MS`` until ``WarmUp`` calls it settled, or ``GPU_WARMUP_MAX_MS``
has passed (with a warning): by NVML's SM clock where ``pynvml`` (nvidia-ml-py) is importable
(at ``AT_MAX`` of the GPU's maximum, or ``STEADY_READINGS`` readings under load within
``STEADY`` of each other and above ``STEADY_FLOOR`` of the maximum: a power- or thermally-capped
GPU works below its maximum), else when two successive windows ran at a per-iteration pace within
``WINDOWS_AGREE``. Without a reading, a GPU that held its idle clock under load for two whole
windows before it ramped would pass for warm: the pace cannot tell a low clock from a high one. ``ClockTrack``
then reads the clock before, between and after the timed chunks (never inside one) into a
``GpuClock``, the record reports and the JSON report show.

NVML is imported on first use, never when the plugin loads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from pytest_trt.measure_defaults import GPU_WARMUP_MAX_MS, GPU_WINDOW_MS

AT_MAX = 0.97  # a reading this close to the maximum SM clock is the working clock
STEADY = 0.02  # readings under load within this of each other: the clock has stopped moving
STEADY_READINGS = 3  # ... this many of them, one per window (a single plateau can be a step of the ramp)
STEADY_FLOOR = 0.5  # ... at this share of the maximum or above: a GPU holding its idle clock is not warm
WINDOWS_AGREE = 0.03  # without a clock reading: two windows' paces this close mean the GPU is warm
CLOCK_DROP = 0.05  # the clock falling this far below its value at the start of timing is warned of


class ClockSource(str, Enum):
    """Where the recorded SM clock came from."""

    NVML = "nvml"
    NONE = "none"  # not read (``GpuClock.unread`` says why); warm-up judged by its windows


class Settled(str, Enum):
    """Why a GPU warm-up stopped."""

    CLOCK_AT_MAX = "clock-at-max"  # the SM clock reached AT_MAX of its maximum
    CLOCK_STEADY = "clock-steady"  # STEADY_READINGS readings under load agreed
    WINDOWS_AGREE = "windows-agree"  # two successive windows ran at the same pace
    LIMIT = "limit"  # GPU_WARMUP_MAX_MS passed first: the timings may include the ramp
    NO_WARMUP = "no-warmup"  # warmup_ms=0 asked for none


_SETTLED_TEXT = {
    Settled.CLOCK_AT_MAX: "until the SM clock reached its maximum",
    Settled.CLOCK_STEADY: "until the SM clock held steady",
    Settled.WINDOWS_AGREE: "until two successive windows ran at the same pace",
    Settled.LIMIT: "stopped at its limit before the GPU settled",
    Settled.NO_WARMUP: "none asked for",
}


class SmClock(Protocol):
    """Reads one GPU's SM clock."""

    source: ClockSource
    max_mhz: float | None

    def read_mhz(self) -> float | None:
        """The SM clock now, in MHz, or None where this reading failed."""
        ...


class NvmlClock:
    """One GPU's SM clock through NVML (``pynvml``)."""

    source = ClockSource.NVML

    def __init__(self, nvml: Any, handle: Any) -> None:
        self._nvml = nvml
        self._handle = handle
        self.max_mhz = self._query(nvml.nvmlDeviceGetMaxClockInfo)

    def _query(self, function: Callable[[Any, Any], Any]) -> float | None:
        try:
            value = float(function(self._handle, self._nvml.NVML_CLOCK_SM))
        except self._nvml.NVMLError:
            return None
        return value if value > 0 else None

    def read_mhz(self) -> float | None:
        return self._query(self._nvml.nvmlDeviceGetClockInfo)


def _nvml_uuid(cuda_uuid: str) -> str:
    """NVML's spelling of the 16-byte UUID the CUDA runtime gives: ``GPU-8-4-4-4-12`` hex."""
    h = cuda_uuid.lower()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _handle(nvml: Any, index: int) -> Any:
    """NVML's handle for CUDA device ``index``. NVML numbers every GPU of the host, CUDA only
    the visible ones, so the device is found by its UUID; by index only where all are visible."""
    from pytest_trt.fingerprint import gpu_facts

    uuid = (gpu_facts(index) or {}).get("uuid")
    if isinstance(uuid, str) and len(uuid) == 32:
        return nvml.nvmlDeviceGetHandleByUUID(_nvml_uuid(uuid))
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        raise LookupError(f"cuda:{index} has no UUID to find it by under CUDA_VISIBLE_DEVICES")
    return nvml.nvmlDeviceGetHandleByIndex(index)


@functools.cache
def reader_for(device: str) -> tuple[SmClock | None, str]:
    """(the SM clock of ``device``, "") or (None, why it cannot be read). Cached per process."""
    if not device.startswith("cuda:") or not device[5:].isdigit():
        return None, "the runner names no GPU it runs on"
    try:
        import pynvml
    except ImportError:
        return None, "pynvml (nvidia-ml-py) is not installed"
    try:
        pynvml.nvmlInit()
        reader = NvmlClock(pynvml, _handle(pynvml, int(device[5:])))
    except (pynvml.NVMLError, LookupError) as exc:
        return None, f"NVML: {exc}"
    if reader.read_mhz() is None:
        return None, "NVML gives no SM clock for this GPU"
    return reader, ""


def _mhz(value: float | None) -> str:
    return f"{value:.0f}" if value is not None else "?"


@dataclass
class WarmUp:
    """Judges a GPU warm-up window by window (``window``), by the SM clock where ``reader``
    reads it, else by the windows' paces."""

    reader: SmClock | None
    limit_ms: float = GPU_WARMUP_MAX_MS
    readings: list[float] = field(default_factory=list)  # one per window, under load
    paces: list[float] = field(default_factory=list)  # ms per iteration, one per window
    settled: Settled | None = None
    spent_ms: float = 0.0

    def window(self, pace_ms: float, spent_ms: float) -> bool:
        """A window ended at ``pace_ms`` per iteration, ``spent_ms`` into the warm-up: may
        warm-up stop? Sets ``settled`` when it may."""
        self.spent_ms = spent_ms
        self.paces.append(pace_ms)
        self.settled = self._judge()
        if self.settled is None and spent_ms >= self.limit_ms:
            self.settled = Settled.LIMIT
        return self.settled is not None

    def _judge(self) -> Settled | None:
        mhz = self.reader.read_mhz() if self.reader is not None else None
        if mhz is not None:
            self.readings.append(mhz)
            maximum = self.reader.max_mhz if self.reader is not None else None
            if maximum and mhz >= AT_MAX * maximum:
                return Settled.CLOCK_AT_MAX
            last = self.readings[-STEADY_READINGS:]
            working = not maximum or min(last) >= STEADY_FLOOR * maximum
            if len(last) == STEADY_READINGS and max(last) <= (1.0 + STEADY) * min(last) and working:
                return Settled.CLOCK_STEADY
            return None
        # No reading for this window: judge by the pace of the last two.
        if len(self.paces) >= 2 and abs(self.paces[-1] / self.paces[-2] - 1.0) <= WINDOWS_AGREE:
            return Settled.WINDOWS_AGREE
        return None

    def warning(self) -> str | None:
        """What to tell the user when the warm-up stopped at its limit, else None."""
        if self.settled is not Settled.LIMIT:
            return None
        if self.readings:
            maximum = self.reader.max_mhz if self.reader is not None else None
            state = (f"the SM clock still moving ({', '.join(_mhz(r) for r in self.readings[-STEADY_READINGS:])} "
                     f"MHz in its last windows, maximum {_mhz(maximum)} MHz)")
        else:
            last = ", ".join(f"{p:.4g}" for p in self.paces[-2:])
            state = (f"no two successive {GPU_WINDOW_MS:g} ms windows within {WINDOWS_AGREE:.0%} of each other "
                     f"(last: {last} ms per iteration)")
        return (f"GPU warm-up stopped at {self.spent_ms:.0f} ms with {state}: the timings may include the "
                "clock's ramp; raise warmup_ms (--trt-warmup-ms)")


@dataclass
class GpuClock:
    """The SM clock a GPU measurement ran at (MHz): read just before the first timed chunk
    (``start_mhz``), between chunks (the lowest: ``low_mhz``) and after the last one
    (``end_mhz``), and how the warm-up before it ended."""

    source: ClockSource
    settled: Settled
    warmup_ms: float  # warm-up spent, its chunks' GPU time
    start_mhz: float | None = None
    end_mhz: float | None = None
    low_mhz: float | None = None
    max_mhz: float | None = None  # the GPU's maximum SM clock
    unread: str = ""  # why the clock was not read (source NONE)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.value,
            "settled": self.settled.value,
            "warmup_ms": self.warmup_ms,
            "start_mhz": self.start_mhz,
            "end_mhz": self.end_mhz,
            "low_mhz": self.low_mhz,
            "max_mhz": self.max_mhz,
            "unread": self.unread,
        }


def describe(clock: dict[str, Any]) -> str:
    """One line for a ``GpuClock.as_dict()``: ``SM clock 1980 -> 1965 MHz (lowest 1965, max 1980;
    nvml); warm-up 0.41 s, until the SM clock reached its maximum``."""
    if clock.get("source") == ClockSource.NVML.value:
        read = (f"SM clock {_mhz(clock.get('start_mhz'))} -> {_mhz(clock.get('end_mhz'))} MHz "
                f"(lowest {_mhz(clock.get('low_mhz'))}, max {_mhz(clock.get('max_mhz'))}; nvml)")
    else:
        read = f"SM clock not read ({clock.get('unread') or 'no reader'})"
    try:
        settled = _SETTLED_TEXT[Settled(clock.get("settled"))]
    except ValueError:
        settled = str(clock.get("settled"))
    return f"{read}; warm-up {float(clock.get('warmup_ms') or 0.0) / 1000:.2f} s, {settled}"


class ClockTrack:
    """Reads the SM clock around the timed chunks of one measurement."""

    def __init__(self, reader: SmClock | None, unread: str = "") -> None:
        self._reader = reader
        self._unread = unread
        self._readings: list[float] = []

    def read(self) -> None:
        """Call before the first timed chunk and after each one."""
        if self._reader is not None and (mhz := self._reader.read_mhz()) is not None:
            self._readings.append(mhz)

    def record(self, warm: WarmUp | None, warmup_ms: float) -> GpuClock:
        readings, reader = self._readings, self._reader
        settled = warm.settled if warm is not None and warm.settled is not None else Settled.NO_WARMUP
        if reader is None or not readings:
            return GpuClock(ClockSource.NONE, settled, warmup_ms,
                            unread=self._unread or ("NVML gave no reading" if reader is not None else ""))
        return GpuClock(ClockSource.NVML, settled, warmup_ms, readings[0], readings[-1], min(readings),
                        reader.max_mhz)


def drop_warning(clock: GpuClock) -> str | None:
    """A line when the clock fell during timing (throttling, another process's load), else None."""
    if clock.start_mhz is None or clock.low_mhz is None:
        return None
    if clock.low_mhz >= (1.0 - CLOCK_DROP) * clock.start_mhz:
        return None
    return (f"the GPU's SM clock fell from {_mhz(clock.start_mhz)} to {_mhz(clock.low_mhz)} MHz while timing "
            "(power or thermal limit, or other work on the GPU): the timings mix two clocks")
