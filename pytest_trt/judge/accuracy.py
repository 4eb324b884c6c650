"""Output comparison against a reference run: per-output verdicts, batch consistency, and the
failure files. The numbers come from output_errors.py, the failure's words from accuracy_report.py.

Tolerance rule everywhere is numpy's: ``|out - ref| <= atol + rtol * |ref|``. The statistic
checks (``check="max" | "mean" | "median" | "quantile"``) apply that same rule to a statistic of
the per-element error ratio ``|out - ref| / (atol + rtol * |ref|)``: the output passes when the
statistic is at most 1. ``max_mismatch`` (a fraction of elements allowed outside) belongs to
``check="elementwise"``; ``min_cosine`` and ``topk`` are further gates on top of the tolerance,
or the only ones where a mark names them without a tolerance argument.
Integer and bool outputs are compared exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.judge.accuracy_report import Missed, details, headline, short_number
from pytest_trt.judge.diagnosis import Diagnosis
from pytest_trt.judge.output_errors import (
    ErrorDistribution,
    FloatErrors,
    OutputStats,
    check_passes,
    cosine_similarity,
    distribution,
    float_errors,
    float_stats,
    index_list,
    shape_of,
    topk_agreement,
    worst_index,
)
from pytest_trt.serde import to_data
from pytest_trt.specs import AccuracySpec, OutputTolerance
from pytest_trt.store.files import write_atomic_with

RULE_NOTE = "(numpy rule |out-ref| <= atol + rtol*|ref|)"


@dataclass(frozen=True)
class OutputReport:
    """The verdict and error statistics for one output."""

    name: str
    passed: bool
    message: str = ""  # multi-line; "" when passed
    stats: OutputStats = field(default_factory=OutputStats)
    worst_index: list[int] | None = None
    distribution: ErrorDistribution | None = None  # float outputs: the error ratios, for plots

    def as_dict(self) -> dict[str, Any]:
        return dict(to_data(self))


@dataclass(frozen=True)
class AccuracyResult:
    """All outputs of one comparison, plus problems that belong to no single output."""

    passed: bool
    outputs: list[OutputReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    diagnosis: Diagnosis | None = None  # where a reduced-precision build's error starts (--trt-diagnose)

    def with_problems(self, problems: Sequence[str]) -> AccuracyResult:
        """This result with failures found outside ``compare_outputs`` (e.g. batch consistency)."""
        if not problems:
            return self
        return dataclasses.replace(self, passed=False, problems=[*self.problems, *problems])

    def failure_message(self) -> str:
        """Failing outputs first (their first line is the headline), then problems, then the rule."""
        if self.passed:
            return ""
        parts = [report.message for report in self.outputs if not report.passed]
        parts.extend(self.problems)
        parts.append(RULE_NOTE)
        return "\n".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return dict(to_data(self))


def compare_outputs(
    actual: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    spec: AccuracySpec,
    *,
    quantized: bool = False,
) -> AccuracyResult:
    """Compare every output with its reference using the output's tolerance from ``spec``.

    ``quantized=True`` (an INT8 model) also reports the cosine similarity and top-1 agreement
    of float outputs where ``min_cosine``/``topk`` do not gate them: elementwise tolerances are
    rarely what quantized models are judged by, so a failure shows those numbers too."""
    outputs: list[OutputReport] = []
    problems: list[str] = []
    for name in reference:
        if name not in actual:
            problems.append(
                f"output {name!r} is missing from the backend's outputs "
                f"(it produced: {_names(actual)})"
            )
            continue
        outputs.append(compare_output(name, actual[name], reference[name], spec.for_output(name), quantized=quantized))
    for name in actual:
        if name not in reference:
            problems.append(
                f"output {name!r} has no reference output (the reference produced: {_names(reference)})"
            )
    return AccuracyResult(all(report.passed for report in outputs) and not problems, outputs, problems)


def compare_output(
    name: str, out: Any, ref: Any, tol: OutputTolerance, *, quantized: bool = False
) -> OutputReport:
    """Compare one output array with its reference array (``quantized``: see compare_outputs)."""
    out_arr, ref_arr = np.asarray(out), np.asarray(ref)
    if out_arr.shape != ref_arr.shape:
        return OutputReport(
            name,
            False,
            f"output {name!r}: shape {shape_of(out_arr)} differs from the reference's shape {shape_of(ref_arr)}",
        )
    out_kind, ref_kind = _kind(out_arr.dtype), _kind(ref_arr.dtype)
    if out_kind != ref_kind or out_kind == "unsupported":
        return OutputReport(
            name,
            False,
            f"output {name!r}: dtype {out_arr.dtype} ({out_kind}) differs in kind from the "
            f"reference's {ref_arr.dtype} ({ref_kind}); shapes: out {shape_of(out_arr)}, "
            f"ref {shape_of(ref_arr)}",
        )
    if out_arr.size == 0:
        return OutputReport(name, True, stats=OutputStats())
    if out_kind == "float":
        return _compare_float(name, out_arr, ref_arr, tol, quantized)
    return _compare_exact(name, out_arr, ref_arr)


def _compare_exact(name: str, out: np.ndarray, ref: np.ndarray) -> OutputReport:
    bad = out != ref
    n_total, n_bad = out.size, int(bad.sum())
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    worst = np.unravel_index(int(np.argmax(diff)), out.shape)
    stats = OutputStats(n_total, n_bad, n_bad / n_total, max_abs=float(diff.max()))
    if n_bad == 0:
        return OutputReport(name, True, stats=stats)
    message = (
        f"output {name!r}: {n_bad} of {n_total} elements differ ({out.dtype} output, compared "
        f"exactly); worst |d|={short_number(diff[worst])} at {index_list(worst)} "
        f"(out={short_number(out[worst])}, ref={short_number(ref[worst])})"
    )
    return OutputReport(name, False, message, stats, index_list(worst))


def _compare_float(
    name: str, out: np.ndarray, ref: np.ndarray, tol: OutputTolerance, quantized: bool = False
) -> OutputReport:
    errors = float_errors(out, ref, tol)
    missed, topk_detail, stats = _gates(errors, tol, float_stats(errors, tol))
    if quantized:
        top1_detail, stats = _quantized_extras(errors, tol, stats)
        topk_detail = top1_detail or topk_detail
    worst, spread = worst_index(errors), distribution(errors, tol)
    if not missed:
        return OutputReport(name, True, stats=stats, worst_index=worst, distribution=spread)
    lines = [headline(name, errors, tol, stats, worst, missed)]
    lines.extend("  " + line for line in details(errors, tol, stats, missed, topk_detail))
    return OutputReport(name, False, "\n".join(lines), stats, worst, spread)


def _gates(
    errors: FloatErrors, tol: OutputTolerance, stats: OutputStats
) -> tuple[list[Missed], str, OutputStats]:
    """The gates the output misses (tolerance, then min_cosine and topk where asked), the top-k
    detail line, and ``stats`` with the cosine and top-k agreement where they were read."""
    missed: list[Missed] = []
    if tol.tolerance_gates and not check_passes(errors.ratio, tol):
        missed.append(Missed.TOLERANCE)
    if tol.min_cosine is not None:
        cosine = cosine_similarity(errors)
        stats = dataclasses.replace(stats, cosine=cosine)
        if not cosine >= tol.min_cosine:
            missed.append(Missed.COSINE)
    topk_detail = ""
    if tol.topk is not None:
        agreement, topk_detail = topk_agreement(errors.out, errors.ref, tol.topk, tol.topk_axis)
        stats = dataclasses.replace(stats, topk_agreement=agreement)
        if not agreement >= 1.0:
            missed.append(Missed.TOPK)
    return missed, topk_detail, stats


def _quantized_extras(errors: FloatErrors, tol: OutputTolerance, stats: OutputStats) -> tuple[str, OutputStats]:
    """Reported, not gated: the numbers INT8 users judge by (cosine, top-1 agreement), next to
    the elementwise ones. Returns the top-1 line ('' where it does not apply) and ``stats`` with
    both figures."""
    if tol.min_cosine is None:
        stats = dataclasses.replace(stats, cosine=cosine_similarity(errors))
    out, axis = errors.out, tol.topk_axis
    if tol.topk is not None or not -out.ndim <= axis < out.ndim or out.shape[axis] < 2:
        return "", stats
    agreement, detail = topk_agreement(errors.out, errors.ref, 1, axis)
    rows = out.size // out.shape[axis]
    line = (
        f"top-1 agreement {agreement:.1%} of {rows} rows along axis {axis} "
        f"(reported, not gated: topk= gates on it)" + (f"; {detail}" if detail else "")
    )
    return line, dataclasses.replace(stats, top1_agreement=agreement)


def check_batch_consistency(
    infer: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    feed: Mapping[str, np.ndarray],
    batch_axis: int = 0,
    tolerance: OutputTolerance | None = None,
) -> list[str]:
    """Run row 0 of every input replicated across the batch; every output row must match row 0.

    Rows are compared exactly when ``tolerance`` is None, else with its rtol/atol. Returns one
    problem string per inconsistent output (empty when consistent).
    """
    if not feed:
        return ["batch consistency: the model has no inputs to replicate across a batch"]
    batch_sizes = set()
    for name, value in feed.items():
        arr = np.asarray(value)
        if arr.ndim <= batch_axis or arr.shape[batch_axis] < 2:
            return [
                f"batch consistency: input {name!r} of shape {shape_of(arr)} has no batch axis "
                f"{batch_axis} with more than one row; run it with a batch size of 2 or more"
            ]
        batch_sizes.add(arr.shape[batch_axis])
    if len(batch_sizes) != 1:
        shapes = ", ".join(f"{n!r} {shape_of(np.asarray(v))}" for n, v in feed.items())
        return [f"batch consistency: inputs disagree on the batch size along axis {batch_axis}: {shapes}"]
    batch = batch_sizes.pop()
    replicated = {
        name: np.repeat(np.take(np.asarray(value), [0], axis=batch_axis), batch, axis=batch_axis)
        for name, value in feed.items()
    }
    problems = []
    for name, value in infer(replicated).items():
        arr = np.asarray(value)
        if arr.ndim <= batch_axis or arr.shape[batch_axis] != batch:
            continue  # outputs without the batch axis have no rows to compare
        problem = _row_mismatch(name, arr, batch_axis, tolerance)
        if problem:
            problems.append(problem)
    return problems


def _row_mismatch(
    name: str, arr: np.ndarray, batch_axis: int, tolerance: OutputTolerance | None
) -> str:
    rows = np.moveaxis(arr, batch_axis, 0)
    first = rows[0:1]
    if _kind(arr.dtype) == "float":
        rows64, first64 = rows.astype(np.float64), first.astype(np.float64)
        with np.errstate(invalid="ignore"):
            diff = np.abs(rows64 - first64)
        same_nonfinite = (rows64 == first64) | (np.isnan(rows64) & np.isnan(first64))
        diff = np.where(same_nonfinite, 0.0, np.nan_to_num(diff, nan=np.inf))
        if tolerance is None:
            bad = diff > 0
        else:
            bad = diff > tolerance.atol + tolerance.rtol * np.abs(np.nan_to_num(first64))
    else:
        diff = (rows != first).astype(np.float64)
        bad = diff > 0
    bad_rows = bad.reshape(bad.shape[0], -1).any(axis=1)
    if not bad_rows.any():
        return ""
    row_worst = diff.reshape(diff.shape[0], -1).max(axis=1)
    worst_row = int(np.argmax(np.where(bad_rows, row_worst, -1.0)))
    rule = "exactly" if tolerance is None else f"at {tolerance.rule()}"
    return (
        f"batch consistency: output {name!r} differs across {rows.shape[0]} copies of the same "
        f"sample: {int(bad_rows.sum())} rows differ from row 0 ({rule}); worst row {worst_row} "
        f"|d|={short_number(row_worst[worst_row])}"
    )


def save_failure(
    directory: Path,
    test_id: str,
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
) -> Path:
    """Write ``<safe test id>.npz`` under ``directory`` atomically; keys are ``input:<name>``,
    ``output:<name>`` and ``reference:<name>``. Returns the file's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {}  # savez_compressed's keywords
    for prefix, group in (("input", inputs), ("output", outputs), ("reference", reference)):
        for name, value in group.items():
            array = np.asarray(value)
            if array.dtype.hasobject:  # would need pickle, which load_failure refuses
                raise ValueError(f"save_failure({test_id!r}): {prefix} {name!r} is an object array")
            arrays[f"{prefix}:{name}"] = array
    target = directory / f"{_safe_name(test_id)}.npz"
    write_atomic_with(target, lambda stream: np.savez_compressed(stream, **arrays))
    return target


def save_diagnosis(saved: Path, diagnosis: Diagnosis) -> Path:
    """Write the diagnosis beside a failure's ``.npz`` as ``<same name>.diagnosis.json``."""
    from pytest_trt.serde import dumps

    target = saved.with_suffix(".diagnosis.json")
    write_atomic_with(target, lambda stream: stream.write(dumps(diagnosis, indent=2).encode()))
    return target


def load_failure(
    path: Path,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Read a file written by ``save_failure`` back as (inputs, outputs, reference)."""
    groups: dict[str, dict[str, np.ndarray]] = {"input": {}, "output": {}, "reference": {}}
    with np.load(Path(path), allow_pickle=False) as data:
        for key in data.files:
            prefix, sep, name = key.partition(":")
            if not sep or prefix not in groups:
                raise ValueError(
                    f"{path}: key {key!r} is not input:<name>, output:<name> or reference:<name>; "
                    "was this file written by pytest-trt's save_failure?"
                )
            groups[prefix][name] = data[key]
    return groups["input"], groups["output"], groups["reference"]


def _safe_name(test_id: str) -> str:
    """A file name from a test id; a hash keeps ids that sanitize alike apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", test_id).strip("._") or "test"
    if safe != test_id or len(safe) > 120:
        safe = f"{safe[:120]}-{hashlib.sha256(test_id.encode()).hexdigest()[:8]}"
    return safe


def _kind(dtype: np.dtype) -> str:
    if dtype.kind == "f":
        return "float"
    if dtype.kind in "iu":
        return "integer"
    if dtype.kind == "b":
        return "bool"
    return "unsupported"


def _names(outputs: Mapping[str, Any]) -> str:
    return ", ".join(repr(n) for n in outputs) or "nothing"


