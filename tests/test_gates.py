"""gates.evaluate on a real engine, with no pytest item: the outcome is a value, nothing fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pytest_trt import backends
from pytest_trt.baselines.store import BaselineStore
from pytest_trt.baselines.subject import BuildFacts, ModelRef, TestSubject, Workload
from pytest_trt.errors import CudaError
from pytest_trt.judge.baseline_gate import BaselineNote, BaselinePolicy
from pytest_trt.judge.gates import GateContext, evaluate
from pytest_trt.judge.item_gates import ItemGates
from pytest_trt.judge.perf_mode import PerfMode
from pytest_trt.judge.records import BudgetState, TestStatus
from pytest_trt.prepare.engines import EngineFactory
from pytest_trt.run.marks import model_spec
from pytest_trt.specs import MeasureSettings, make_accuracy_spec, make_perf_budget
from pytest_trt.store.cache import EngineCache

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"
FAST = MeasureSettings(warmup_ms=0, min_iterations=30, min_duration_ms=0)


@pytest.fixture
def factory():
    made = EngineFactory(EngineCache(None), backends.create, seed=0)
    yield made
    made.close()


def gates(*, latency_ms: float | None = None, accuracy: bool = True) -> ItemGates:
    budgets = (make_perf_budget(FAST, backend="onnxruntime", max_latency_ms=latency_ms),) if latency_ms else ()
    return ItemGates(
        model=model_spec(MODELS / "mlp.onnx", batch_size=2),
        accuracy=make_accuracy_spec() if accuracy else None,
        budgets=budgets,
    )


def context(factory, tmp_path, *, perf_mode=PerfMode.ENFORCE, baseline_mode="off", update=False) -> GateContext:
    store = BaselineStore(tmp_path / "baselines", "cpu-test-2c")
    subject = TestSubject(
        nodeid="tests/test_m.py::test_mlp", module="tests/test_m.py", backend="onnxruntime",
        runtime_version="onnxruntime", model=ModelRef("mlp.onnx", "x"),
        build=BuildFacts("fp32"), workload=Workload({}, {}, batch=2, precision="fp32"),
    )
    return GateContext(
        subject=subject,
        perf_mode=perf_mode,
        baseline=BaselinePolicy(mode=baseline_mode, update=update, threshold=0.1),
        reference=factory.reference,
        baseline_store=lambda: (store, {}),
    )


def test_passing_gates_give_a_passed_record_and_no_message(factory, tmp_path):
    spec = gates(latency_ms=60_000)
    outcome = evaluate(spec, factory.engine(spec.model, "onnxruntime"), context(factory, tmp_path))
    assert outcome.message == "" and outcome.record.status is TestStatus.PASSED
    assert outcome.record.accuracy.passed and outcome.record.perf.iterations >= 30
    assert [b.state for b in outcome.record.budgets] == [BudgetState.PASSED]


@pytest.mark.parametrize(
    ("mode", "status", "state"),
    [
        (PerfMode.ENFORCE, TestStatus.FAILED, BudgetState.FAILED),
        (PerfMode.REPORT, TestStatus.PASSED, BudgetState.REPORT_OVER),
        (PerfMode.OFF, TestStatus.PASSED, BudgetState.NOT_MEASURED),
    ],
)
def test_a_missed_budget_fails_only_when_enforced(factory, tmp_path, mode, status, state):
    spec = gates(latency_ms=1e-6, accuracy=False)
    outcome = evaluate(spec, factory.engine(spec.model, "onnxruntime"), context(factory, tmp_path, perf_mode=mode))
    assert outcome.record.status is status
    assert [b.state for b in outcome.record.budgets] == [state]
    if status is TestStatus.FAILED:
        assert outcome.message.startswith("pytest-trt gates failed (backend onnxruntime):\nperf (onnxruntime): p50")
    assert (outcome.record.perf is None) == (mode is PerfMode.OFF)


def test_an_update_stages_an_entry_and_writes_nothing(factory, tmp_path):
    spec = gates(latency_ms=60_000)
    ctx = context(factory, tmp_path, baseline_mode="compare", update=True)
    outcome = evaluate(spec, factory.engine(spec.model, "onnxruntime"), ctx)
    assert outcome.record.baseline_state is BaselineNote.RECORDED
    assert outcome.staged is not None and outcome.staged.latency_ms.n >= 30
    assert not (tmp_path / "baselines").exists()


def test_a_test_that_failed_its_gates_stages_no_baseline(factory, tmp_path):
    spec = gates(latency_ms=1e-6)
    ctx = context(factory, tmp_path, baseline_mode="compare", update=True)
    outcome = evaluate(spec, factory.engine(spec.model, "onnxruntime"), ctx)
    assert outcome.staged is None and outcome.record.baseline_state is BaselineNote.NOT_RECORDED
    assert outcome.record.baseline_note == "baseline not recorded: the test failed its gates (perf budget)"


def test_a_cuda_failure_is_an_error_outcome_naming_the_call(factory, tmp_path, monkeypatch):
    spec = gates()
    engine = factory.engine(spec.model, "onnxruntime")

    def fail(feed):
        raise CudaError("cudaMemcpyAsync", "cudaErrorIllegalAddress")

    monkeypatch.setattr(engine, "infer", fail)
    outcome = evaluate(spec, engine, context(factory, tmp_path))
    assert outcome.record.status is TestStatus.ERROR
    assert outcome.message == "pytest-trt: cudaMemcpyAsync failed: cudaErrorIllegalAddress"


def test_the_record_serializes_the_subject_and_the_states(factory, tmp_path):
    spec = gates(latency_ms=60_000)
    outcome = evaluate(spec, factory.engine(spec.model, "onnxruntime"), context(factory, tmp_path))
    plain = outcome.record.as_dict()
    assert plain["nodeid"] == "tests/test_m.py::test_mlp" and plain["status"] == "passed"
    assert plain["budgets"][0]["state"] == "passed" and plain["baseline_state"] == "off"
    assert replace(outcome.record, status=TestStatus.FAILED).as_dict()["status"] == "failed"
