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
import os
import textwrap
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

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
    DIAGNOSE = "diagnosed"


@dataclass
class Step:
    """One running phase. The caller may change ``phase`` once it knows (a cache hit was a
    load, not a build), add ``detail`` ("50 iterations") and say how long of it was a wait
    (``waited_s``), which the line leaves out."""

    phase: Phase
    subject: str
    detail: str = ""
    waited_s: float = 0.0  # time the work only waited (for another process's lock): not counted


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
        seconds = self._clock() - started - step.waited_s
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
        # live logging writes.
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            write_on_own_line(terminal, f"pytest-trt: {line}")

    return write


def write_on_own_line(terminal: Any, text: str) -> None:
    """``text`` on lines of its own, wrapped at the terminal's width, without breaking pytest's
    progress row: an open row of dots is ended as pytest ends a full one (its percentage, then
    a new line), and the dots go on below without the file name again. At -v, where each test
    has its own line, pytest writes that line anew after ours."""
    writer = getattr(terminal, "_tw", None)  # pytest's TerminalWriter: private, hence the care
    if writer is None or terminal.config.option.verbose > 0 or not terminal.currentfspath:
        for part in _wrapped(text, getattr(writer, "fullwidth", 80)):
            terminal.write_line(part)
        return
    if writer.width_of_current_line > 0:
        fill = getattr(terminal, "_write_progress_information_filling_space", None)
        if getattr(terminal, "_show_progress_info", False) and fill is not None and _row_has_results(terminal):
            fill()
        writer.line()
        _BROKEN_ROWS[terminal] = terminal.currentfspath  # its dots go on, without the name, below
    for part in _wrapped(text, writer.fullwidth):
        writer.line(part)


# The terminal reporters whose row of a file we ended, and that file: its row goes on unnamed.
_BROKEN_ROWS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _row_has_results(terminal: Any) -> bool:
    """Whether the open row holds more than its file's name (pytest names a file before its
    first test's setup, where engines are made): a bare name gets no percentage."""
    if _BROKEN_ROWS.get(terminal) == terminal.currentfspath:
        return True  # a row we continued: dots only
    try:
        name = os.path.relpath(terminal.currentfspath, terminal.startpath)
    except (TypeError, ValueError, AttributeError):
        return True
    return bool(terminal._tw.width_of_current_line > len(name) + 1)


def _wrapped(text: str, width: int) -> list[str]:
    """Lines within the terminal's width (pytest's own stop a column short of it)."""
    return textwrap.wrap(
        text, max(width - 1, 40), subsequent_indent="    ", break_long_words=False, break_on_hyphens=False
    ) or [text]
