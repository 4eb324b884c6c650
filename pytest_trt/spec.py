"""What the marks mean: frozen, validated specs built once at collection.

Every constructor here raises SpecError naming the offending argument; the plugin prefixes the
test id. Specs are hashable (engines are shared per distinct spec) and JSON-friendly
(``as_dict``) so that cache keys and baselines can record them without pickle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from pytest_trt import measure_defaults, serde
from pytest_trt.arguments import (
    CalibrationMethod,
    Check,
    NanPolicy,
    Precision,
    Shape,
    SyncMode,
    check_choice,
    check_keywords,
    checked_number,
    checked_shape,
    frozen,
    mode,
)
from pytest_trt.errors import SpecError

# Precision-transform options, shared by every backend (see precision.py). Each backend declares
# its own build options when it registers (pytest_trt.backends); marks.py passes them all here.
TRANSFORM_BUILD_OPTIONS = {
    "keep_fp32_ops": tuple,  # op types kept in fp32 by the fp16/bf16 transform
    "keep_fp32_nodes": tuple,  # node names kept in fp32
}


def format_tolerance(value: float) -> str:
    """1e-3 rather than 0.001, 0.5 rather than 5e-1: how tolerances are written in marks."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    import numpy as np

    positional = np.format_float_positional(value, trim="-")
    scientific = np.format_float_scientific(value, trim="-", exp_digits=1).replace("e+", "e")
    shorter = len(scientific) < len(positional) or (len(scientific) == len(positional) and abs(value) < 1)
    return scientific if shorter else positional


@dataclass(frozen=True)
class BuildSpec:
    """How an engine is made from a model: everything that changes the built artifact."""

    precision: Precision = Precision.FP32
    shapes: tuple[tuple[str, Shape], ...] = ()
    options: tuple[tuple[str, Any], ...] = ()

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
        }


class Reference(Enum):
    """What the engine's outputs are compared with."""

    ONNXRUNTIME = "onnxruntime"  # the ONNX model (for torch=, the export) in fp32 on onnxruntime's CPU provider
    TORCH = "torch"  # the torch module itself, on CPU in fp32 under torch.no_grad()


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
    backend_options: Mapping[str, type] | None = None,
    **build_options: Any,
) -> ModelSpec:
    """Validate ``trt_model`` arguments. Relative paths try each of ``base_dirs`` in order;
    ``backend_options`` are the build options the registered backends declare (name -> type).
    The model is a ``path`` or a ``torch=`` factory, never both."""
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
    _check_build_options(build_options, {**(backend_options or {}), **TRANSFORM_BUILD_OPTIONS})
    return ModelSpec(
        path=model_path,
        build=BuildSpec(
            precision=chosen,
            shapes=frozen_shapes,
            options=tuple(sorted((k, frozen(v)) for k, v in build_options.items())),
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
        return None, _torch_spec(torch, example_inputs, dynamic)
    for arg, value in (("example_inputs", example_inputs), ("dynamic", dynamic)):
        if value is not None:
            raise SpecError(f"{arg}= belongs to torch= models; an ONNX model's file gives its inputs")
    assert path is not None
    return _resolve(path, base_dirs, "path"), None


def _shapes(shapes: Any) -> tuple[tuple[str, Shape], ...]:
    if shapes is not None and not isinstance(shapes, Mapping):
        raise SpecError(f"shapes must be a dict of input name -> shape, got {shapes!r}")
    return tuple(sorted((k, checked_shape(k, v, "shapes")) for k, v in (shapes or {}).items()))


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


def _torch_spec(factory: Any, example_inputs: Any, dynamic: Any) -> TorchSpec:
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


@dataclass(frozen=True)
class OutputTolerance:
    """How one output is compared with the reference."""

    rtol: float = 1e-3
    atol: float = 1e-5
    check: Check = Check.ELEMENTWISE
    q: float | None = None  # quantile for check="quantile"
    max_mismatch: float = 0.0  # allowed fraction of elements outside tolerance
    min_cosine: float | None = None
    topk: int | None = None
    topk_axis: int = -1
    nan: NanPolicy = NanPolicy.FAIL
    inf_equal: bool = False
    # False where the mark names only min_cosine/topk: those alone gate (make_accuracy_spec).
    tolerance_gates: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        checked_number(self.rtol, "rtol")
        checked_number(self.atol, "atol")
        object.__setattr__(self, "check", mode(self.check, Check, "check"))
        object.__setattr__(self, "nan", mode(self.nan, NanPolicy, "nan"))
        if self.check is Check.QUANTILE:
            if self.q is None or not 0.0 <= checked_number(self.q, "q") <= 1.0:
                raise SpecError(f"check='quantile' needs q in [0, 1], got q={self.q!r}")
        elif self.q is not None:
            raise SpecError("q is only meaningful with check='quantile'")
        if not 0.0 <= checked_number(self.max_mismatch, "max_mismatch") <= 1.0:
            raise SpecError(f"max_mismatch must be a fraction in [0, 1], got {self.max_mismatch!r}")
        if self.min_cosine is not None and not -1.0 <= checked_number(
            self.min_cosine, "min_cosine", minimum=-1.0
        ) <= 1.0:
            raise SpecError(f"min_cosine must be in [-1, 1], got {self.min_cosine!r}")
        if self.topk is not None and (
            not isinstance(self.topk, int) or isinstance(self.topk, bool) or self.topk < 1
        ):
            raise SpecError(f"topk must be a positive int, got {self.topk!r}")
        if not isinstance(self.inf_equal, bool):
            raise SpecError(f"inf_equal must be True or False, got {self.inf_equal!r}")

    def rule(self) -> str:
        """The tolerance as printed in every message, e.g. ``rtol=1e-3 atol=1e-5``."""
        return f"rtol={format_tolerance(self.rtol)} atol={format_tolerance(self.atol)}"


@dataclass(frozen=True)
class AccuracySpec:
    """The ``trt_accuracy`` mark: a default tolerance, per-output overrides, extra checks."""

    default: OutputTolerance = field(default_factory=OutputTolerance)
    outputs: tuple[tuple[str, OutputTolerance], ...] = ()
    batch_consistency: bool = False

    def for_output(self, name: str) -> OutputTolerance:
        return dict(self.outputs).get(name, self.default)


def make_accuracy_spec(
    *, outputs: Mapping[str, Mapping[str, Any]] | None = None, batch_consistency: bool = False, **kw: Any
) -> AccuracySpec:
    """Validate ``trt_accuracy`` arguments; per-output dicts override the defaults key by key."""
    check_keywords(OutputTolerance, kw, "trt_accuracy")
    default = _gated_by(OutputTolerance(**kw), kw)
    overrides = []
    for name, override in (outputs or {}).items():
        if not isinstance(override, Mapping):
            raise SpecError(f"outputs[{name!r}] must be a dict of tolerance arguments, got {override!r}")
        check_keywords(OutputTolerance, override, f"trt_accuracy outputs[{name!r}]")
        overrides.append((name, _gated_by(dataclasses.replace(default, **override), {**kw, **override})))
    if not isinstance(batch_consistency, bool):
        raise SpecError(f"batch_consistency must be True or False, got {batch_consistency!r}")
    return AccuracySpec(default=default, outputs=tuple(sorted(overrides)), batch_consistency=batch_consistency)


def _gated_by(tol: OutputTolerance, given: Mapping[str, Any]) -> OutputTolerance:
    """Similarity checks named alone (min_cosine, topk) gate alone: the default elementwise
    tolerance applies where a tolerance argument is given, or no similarity check is."""
    named = set(given)
    tolerance = {"rtol", "atol", "check", "q", "max_mismatch"}
    object.__setattr__(tol, "tolerance_gates", bool(named & tolerance) or not named & {"min_cosine", "topk"})
    return tol


@dataclass(frozen=True)
class MeasureSettings:
    """How a sample is taken. Defaults come from options; marks override per test."""

    warmup_ms: float = measure_defaults.WARMUP_MS
    min_iterations: int = measure_defaults.MIN_ITERATIONS
    min_duration_ms: float = measure_defaults.MIN_DURATION_MS
    max_duration_ms: float = measure_defaults.MAX_DURATION_MS
    cuda_graph: bool = False
    transfers: bool = True
    sync: SyncMode = SyncMode.BLOCKING
    host_probe: bool = True  # time host_probe.py between host-clock iterations

    def __post_init__(self) -> None:
        checked_number(self.warmup_ms, "warmup_ms")
        if not isinstance(self.min_iterations, int) or self.min_iterations < 1:
            raise SpecError(f"min_iterations must be a positive int, got {self.min_iterations!r}")
        checked_number(self.min_duration_ms, "min_duration_ms")
        checked_number(self.max_duration_ms, "max_duration_ms")
        object.__setattr__(self, "sync", mode(self.sync, SyncMode, "sync"))
        for arg in ("cuda_graph", "transfers", "host_probe"):
            if not isinstance(getattr(self, arg), bool):
                raise SpecError(f"{arg} must be True or False, got {getattr(self, arg)!r}")


@dataclass(frozen=True)
class PerfBudget:
    """One ``trt_perf`` mark: budgets for one backend, and how to measure. Without a backend it
    is a GPU budget: enforced on whichever GPU backend runs."""

    backend: str | None = None
    max_latency_ms: float | None = None
    percentile: float = 50.0
    min_throughput: float | None = None
    max_regression: float | None = None  # fraction; None -> the session's threshold
    measure: MeasureSettings = field(default_factory=MeasureSettings)

    def __post_init__(self) -> None:
        if self.backend is not None and (not isinstance(self.backend, str) or not self.backend):
            raise SpecError(f"backend must be a backend name, got {self.backend!r}")
        checked_number(self.max_latency_ms, "max_latency_ms", allow_none=True)
        if not 0.0 <= checked_number(self.percentile, "percentile") <= 100.0:
            raise SpecError(f"percentile must be in [0, 100], got {self.percentile!r}")
        checked_number(self.min_throughput, "min_throughput", allow_none=True)
        checked_number(self.max_regression, "max_regression", allow_none=True)


_MEASURE_FIELDS = {f.name for f in dataclasses.fields(MeasureSettings)}


def make_perf_budget(defaults: MeasureSettings, backends: tuple[str, ...] = (), **kw: Any) -> PerfBudget:
    """Validate one ``trt_perf`` mark; measurement keywords override the session defaults.
    ``backends`` are the registered backend names the budget's ``backend`` must be one of."""
    known = {f.name for f in dataclasses.fields(PerfBudget)} - {"measure"} | _MEASURE_FIELDS
    unknown = sorted(set(kw) - known)
    if unknown:
        raise SpecError(f"trt_perf: unknown argument {unknown[0]!r} (known: {', '.join(sorted(known))})")
    measure_kw = {k: kw.pop(k) for k in list(kw) if k in _MEASURE_FIELDS}
    if backends and kw.get("backend") is not None:
        check_choice(kw["backend"], backends, "backend")
    return PerfBudget(measure=dataclasses.replace(defaults, **measure_kw), **kw)


