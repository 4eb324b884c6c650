"""What the marks mean: frozen, validated specs built once at collection.

Every constructor here raises SpecError naming the offending argument; the plugin prefixes the
test id. Specs are hashable (engines are shared per distinct spec) and JSON-friendly
(``as_dict``) so that cache keys and baselines can record them without pickle. One module per
mark: ``model`` (with ``torch`` and ``profiles``), ``accuracy``, ``perf``.
"""

from pytest_trt.specs.accuracy import AccuracySpec, OutputTolerance, format_tolerance, make_accuracy_spec
from pytest_trt.specs.model import (
    TRANSFORM_BUILD_OPTIONS,
    BuildSpec,
    ModelSpec,
    Reference,
    make_model_spec,
)
from pytest_trt.specs.perf import MeasureSettings, PerfBudget, make_perf_budget
from pytest_trt.specs.torch import ExampleArray, TorchSpec, dynamic_axes, factory_name

__all__ = [
    "TRANSFORM_BUILD_OPTIONS", "AccuracySpec", "BuildSpec", "ExampleArray", "MeasureSettings", "ModelSpec",
    "OutputTolerance", "PerfBudget", "Reference", "TorchSpec", "dynamic_axes", "factory_name",
    "format_tolerance", "make_accuracy_spec", "make_model_spec", "make_perf_budget",
]
