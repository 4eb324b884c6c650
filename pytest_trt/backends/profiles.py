"""Optimization profiles for dynamic inputs, as every TensorRT-based backend builds them: the
``profiles`` build option, or each dynamic input's concrete shape for min, opt and max."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_trt.errors import BackendError
from pytest_trt.types import TensorSpec

if TYPE_CHECKING:
    from pytest_trt.model import LoadedModel
    from pytest_trt.spec import BuildSpec


def optimization_profiles(model: LoadedModel, build: BuildSpec) -> dict[str, tuple[tuple[int, ...], ...]]:
    """(min, opt, max) for every input with a dynamic dim, from ``profiles`` or the build's
    concrete ``shapes`` (the engine factory fills in every dynamic input's shape)."""
    given = {}
    for name, triple in dict(build.option_map.get("profiles", {})).items():
        try:
            given[name] = tuple(tuple(int(d) for d in shape) for shape in triple)
        except (TypeError, ValueError):
            raise BackendError(f"profiles[{name!r}] must be (min, opt, max) shapes, got {triple!r}") from None
    unknown = sorted(set(given) - {spec.name for spec in model.inputs})
    if unknown:
        raise BackendError(f"profiles names {unknown}, which are not inputs of {model.path}")
    for spec in model.inputs:
        if spec.name in given:
            check_profile(spec, given[spec.name])
    # Profiled inputs stand in with their opt shape; every other dynamic input needs a shape.
    concrete = {**build.shape_map, **{k: v[1] for k, v in given.items()}}
    for spec in model.inputs:
        if spec.name not in concrete and any(d is None for d in spec.shape):
            raise BackendError(
                f"{model.path}: input {spec.name!r} has dynamic dims {list(spec.shape)}; give its shape in "
                "shapes= (or min/opt/max in profiles=)"
            )
    return {
        spec.name: given.get(spec.name, (concrete[spec.name],) * 3)
        for spec in model.inputs
        if spec.name in given or any(d is None for d in spec.shape)
    }


def check_profile(spec: TensorSpec, triple: tuple[tuple[int, ...], ...]) -> None:
    if len(triple) != 3 or any(len(s) != len(spec.shape) for s in triple):
        raise BackendError(
            f"profile for input {spec.name!r} must be (min, opt, max) shapes of rank {len(spec.shape)}, got {triple}"
        )
    low, opt, high = triple
    for axis, dim in enumerate(spec.shape):
        if dim is not None and not low[axis] == opt[axis] == high[axis] == dim:
            raise BackendError(f"profile for input {spec.name!r}: axis {axis} is fixed at {dim} in the model, got {triple}")
        if not low[axis] <= opt[axis] <= high[axis]:
            raise BackendError(f"profile for input {spec.name!r}: needs min <= opt <= max on axis {axis}, got {triple}")
