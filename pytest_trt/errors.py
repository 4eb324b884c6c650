"""Every error a user can cause, under one root.

The runtest wrapper and the fixtures catch ``PytestTrtError`` and turn it into a failure or an
error of the test that names what went wrong; anything else escaping pytest-trt is a bug in it
and keeps its traceback. Each class keeps the builtin base it always had, so callers that catch
``ValueError`` or ``RuntimeError`` keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_trt.types import SetupStep


class PytestTrtError(Exception):
    """Root of every user-facing pytest-trt error; the message names the test input at fault."""

    step: SetupStep | None = None  # which step of making an engine raised it (prepare.engines)


class SpecError(PytestTrtError, ValueError):
    """A mark or option argument is invalid; the message names the argument."""


class SidecarError(SpecError):
    """A model's settings file (``<name>.trt.toml`` beside it, or its folder's ``trt.toml``) is
    invalid: the message names the file, the line (where known) and the key."""

    def __init__(self, file: str, line: int | None, key: str | None, problem: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.problem = problem
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


class ModelError(PytestTrtError, ValueError):
    """The model file or an argument about it is wrong; the message names the file."""


class PrecisionError(PytestTrtError, ValueError):
    """A precision transform cannot be applied to this model; the message names the file."""


class ShapeError(PytestTrtError, ValueError):
    """A shape the engine cannot run: outside its optimization profile(s); the message names
    the input, the shape and the bounds."""


class BackendError(PytestTrtError, RuntimeError):
    """A backend could not build, load or run; the message says which step and why."""


class InferenceError(BackendError):
    """The runtime failed running a feed (which may hold values the model does not accept)."""


class BackendUnavailable(BackendError):
    """The backend cannot run on this machine (missing package, no GPU); the message says why."""


class CudaError(PytestTrtError, RuntimeError):
    """A CUDA call failed; ``call`` and ``error`` name the call and the CUDA error."""

    def __init__(self, call: str, error: str, detail: str = "") -> None:
        self.call = call
        self.error = error
        super().__init__(f"{call} failed: {error}" + (f" ({detail})" if detail else ""))


class CacheError(PytestTrtError, RuntimeError):
    """The cache was used wrongly or could not do its job; the message names the entry or option."""


class CorruptEntry(CacheError):
    """An entry on disk cannot be trusted (missing file, bad record, size or checksum mismatch,
    or the backend could not deserialize it)."""


class BaselineFileError(PytestTrtError):
    """A baseline file cannot be read or safely rewritten; the message names the file."""


class LockTimeoutError(PytestTrtError):
    """Another process held a lock longer than pytest-trt waits for it; the message names the
    lock and, where known, its holder. Not a backend failure: the backend never ran."""


class CacheLockTimeout(CacheError, LockTimeoutError):
    """An engine cache entry's lock was held past --trt-lock-timeout."""


class BaselineLockTimeout(BaselineFileError, LockTimeoutError):
    """The baseline store's lock was held past --trt-lock-timeout."""
