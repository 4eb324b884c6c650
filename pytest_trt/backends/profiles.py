"""Optimization profiles for dynamic inputs, as every TensorRT-based backend builds them: the
``profile=`` profiles (spec/profiles.py), or each dynamic input's concrete shape for min, opt and
max. The profiles are checked against the model here (names, ranks, fixed dims), for every
backend: the engine factory calls ``check_profiles`` before any build."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pytest_trt.errors import BackendError
from pytest_trt.types import TensorSpec

if TYPE_CHECKING:
    from pytest_trt.model import LoadedModel
    from pytest_trt.specs import BuildSpec

Triple = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
# One dict per optimization profile: input name -> (min, opt, max).
ProfileShapes = list[dict[str, Triple]]


def optimization_profiles(model: LoadedModel, build: BuildSpec) -> ProfileShapes:
    """(min, opt, max) of every dynamic input, one dict per profile: from ``profile=``, with the
    build's concrete ``shapes`` (the engine factory fills in every dynamic input's shape) for the
    dynamic inputs a profile leaves out. Empty where the model has no dynamic input."""
    check_profiles(model, build)
    given = [profile.triples() for profile in build.profiles] or [{}]
    dynamic = [spec for spec in model.inputs if any(d is None for d in spec.shape)]
    result: ProfileShapes = []
    for triples in given:
        concrete = {**build.shape_map, **{k: v[1] for k, v in triples.items()}}
        for spec in dynamic:
            if spec.name not in concrete:
                raise BackendError(
                    f"{model.path}: input {spec.name!r} has dynamic dims {list(spec.shape)}; give its shape in "
                    "shapes= (or min/opt/max in profile=)"
                )
        shapes = {spec.name: triples.get(spec.name, (concrete[spec.name],) * 3) for spec in dynamic}
        result.append({**shapes, **{k: v for k, v in triples.items() if k not in shapes}})
    return result if any(result) else []


def check_profiles(model: LoadedModel, build: BuildSpec) -> None:
    """Every profile names inputs of the model, at their rank, keeping their fixed dims."""
    names = {spec.name for spec in model.inputs}
    for profile in build.profiles:
        unknown = sorted(set(profile.triples()) - names)
        if unknown:
            raise BackendError(
                f"profile names {unknown}, which are not inputs of {model.path} (inputs: {', '.join(sorted(names))})"
            )
        for spec in model.inputs:
            triple = profile.triples().get(spec.name)
            if triple is not None:
                check_profile(spec, triple)


def check_profile(spec: TensorSpec, triple: Triple) -> None:
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


def shape_texts(profiles: Sequence[Mapping[str, Triple]]) -> tuple[str, str, str]:
    """onnxruntime's TensorRT providers' min, opt and max option values: each profile's shapes
    in turn (several profiles repeat an input's name, one entry per profile)."""
    low, opt, high = (",".join(shape_text({n: t[i] for n, t in p.items()}) for p in profiles if p) for i in range(3))
    return low, opt, high


def shape_text(shapes: Mapping[str, Sequence[int]]) -> str:
    """onnxruntime's profile-shape syntax: ``in1:1x3x224x224,in2:1x16``."""
    return ",".join(f"{name}:{'x'.join(str(int(d)) for d in shape)}" for name, shape in shapes.items())
