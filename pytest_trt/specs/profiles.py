"""``profile=`` on ``trt_model``: optimization profiles, the shape ranges one engine serves.

A profile gives (min, opt, max) shapes per input, as trtexec's ``--minShapes/--optShapes/
--maxShapes`` do; several profiles are a list of them (``--profile=N``). The plugin checks every
shape it runs against them on every backend, so a suite behaves the same on a CPU as on a GPU
gate; backends that build profiles (TensorRT, onnxruntime's TensorRT providers) get them too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_trt.arguments import Shape, checked_shape
from pytest_trt.errors import ShapeError, SpecError


@dataclass(frozen=True)
class InputBounds:
    """One input's (min, opt, max) shapes in one profile."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.min) and all(
            low <= int(d) <= high for low, d, high in zip(self.min, shape, self.max, strict=True)
        )

    def shown(self) -> str:
        return f"min {self.min}, max {self.max}"


@dataclass(frozen=True)
class ShapeProfile:
    """One optimization profile: the inputs it bounds, by name."""

    inputs: tuple[InputBounds, ...]

    def bounds(self, name: str) -> InputBounds | None:
        return next((b for b in self.inputs if b.name == name), None)

    def outside(self, shapes: Mapping[str, Sequence[int]]) -> list[tuple[str, InputBounds]]:
        """The inputs of ``shapes`` this profile bounds whose shape it does not contain."""
        return [(b.name, b) for b in self.inputs if b.name in shapes and not b.contains(shapes[b.name])]

    @property
    def opt_shapes(self) -> dict[str, Shape]:
        return {b.name: b.opt for b in self.inputs}

    def triples(self) -> dict[str, tuple[Shape, Shape, Shape]]:
        return {b.name: (b.min, b.opt, b.max) for b in self.inputs}

    def as_dict(self) -> dict[str, list[list[int]]]:
        return {b.name: [list(b.min), list(b.opt), list(b.max)] for b in self.inputs}


def make_profiles(value: Any) -> tuple[ShapeProfile, ...]:
    """``profile=``: one dict of input -> (min, opt, max), or a list of such dicts (several
    profiles, tried in order). Raises SpecError naming the argument."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return (_profile(value, "profile"),)
    if isinstance(value, (list, tuple)) and value and all(isinstance(p, Mapping) for p in value):
        return tuple(_profile(p, f"profile[{i}]") for i, p in enumerate(value))
    raise SpecError(
        "profile must be a dict of input name -> (min, opt, max) shapes, or a list of such dicts "
        f"(one per optimization profile), got {value!r}"
    )


def _profile(value: Mapping[Any, Any], arg: str) -> ShapeProfile:
    if not value:
        raise SpecError(f"{arg} names no input; give input name -> (min, opt, max) shapes")
    bounds = []
    for name, triple in value.items():
        if not isinstance(name, str) or not name:
            raise SpecError(f"{arg}: input names must be non-empty strings, got {name!r}")
        if not isinstance(triple, (list, tuple)) or len(triple) != 3:
            raise SpecError(f"{arg}[{name!r}] must be (min, opt, max) shapes, got {triple!r}")
        low, opt, high = (checked_shape(name, s, arg) for s in triple)
        if not len(low) == len(opt) == len(high):
            raise SpecError(f"{arg}[{name!r}]: min, opt and max must have the same rank, got {triple!r}")
        for axis in range(len(low)):
            if not low[axis] <= opt[axis] <= high[axis]:
                raise SpecError(f"{arg}[{name!r}]: needs min <= opt <= max on axis {axis}, got {triple!r}")
        bounds.append(InputBounds(name, low, opt, high))
    return ShapeProfile(tuple(sorted(bounds, key=lambda b: b.name)))


def profile_index(profiles: Sequence[ShapeProfile], shapes: Mapping[str, Sequence[int]]) -> int:
    """The first profile that contains every shape it bounds (0 without profiles); a shape no
    profile contains is a ShapeError naming the input, the shape and the bounds."""
    for index, profile in enumerate(profiles):
        if not profile.outside(shapes):
            return index
    if len(profiles) == 1:
        name, bounds = profiles[0].outside(shapes)[0]
        raise ShapeError(
            f"input {name!r}: shape {tuple(int(d) for d in shapes[name])} is outside the optimization "
            f"profile ({bounds.shown()})"
        )
    if not profiles:
        return 0
    parts = []
    for index, profile in enumerate(profiles):
        name, bounds = profile.outside(shapes)[0]
        parts.append(f"profile {index}: input {name!r} {tuple(int(d) for d in shapes[name])} not in {bounds.shown()}")
    raise ShapeError("the shapes fit no optimization profile: " + "; ".join(parts))


def holds_batch(profiles: Sequence[ShapeProfile], batch: int) -> bool:
    """Whether some profile takes ``batch`` as the leading dim of every input it bounds (True
    without profiles: any batch runs)."""
    return not profiles or any(all(b.min[0] <= batch <= b.max[0] for b in p.inputs if b.min) for p in profiles)
