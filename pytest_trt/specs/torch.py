"""``torch=`` on ``trt_model``: the factory, its example inputs and dynamic axes, checked
without importing torch or the factory's module."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_trt.arguments import Shape, checked_shape
from pytest_trt.errors import SpecError


class ExampleArray:
    """An example input given as an array (a tensor is read into one), compared and hashed by
    its dtype, shape and bytes so that a spec holding it stays hashable."""

    __slots__ = ("array", "digest")

    def __init__(self, array: Any) -> None:
        import numpy as np

        frozen = np.array(array, copy=True)
        frozen.setflags(write=False)
        hashed = hashlib.sha256(f"{frozen.dtype.str}|{frozen.shape}|".encode())
        hashed.update(np.ascontiguousarray(frozen).tobytes())
        self.array = frozen
        self.digest = hashed.hexdigest()

    @property
    def shape(self) -> Shape:
        return tuple(int(d) for d in self.array.shape)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExampleArray) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"ExampleArray({self.array.dtype}, {list(self.array.shape)}, sha256={self.digest[:12]})"

    def as_dict(self) -> dict[str, Any]:
        return {"dtype": str(self.array.dtype), "shape": list(self.shape), "sha256": self.digest}


@dataclass(frozen=True)
class TorchSpec:
    """``torch=`` on ``trt_model``: the factory of a torch module and how to export it."""

    factory: Any  # a callable, or a "pkg.mod:func" string (imported on first use)
    name: str  # "pkg.mod:func": how messages, reports and baselines name the model
    example_inputs: tuple[tuple[str, Shape | ExampleArray], ...]  # by input name
    dynamic: tuple[tuple[str, tuple[tuple[int, str], ...]], ...] = ()  # input -> ((axis, dim name), ...)

    def example_map(self) -> dict[str, Any]:
        """What torch_export takes: input name -> shape tuple or numpy array."""
        return {k: v.array if isinstance(v, ExampleArray) else v for k, v in self.example_inputs}

    def example_shapes(self) -> dict[str, Shape]:
        return {k: v.shape if isinstance(v, ExampleArray) else v for k, v in self.example_inputs}

    def dynamic_map(self) -> dict[str, dict[int, str]]:
        return {name: dict(axes) for name, axes in self.dynamic}

    @property
    def stem(self) -> str:
        """A file name for the export: the factory's own name."""
        last = self.name.rpartition(":")[2].rsplit(".", 1)[-1]
        return re.sub(r"[^A-Za-z0-9_-]", "", last) or "model"

    def as_dict(self) -> dict[str, Any]:
        return {
            "factory": self.name,
            "example_inputs": {
                k: v.as_dict() if isinstance(v, ExampleArray) else list(v) for k, v in self.example_inputs
            },
            "dynamic": {name: {str(a): d for a, d in axes} for name, axes in self.dynamic},
        }


def factory_name(factory: Any) -> str:
    """How a torch= factory is named in messages, reports and baselines: ``"pkg.mod:func"``
    (a string factory is its own name)."""
    if isinstance(factory, str):
        return factory
    target = getattr(factory, "func", factory)  # functools.partial names the function it wraps
    module = getattr(target, "__module__", None) or type(target).__module__
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}:{qualname}"


_FACTORY_STRING = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def make_torch_spec(factory: Any, example_inputs: Any, dynamic: Any) -> TorchSpec:
    """torch= and its example_inputs/dynamic, checked without importing torch or the factory's
    module (that happens on first use, and its errors name the test then)."""
    if isinstance(factory, str):
        if not _FACTORY_STRING.fullmatch(factory):
            raise SpecError(f"torch={factory!r} must be a callable or an importable 'pkg.mod:func' string")
    elif not callable(factory):
        raise SpecError(
            f"torch= must be a callable returning a torch.nn.Module or a 'pkg.mod:func' string, got {factory!r}"
        )
    try:
        hash(factory)
    except TypeError:
        raise SpecError(
            f"torch= must be hashable (a function, a class or a 'pkg.mod:func' string), got {factory!r}"
        ) from None
    if example_inputs is None:
        raise SpecError("torch= needs example_inputs= (forward's parameter name -> shape, e.g. {'x': (8, 3, 64, 64)})")
    if not isinstance(example_inputs, Mapping) or not example_inputs:
        raise SpecError(
            f"example_inputs must map forward's parameter names to shapes or arrays, got {example_inputs!r}"
        )
    examples = {name: _example(name, value) for name, value in example_inputs.items()}
    axes = dynamic_axes(dynamic, {k: v.shape if isinstance(v, ExampleArray) else v for k, v in examples.items()})
    return TorchSpec(
        factory=factory,
        name=factory_name(factory),
        example_inputs=tuple(sorted(examples.items())),
        dynamic=axes,
    )


def _example(name: Any, value: Any) -> Shape | ExampleArray:
    """One example input: a shape, or an array (a tensor is read into one)."""
    if not isinstance(name, str) or not name:
        raise SpecError(f"example_inputs: input names must be non-empty strings, got {name!r}")
    if isinstance(value, (tuple, list)):
        return checked_shape(name, value, "example_inputs")
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):  # a numpy array or a torch tensor
        raise SpecError(
            f"example_inputs[{name!r}] must be a shape tuple, a numpy array or a torch tensor, got {value!r}"
        )
    try:
        example = ExampleArray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
    except Exception as exc:  # a tensor numpy cannot hold (bfloat16, say)
        raise SpecError(f"example_inputs[{name!r}]: cannot read it as a numpy array ({exc})") from None
    if example.array.dtype.hasobject or not example.shape:
        raise SpecError(f"example_inputs[{name!r}] must be an array of numbers with at least one axis")
    return example


def dynamic_axes(dynamic: Any, shapes: Mapping[str, Shape]) -> tuple[tuple[str, tuple[tuple[int, str], ...]], ...]:
    """``dynamic=`` checked against the inputs' shapes: input -> sorted ((axis, dim name), ...),
    negative axes made positive; torch_export relies on this check too."""
    if dynamic is None:
        return ()
    if not isinstance(dynamic, Mapping):
        raise SpecError(f"dynamic must map input names to {{axis: 'dim name'}}, got {dynamic!r}")
    result = []
    for name, axes in dynamic.items():
        if name not in shapes:
            raise SpecError(
                f"dynamic names input {name!r}, which example_inputs does not have "
                f"(inputs: {', '.join(sorted(shapes))})"
            )
        if not isinstance(axes, Mapping) or not axes:
            raise SpecError(f"dynamic[{name!r}] must be a dict {{axis: 'dim name'}}, got {axes!r}")
        rank = len(shapes[name])
        pairs: dict[int, str] = {}
        for axis, dim in axes.items():
            if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
                raise SpecError(f"dynamic[{name!r}]: axis {axis!r} is not an axis of an input of rank {rank}")
            if not isinstance(dim, str) or not dim.isidentifier():
                raise SpecError(f"dynamic[{name!r}][{axis}] must be a dim name like 'batch', got {dim!r}")
            pairs[axis % rank] = dim
        result.append((name, tuple(sorted(pairs.items()))))
    return tuple(sorted(result))
