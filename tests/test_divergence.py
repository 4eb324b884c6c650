"""Engine vs export vs module: which neighbouring pair misses the tolerance, and the message."""

from __future__ import annotations

import math
from fnmatch import fnmatchcase

import numpy as np
import pytest

from pytest_trt.judge.divergence import Diverged, locate, max_abs_difference
from pytest_trt.specs import make_accuracy_spec

MODULE = {"y": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)}
SPEC = make_accuracy_spec(rtol=1e-3, atol=1e-5)


def _shifted(outputs: dict[str, np.ndarray], by: float) -> dict[str, np.ndarray]:
    return {name: (array + np.float32(by)).astype(np.float32) for name, array in outputs.items()}


@pytest.mark.parametrize(
    ("export_shift", "engine_shift", "diverged", "says"),
    [
        (0.5, 0.5, Diverged.EXPORT, "the export diverged from the torch module: max |export - module| = 0.5; "
         "the engine matches the export (max |engine - export| = 0)"),
        (0.0, 0.25, Diverged.ENGINE, "the engine diverged from the export, which matches the module: "
         "max |engine - export| = 0.25 (max |export - module| = 0)"),
        (0.5, 0.75, Diverged.BOTH, "the export diverged from the torch module (max |export - module| = 0.5) "
         "and the engine from the export (max |engine - export| = 0.25)"),
        (8e-6, 1.6e-5, Diverged.NEITHER, "the export matches the module (max |export - module| = 8*e-06) and the "
         "engine matches the export (max |engine - export| = 8*e-06), each within the tolerance, but together they miss it"),
    ],
)
def test_the_pair_that_misses_the_tolerance_is_named(export_shift, engine_shift, diverged, says):
    export = _shifted(MODULE, export_shift)
    engine = _shifted(MODULE, engine_shift)
    found = locate(engine, export, MODULE, SPEC)
    assert found.diverged is diverged
    assert fnmatchcase(found.message(), says), found.message()


def test_max_abs_difference_reads_shapes_and_nans():
    assert max_abs_difference({"y": np.zeros(3)}, {"y": np.zeros(4)}) == math.inf
    assert math.isnan(max_abs_difference({"y": np.array([np.nan, 0.0])}, {"y": np.zeros(2)}))
    assert max_abs_difference({"y": np.array([np.nan, 1.0])}, {"y": np.array([np.nan, 0.5])}) == 0.5
    assert max_abs_difference({"y": np.array([np.inf])}, {"y": np.array([np.inf])}) == 0.0
    assert max_abs_difference({"ids": np.array([1, 5])}, {"ids": np.array([1, 2])}) == 3.0


def test_an_export_loaded_from_the_cache_is_named_as_possibly_stale():
    export = _shifted(MODULE, 0.5)
    found = locate(export, export, MODULE, SPEC)
    assert "stale" not in found.message()
    said = found.message(export_cached=True)
    assert said.startswith("the export diverged from the torch module: ")
    assert "loaded from the engine cache" in said and "rerun with --trt-rebuild" in said
    engine_only = locate(_shifted(MODULE, 0.25), MODULE, MODULE, SPEC)
    assert "stale" not in engine_only.message(export_cached=True)  # a faithful export is not blamed
