"""Marks -> validated ``ItemGates``, once per test item at collection.

A bad argument is a ``SpecError`` naming the mark and the argument; the plugin turns it into a
collection error naming the test. Backend names and build options are those the registered
backends declare (pytest_trt.backends), so a backend added by registration is valid here too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_trt import backends
from pytest_trt.errors import SpecError
from pytest_trt.judge.item_gates import ItemGates
from pytest_trt.specs import ModelSpec, PerfBudget, factory_name, make_accuracy_spec, make_perf_budget
from pytest_trt.specs import make_model_spec as _make_model_spec
from pytest_trt.specs.profiles import holds_batch

if TYPE_CHECKING:
    import pytest

    from pytest_trt.specs import MeasureSettings

# Positional arguments each mark accepts, in order, as in the marks' documented signatures.
_POSITIONAL = {
    "trt_model": ("path",),
    "trt_accuracy": ("rtol", "atol"),
    "trt_perf": ("max_latency_ms", "percentile", "min_throughput", "backend"),
}


def model_spec(path: str | Path | None = None, *, base_dirs: tuple[Path, ...] = (), **kwargs: Any) -> ModelSpec:
    """``trt_model`` arguments -> ModelSpec, with every registered backend's build options.
    The model is ``path`` or ``torch=`` (a factory returning a torch module)."""
    return _make_model_spec(path, base_dirs=base_dirs, backend_options=backends.build_options(), **kwargs)


def perf_budget(defaults: MeasureSettings, **kwargs: Any) -> PerfBudget:
    """One ``trt_perf`` mark's arguments -> PerfBudget for a registered backend."""
    return make_perf_budget(defaults, backends=backends.names(), **kwargs)


def search_dirs(test_path: Path, rootpath: Path) -> tuple[Path, ...]:
    """Where a relative model path is looked up: the test file's folder, then the rootdir."""
    return tuple(dict.fromkeys((Path(test_path).parent, Path(rootpath))))


def _mark_kwargs(mark: pytest.Mark) -> dict[str, Any]:
    names = _POSITIONAL[mark.name]
    if len(mark.args) > len(names):
        raise SpecError(
            f"{mark.name}: takes at most {len(names)} positional argument(s) ({', '.join(names)}), "
            f"got {len(mark.args)}"
        )
    kwargs = dict(mark.kwargs)
    for name, value in zip(names, mark.args, strict=False):
        if name in kwargs:
            raise SpecError(f"{mark.name}: argument {name!r} given both by position and by keyword")
        kwargs[name] = value
    return kwargs


def _model_path(mark: pytest.Mark) -> str:
    if not mark.args and "path" not in mark.kwargs and "torch" in mark.kwargs:
        return f"torch={factory_name(mark.kwargs['torch'])}"
    return repr(mark.args[0] if mark.args else mark.kwargs.get("path"))


def _call(mark: pytest.Mark) -> str:
    given = [repr(a) for a in mark.args] + [f"{k}={v!r}" for k, v in mark.kwargs.items()]
    return f"{mark.name}({', '.join(given)})"


def _prefixed(mark: str, exc: Exception) -> str:
    text = str(exc)
    return text if text.startswith(mark) else f"{mark}: {text}"


def read_gates(item: pytest.Item, measure_defaults: MeasureSettings) -> ItemGates:
    """Validate the item's marks; a SpecError names the mark and the argument."""
    own = {id(m) for m in item.own_markers}
    model_mark = _closest(item, own, "trt_model", _model_path)
    accuracy_mark = _closest(item, own, "trt_accuracy", _call)
    perf_marks = list(item.iter_markers("trt_perf"))
    if model_mark is None:
        for mark in (accuracy_mark, *perf_marks):
            if mark is not None:
                raise SpecError(f"{mark.name} needs a trt_model mark naming the model to gate")
        return ItemGates()
    base_dirs = search_dirs(item.path, item.config.rootpath)
    try:
        kwargs = _mark_kwargs(model_mark)
        model = model_spec(kwargs.pop("path", None), base_dirs=base_dirs, **kwargs)
    except (SpecError, TypeError) as exc:
        raise SpecError(_prefixed("trt_model", exc)) from None
    accuracy_spec = None
    if accuracy_mark is not None:
        try:
            accuracy_spec = make_accuracy_spec(**_mark_kwargs(accuracy_mark))
        except (SpecError, TypeError) as exc:
            raise SpecError(_prefixed("trt_accuracy", exc)) from None
    budgets = _budgets(perf_marks, own, measure_defaults)
    _check_sweeps(model, budgets)
    gates = ItemGates(model=model, accuracy=accuracy_spec, budgets=budgets)
    check_outputs_now(gates)
    return gates


def check_outputs_now(gates: ItemGates) -> None:
    """Output names in ``trt_accuracy(outputs=)`` checked at collection where the model is an
    ONNX file; a torch model's outputs are known once it is exported (checked then)."""
    model = gates.model
    if gates.accuracy is None or not gates.accuracy.outputs or model is None or model.path is None:
        return
    try:
        import onnx

        graph = onnx.load(str(model.path), load_external_data=False).graph
    except Exception:  # a model that cannot be read fails when its engine is made, saying why
        return
    gates.check_outputs([output.name for output in graph.output])


def _check_sweeps(model: ModelSpec, budgets: tuple[PerfBudget, ...]) -> None:
    """A sweep's batch sizes lie inside the model's profiles (``profile=``), where it has some."""
    for budget in budgets:
        outside = [b for b in budget.batch_sizes if not holds_batch(model.build.profiles, b)]
        if outside:
            shown = "; ".join(
                ", ".join(f"{b.name}: {b.min[0]}..{b.max[0]}" for b in p.inputs) for p in model.build.profiles
            )
            raise SpecError(
                f"trt_perf: batch_sizes: batch {outside[0]} is outside the batch range of trt_model's "
                f"profile= ({shown})"
            )


def _closest(item: pytest.Item, own: set[int], name: str, shown: Callable[[pytest.Mark], str]) -> pytest.Mark | None:
    """The item's closest ``name`` mark. A function's mark overrides a class or module one, as in
    pytest; two on the function itself are a mistake, not a choice to make silently."""
    marks = list(item.iter_markers(name))
    doubled = [m for m in marks if id(m) in own]
    if len(doubled) > 1:
        listed = " and ".join(shown(m) for m in reversed(doubled))  # in the order written
        raise SpecError(f"{name}: {len(doubled)} marks on the test function ({listed}); keep one")
    return marks[0] if marks else None


def _budgets(perf_marks: list[pytest.Mark], own: set[int], measure_defaults: MeasureSettings) -> tuple[PerfBudget, ...]:
    """One budget per backend. iter_markers yields the closest marks first: a function's budget
    for a backend overrides a class or module budget for the same backend; two on the function
    itself are a mistake."""
    budgets: dict[str | None, PerfBudget] = {}  # None: the GPU budget (no backend= given)
    for mark in perf_marks:
        try:
            budget = perf_budget(measure_defaults, **_mark_kwargs(mark))
        except (SpecError, TypeError) as exc:
            raise SpecError(_prefixed("trt_perf", exc)) from None
        if budget.backend in budgets:
            if id(mark) in own:
                which = "without backend= (GPU budgets)" if budget.backend is None else f"for backend {budget.backend!r}"
                raise SpecError(f"trt_perf: two marks {which}; keep one per backend")
            continue
        budgets[budget.backend] = budget
    return tuple(budgets.values())
