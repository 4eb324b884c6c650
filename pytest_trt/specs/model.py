"""``trt_model``: which model, how to build it, which inputs to feed, what to compare with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from pytest_trt import serde
from pytest_trt.arguments import (
    CalibrationMethod,
    Precision,
    Shape,
    checked_shape,
    frozen,
    mode,
)
from pytest_trt.errors import SpecError
from pytest_trt.specs.profiles import ShapeProfile, make_profiles
from pytest_trt.specs.torch import TorchSpec, make_torch_spec

# Precision-transform options, shared by every backend (see precision.py). Each backend declares
# its own build options when it registers (pytest_trt.backends); marks.py passes them all here.
TRANSFORM_BUILD_OPTIONS = {
    "keep_fp32_ops": tuple,  # op types kept in fp32 by the fp16/bf16 transform
    "keep_fp32_nodes": tuple,  # node names kept in fp32
}


@dataclass(frozen=True)
class BuildSpec:
    """How an engine is made from a model: everything that changes the built artifact."""

    precision: Precision = Precision.FP32
    shapes: tuple[tuple[str, Shape], ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    profiles: tuple[ShapeProfile, ...] = ()  # profile=: the shape ranges the engine serves

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", mode(self.precision, Precision, "precision"))

    @property
    def shape_map(self) -> dict[str, Shape]:
        return dict(self.shapes)

    @property
    def option_map(self) -> dict[str, Any]:
        return dict(self.options)

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision.value,
            "shapes": {k: list(v) for k, v in self.shapes},
            "options": {k: serde.to_data(v) for k, v in self.options},
            # Only where given, so that engines built without profiles keep their cache keys.
            **({"profiles": [p.as_dict() for p in self.profiles]} if self.profiles else {}),
        }


class Reference(Enum):
    """What the engine's outputs are compared with."""

    ONNXRUNTIME = "onnxruntime"  # the ONNX model (for torch=, the export) in fp32 on onnxruntime's CPU provider
    TORCH = "torch"  # the torch module itself, on CPU in fp32 under torch.no_grad()


@dataclass(frozen=True)
class ModelSpec:
    """The ``trt_model`` mark: which model, how to build it, which inputs to feed, what to
    compare with."""

    path: Path | None  # None for a torch= model: the export is made on first use
    build: BuildSpec = field(default_factory=BuildSpec)
    batch_size: int | None = None
    seed: int | None = None
    input_ranges: tuple[tuple[str, tuple[float, float]], ...] = ()
    inputs: Path | None = None
    torch: TorchSpec | None = None
    reference: Reference = Reference.ONNXRUNTIME
    calibration: Path | int | None = None  # INT8 by calibration: an .npz, or a count of seeded batches
    calibration_method: CalibrationMethod | None = None  # where calibration is given

    @property
    def range_map(self) -> dict[str, tuple[float, float]]:
        return dict(self.input_ranges)

    @property
    def source(self) -> str:
        """The model as the mark names it: its file, or ``torch=pkg.mod:func``."""
        return f"torch={self.torch.name}" if self.torch is not None else str(self.path)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path is not None else None,
            "build": self.build.as_dict(),
            "batch_size": self.batch_size,
            "seed": self.seed,
            "input_ranges": {k: list(v) for k, v in self.input_ranges},
            "inputs": str(self.inputs) if self.inputs else None,
            "torch": self.torch.as_dict() if self.torch is not None else None,
            "reference": self.reference.value,
            "calibration": str(self.calibration) if isinstance(self.calibration, Path) else self.calibration,
            "calibration_method": self.calibration_method.value if self.calibration_method else None,
        }


def make_model_spec(
    path: str | Path | None = None,
    *,
    base_dirs: tuple[Path, ...] = (),
    precision: str | Precision = Precision.FP32,
    shapes: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    input_ranges: Mapping[str, Any] | None = None,
    inputs: str | Path | None = None,
    torch: Any = None,
    example_inputs: Mapping[str, Any] | None = None,
    dynamic: Mapping[str, Any] | None = None,
    reference: str = Reference.ONNXRUNTIME.value,
    calibration: str | Path | int | None = None,
    calibration_method: str | CalibrationMethod | None = None,
    profile: Any = None,
    backend_options: Mapping[str, type] | None = None,
    **build_options: Any,
) -> ModelSpec:
    """Validate ``trt_model`` arguments. Relative paths try each of ``base_dirs`` in order;
    ``backend_options`` are the build options the registered backends declare (name -> type).
    The model is a ``path`` or a ``torch=`` factory, never both; ``profiles=`` is ``profile=``
    under its earlier name."""
    model_path, torch_spec = _model_source(path, torch, example_inputs, dynamic, base_dirs)
    chosen = mode(precision, Precision, "precision")
    reference_kind = _reference(reference, torch_spec)
    calibration_data, method = _calibration(calibration, calibration_method, chosen, base_dirs)
    frozen_shapes = _shapes(shapes)
    if batch_size is not None and (
        not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
    ):
        raise SpecError(f"batch_size must be a positive int, got {batch_size!r}")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise SpecError(f"seed must be an int, got {seed!r}")
    ranges = _input_ranges(input_ranges)
    profiles = _profiles(profile, build_options.pop("profiles", None))
    _check_build_options(build_options, {**(backend_options or {}), **TRANSFORM_BUILD_OPTIONS})
    return ModelSpec(
        path=model_path,
        build=BuildSpec(
            precision=chosen,
            shapes=frozen_shapes,
            options=tuple(sorted((k, frozen(v)) for k, v in build_options.items())),
            profiles=profiles,
        ),
        batch_size=batch_size,
        seed=seed,
        input_ranges=ranges,
        inputs=_resolve(inputs, base_dirs, "inputs") if inputs is not None else None,
        torch=torch_spec,
        reference=reference_kind,
        calibration=calibration_data,
        calibration_method=method,
    )


def _model_source(
    path: str | Path | None, torch: Any, example_inputs: Any, dynamic: Any, base_dirs: tuple[Path, ...]
) -> tuple[Path | None, TorchSpec | None]:
    """The model file, or the torch= factory with its example inputs and dynamic axes: one of them."""
    if path is not None and torch is not None:
        raise SpecError("give the model either as a path or as torch=, not both")
    if path is None and torch is None:
        raise SpecError("missing the model: a path (first argument) or torch= (a factory returning a torch.nn.Module)")
    if torch is not None:
        return None, make_torch_spec(torch, example_inputs, dynamic)
    for arg, value in (("example_inputs", example_inputs), ("dynamic", dynamic)):
        if value is not None:
            raise SpecError(f"{arg}= belongs to torch= models; an ONNX model's file gives its inputs")
    assert path is not None
    return _resolve(path, base_dirs, "path"), None


def _shapes(shapes: Any) -> tuple[tuple[str, Shape], ...]:
    if shapes is not None and not isinstance(shapes, Mapping):
        raise SpecError(f"shapes must be a dict of input name -> shape, got {shapes!r}")
    return tuple(sorted((k, checked_shape(k, v, "shapes")) for k, v in (shapes or {}).items()))


def _profiles(profile: Any, legacy: Any) -> tuple[ShapeProfile, ...]:
    if profile is not None and legacy is not None:
        raise SpecError("give profile= or its earlier name profiles=, not both")
    return make_profiles(profile if legacy is None else legacy)


def _input_ranges(input_ranges: Mapping[str, Any] | None) -> tuple[tuple[str, tuple[float, float]], ...]:
    ranges = []
    for name, rng in (input_ranges or {}).items():
        if (
            not isinstance(rng, (tuple, list))
            or len(rng) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in rng)
            or not rng[0] < rng[1]
        ):
            raise SpecError(f"input_ranges[{name!r}] must be (low, high) with low < high, got {rng!r}")
        ranges.append((name, (rng[0], rng[1])))
    return tuple(sorted(ranges))


def _check_build_options(build_options: Mapping[str, Any], known: Mapping[str, type]) -> None:
    """Each build option is one a backend (or the precision transform) declares, of its type."""
    for key, value in build_options.items():
        if key not in known:
            raise SpecError(f"trt_model: unknown argument {key!r} (build options: {', '.join(sorted(known))})")
        expected = known[key]
        ok = isinstance(value, expected) or (expected is tuple and isinstance(value, list))
        if expected is int and isinstance(value, bool):
            ok = False
        if not ok:
            raise SpecError(f"{key} must be {expected.__name__}, got {value!r}")



def _reference(value: Any, torch_spec: TorchSpec | None) -> Reference:
    try:
        chosen = Reference(value)
    except ValueError:
        raise SpecError(
            f"reference must be one of {', '.join(r.value for r in Reference)}; got {value!r}"
        ) from None
    if chosen is Reference.TORCH and torch_spec is None:
        raise SpecError(
            "reference='torch' needs torch= (the module to compare with); an ONNX file is compared with onnxruntime"
        )
    return chosen


def _calibration(
    calibration: Any, method: Any, precision: Precision, base_dirs: tuple[Path, ...]
) -> tuple[Path | int | None, CalibrationMethod | None]:
    if calibration is None:
        if method is not None:
            raise SpecError("calibration_method= needs calibration= (an .npz of inputs, or a number of batches)")
        return None, None
    if precision is not Precision.INT8:
        raise SpecError(f"calibration= is for precision='int8' (this mark has precision={precision.value!r})")
    wrong = f"calibration must be a positive number of seeded batches or an .npz path, got {calibration!r}"
    if isinstance(calibration, int) and not isinstance(calibration, bool):
        if calibration < 1:
            raise SpecError(wrong)
        data: Path | int = calibration
    elif isinstance(calibration, (str, Path)):
        data = _resolve(calibration, base_dirs, "calibration")
    else:
        raise SpecError(wrong)
    return data, mode(CalibrationMethod.MINMAX if method is None else method, CalibrationMethod, "calibration_method")


# What each path argument names, for the message when it names a folder instead.
_FILE_KINDS = {"path": "an ONNX file", "inputs": "an .npz file", "calibration": "an .npz file"}


def _resolve(path: str | Path, base_dirs: tuple[Path, ...], arg: str) -> Path:
    if not isinstance(path, (str, Path)) or not str(path):
        raise SpecError(f"{arg} must be a file path, got {path!r}")
    p = Path(path)
    candidates = [p] if p.is_absolute() else [d / p for d in base_dirs] or [p]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is not None:
        raise SpecError(f"{arg}: {str(path)!r} is a directory, not {_FILE_KINDS.get(arg, 'a file')} ({folder})")
    tried = ", ".join(str(c) for c in candidates)
    raise SpecError(f"{arg}: file {str(path)!r} not found (looked in: {tried})")
