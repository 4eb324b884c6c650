"""``trt_accuracy``: how each output is compared with the reference."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_trt.arguments import Check, NanPolicy, check_keywords, checked_number, mode
from pytest_trt.errors import SpecError


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
