"""Every error pytest-trt defines derives from PytestTrtError, which the runtest wrapper and the
fixtures turn into a test failure that names what went wrong (errors.py)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import tempfile
import threading
from pathlib import Path

import pytest

import pytest_trt
from pytest_trt.backends.base import BackendError
from pytest_trt.errors import LockTimeoutError, PytestTrtError

# Defined in modules outside this package's error hierarchy so far; each entry must go once its
# class derives from PytestTrtError (the xfail is strict, so a fixed class fails here until then).


def _modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages(pytest_trt.__path__, prefix="pytest_trt.")]


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class a pytest_trt module defines, by qualified name. Warnings are left
    out: they are issued (warnings.warn), never raised to fail a test."""
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and not issubclass(obj, Warning) and obj.__module__ == name:
                found[f"{name}.{obj.__qualname__}"] = obj
    return found


_CLASSES = _exception_classes()


def test_the_walk_finds_the_package_s_errors_in_every_layer() -> None:
    assert "pytest_trt.store.cache.CacheWarning" not in _CLASSES
    for expected in (
        "pytest_trt.errors.BackendError",
        "pytest_trt.backends.trt_api.TensorRTImportError",
        "pytest_trt.run.option_kinds.OptionValueError",
        "pytest_trt.timing.lock.MeasureLockError",
    ):
        assert expected in _CLASSES
    assert len({Path(name.replace(".", "/")).parts[1] for name in _CLASSES}) >= 4


@pytest.mark.parametrize("name", sorted(_CLASSES))
def test_every_error_class_derives_from_the_one_root(name: str) -> None:
    assert issubclass(_CLASSES[name], PytestTrtError), f"{name} bases: {_CLASSES[name].__mro__[1:]}"


def test_errors_callers_catch_as_builtins_keep_that_base() -> None:
    from pytest_trt.backends.trt_api import TensorRTImportError
    from pytest_trt.run.options import OptionValueError

    assert issubclass(TensorRTImportError, ImportError)
    assert issubclass(OptionValueError, ValueError)


def test_a_measurement_lock_timeout_is_a_lock_timeout_not_a_backend_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_trt.timing import lock

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    caught: list[BaseException] = []

    def other() -> None:
        try:
            with lock.measuring("cpu", timeout_s=0.05):
                pass
        except PytestTrtError as exc:
            caught.append(exc)

    with lock.measuring("cpu"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
    assert len(caught) == 1
    assert isinstance(caught[0], LockTimeoutError) and isinstance(caught[0], lock.MeasureLockError)
    assert not isinstance(caught[0], BackendError)


def test_every_lock_timeout_is_its_own_kind_not_a_backend_failure() -> None:
    from pytest_trt.errors import BackendError, BaselineLockTimeout, CacheLockTimeout, LockTimeoutError

    for timeout in (BaselineLockTimeout, CacheLockTimeout):
        assert issubclass(timeout, LockTimeoutError) and not issubclass(timeout, BackendError)
