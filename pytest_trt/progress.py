"""Lines on the terminal about long work: building, loading, converting or calibrating a model,
computing its reference outputs, measuring. Quiet when things are fast.

A phase prints one line when it ends, and only when it took longer than ``THRESHOLD_S``
("built cnn.onnx for onnxruntime in 11.4 s"); a measurement, whose length the settings ask for,
only when it ran a second or more past what they asked. No timer thread: a line at the end of
each long phase says where the time went, and the one phase that is long by nature, a TensorRT
build, narrates itself through the backend's progress monitor (``note``). Lines go to the
terminal past pytest's output capture, on their own line, never into the progress dots; never
under an xdist worker (its output is not the terminal) nor at ``-q``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

THRESHOLD_S = 1.0  # a phase shorter than this passes in silence

Write = Callable[[str], None]


class Phase(str, Enum):
    """A kind of long work; the value is the verb of its line."""

    BUILD = "built"
    LOAD = "loaded"
    CONVERT = "converted"
    CALIBRATE = "calibrated"
    REFERENCE = "computed"
    MEASURE = "measured"
    REMEASURE = "re-measured"


@dataclass
class Step:
    """One running phase. The caller may change ``phase`` once it knows (a cache hit was a
    load, not a build) and add ``detail`` ("50 iterations")."""

    phase: Phase
    subject: str
    detail: str = ""


class Progress:
    """The progress sink the engine factory and the gates get: ``with progress.phase(...)``
    around long work. ``Progress()`` writes nothing (tests, library use)."""

    def __init__(
        self,
        write: Write | None = None,
        threshold_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._write = write
        self._threshold_s = THRESHOLD_S if threshold_s is None else threshold_s
        self._clock = clock

    @contextlib.contextmanager
    def phase(self, phase: Phase, subject: str, expected_s: float = 0.0) -> Iterator[Step]:
        """Time the block; when it took ``threshold_s`` longer than ``expected_s`` (what the
        user asked for, e.g. a measurement's minimum duration), print its line. A phase that
        raises prints nothing: its error is what the user reads."""
        step = Step(phase, subject)
        started = self._clock()
        yield step
        seconds = self._clock() - started
        if self._write is not None and seconds >= expected_s + self._threshold_s:
            detail = f" ({step.detail})" if step.detail else ""
            self._write(f"{step.phase.value} {step.subject} in {seconds:.1f} s{detail}")

    def note(self, line: str) -> None:
        """A line a backend reports about its own long work (TensorRT's build phases)."""
        if self._write is not None:
            self._write(line)


def terminal_writer(config: pytest.Config) -> Write | None:
    """Where this process's progress lines go: pytest's terminal, or None under an xdist worker,
    at ``-q`` or without a terminal reporter."""
    if hasattr(config, "workerinput") or config.option.verbose < 0:
        return None

    def write(line: str) -> None:
        plugins = config.pluginmanager
        terminal = plugins.get_plugin("terminalreporter")
        if terminal is None:
            return
        capture = plugins.get_plugin("capturemanager")
        # Past the capture of the running test (engines are built in its setup), as pytest's
        # live logging writes; write_line starts a new line if the dots line is open.
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            terminal.write_line(f"pytest-trt: {line}")

    return write
