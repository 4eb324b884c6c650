"""The gates of one test, evaluated after its body passed: accuracy, perf budgets, baseline.

``evaluate(gates, engine, context)`` measures and compares, and returns an ``ItemOutcome``: the
test's ``TestRecord``, assembled once from what each gate returned, and the failure text. It
never fails the test itself (the plugin does, from the outcome) and needs no ``pytest.Item``, so
it is tested directly. The one thing it writes is a failure's ``.npz`` under
``--trt-save-failures``; baselines to record are returned as staged entries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pytest_trt import backends
from pytest_trt.backends.base import Runner, device_memory, device_memory_together
from pytest_trt.backends.layer_profile import LayerProfile
from pytest_trt.baselines.entry import BaselineEntry, BaselineInput
from pytest_trt.baselines.git import tracked_path
from pytest_trt.baselines.interleaved import ORDER, SideBySide
from pytest_trt.baselines.store import BaselineStore
from pytest_trt.baselines.subject import TestSubject
from pytest_trt.errors import BackendError, InferenceError, PytestTrtError
from pytest_trt.judge import accuracy, divergence, layer_times
from pytest_trt.judge import budgets as budget_rules
from pytest_trt.judge.baseline_gate import (
    BaselineMode,
    BaselineNote,
    BaselineOutcome,
    BaselinePolicy,
    accuracy_stats,
    judge_baseline,
)
from pytest_trt.judge.diagnosis import Diagnosis, DiagnosisState
from pytest_trt.judge.item_gates import ItemGates, sweep_nodeid
from pytest_trt.judge.perf_mode import PerfMode
from pytest_trt.judge.precision_fix import Diagnoser, diagnosable
from pytest_trt.judge.records import (
    GPU_BUDGET,
    BudgetOutcome,
    BudgetState,
    StreamsPoint,
    SweepPoint,
    TestRecord,
    TestStatus,
)
from pytest_trt.judge.sweep import SweepRun, judge_point, judge_streams, latency_label, within_latency
from pytest_trt.prepare.baseline_model import BaselineModels
from pytest_trt.prepare.engines import Engine
from pytest_trt.prepare.inputs import describe_generated
from pytest_trt.prepare.model_steps import StepHow
from pytest_trt.prepare.progress import Phase, Progress
from pytest_trt.specs import AccuracySpec, MeasureSettings, PerfBudget, Reference
from pytest_trt.timing import measure, rotation
from pytest_trt.timing.concurrent import measure_concurrent
from pytest_trt.timing.fresh_process import ProcessPlace, measure_in_fresh_process
from pytest_trt.timing.lock import LockWait
from pytest_trt.timing.measure import PerfResult


@dataclass(frozen=True)
class GateContext:
    """What the session lends the gates of one test."""

    subject: TestSubject
    perf_mode: PerfMode
    baseline: BaselinePolicy
    # The outputs the engine is compared with, for a feed: the kind the spec asks for (the
    # onnxruntime run of the model or export, or the torch module) is the third argument.
    reference: Callable[[Engine, Mapping[str, np.ndarray], Reference], dict[str, np.ndarray]]
    baseline_store: Callable[[], tuple[BaselineStore, dict[str, str]]]  # this backend's store, software facts
    save_failures: Path | None = None
    progress: Progress = field(default_factory=Progress)  # hears of measurements that run long
    lock_wait: LockWait = field(default_factory=LockWait)  # how a measurement waits for its device
    profile_layers: bool = False  # --trt-profile-layers: a profiling pass after every timed test
    diagnoser: Diagnoser | None = None  # --trt-diagnose: what an fp16/bf16 accuracy failure's diagnosis uses
    processes: ProcessPlace = field(default_factory=ProcessPlace)  # --trt-fresh-processes
    # The engines of the models baselines were recorded from (read back from git): what an
    # interleaved A/B times beside this test's engine. None: no A/B.
    baseline_models: BaselineModels | None = None


@dataclass(frozen=True)
class ItemOutcome:
    record: TestRecord
    message: str  # what the test's failure shows; "" when its gates passed
    staged: BaselineEntry | None = None  # a baseline entry to record (--trt-update-baselines)
    staged_sweep: tuple[tuple[str, BaselineEntry], ...] = ()  # a sweep's entries, by their baseline name


@dataclass
class _Perf:
    result: PerfResult | None = None
    budgets: list[BudgetOutcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)  # budgets the sample cannot judge for sure


def evaluate(gates: ItemGates, engine: Engine, context: GateContext) -> ItemOutcome:
    """Run the test's gates on the engine and judge them; user errors become an error outcome."""
    feed = engine.sample_inputs()
    result: accuracy.AccuracyResult | None = None
    perf = _Perf()
    baseline = BaselineOutcome(BaselineNote.OFF)
    sweep = SweepRun()
    layers: LayerProfile | None = None
    failures: list[str] = []
    try:
        if gates.accuracy is not None:
            result, accuracy_failures = check_accuracy(engine, gates.accuracy, feed, context)
            failures += accuracy_failures
        swept = _swept_budget(gates.budgets, engine.backend, context.perf_mode)
        if swept is not None:
            sweep = check_streams(engine, gates, swept, context) if swept.streams else \
                check_sweep(engine, gates, swept, context)
            perf = _Perf(budgets=_others(gates.budgets, swept, engine.backend), doubts=sweep.doubts)
            failures += sweep.failures
        elif gates.budgets:
            perf, baseline = _perf_and_baseline(engine, gates.budgets, feed, result, context)
            if perf.result is not None:
                layers, baseline = profile_layers(engine, feed, perf, baseline, context)
            failures += perf.failures + list(baseline.failures)
    except PytestTrtError as exc:
        problem = f"pytest-trt: {exc}"
        if isinstance(exc, InferenceError) and engine.spec.inputs is None:
            problem += "\n" + describe_generated(engine.model, feed, engine.spec.range_map)
        record = dataclasses.replace(_record(context, TestStatus.ERROR, result, perf, baseline, (problem,)), step=exc.step)
        return ItemOutcome(record, problem)
    status = TestStatus.FAILED if failures else TestStatus.PASSED
    record = dataclasses.replace(_record(context, status, result, perf, baseline, tuple(failures)), layers=layers)
    if sweep.points or sweep.streams:
        record = dataclasses.replace(
            record, sweep=tuple(sweep.points), streams=tuple(sweep.streams),
            warnings=record.warnings + tuple(sweep.warnings), baseline_state=sweep.baseline_state,
        )
    message = ""
    if failures:
        message = f"pytest-trt gates failed (backend {engine.backend}):\n" + "\n".join(failures)
    return ItemOutcome(record, message, baseline.staged, tuple(sweep.staged))


def _perf_and_baseline(
    engine: Engine,
    budgets: tuple[PerfBudget, ...],
    feed: dict[str, np.ndarray],
    result: accuracy.AccuracyResult | None,
    context: GateContext,
) -> tuple[_Perf, BaselineOutcome]:
    """One measurement judged by the budgets, then compared with its baseline."""
    perf = check_perf(engine, budgets, feed, context)
    if perf.result is None:
        return perf, BaselineOutcome(BaselineNote.OFF)
    failed = _failed_gates(result, bool(perf.failures))
    return perf, check_baseline(engine, budgets, feed, perf.result, result, context, failed)


def _failed_gates(result: accuracy.AccuracyResult | None, missed_budget: bool) -> tuple[str, ...]:
    """The gates a measurement failed, which keep it from being recorded as a baseline."""
    failed = ("accuracy",) if result is not None and not result.passed else ()
    return failed + (("perf budget",) if missed_budget else ())


def _record(
    context: GateContext,
    status: TestStatus,
    result: accuracy.AccuracyResult | None,
    perf: _Perf,
    baseline: BaselineOutcome,
    failures: tuple[str, ...],
) -> TestRecord:
    perf_warnings = tuple(perf.result.warnings) if perf.result is not None else ()
    return TestRecord(
        subject=context.subject,
        status=status,
        accuracy=result,
        perf=perf.result,
        budgets=tuple(perf.budgets),
        regression=baseline.verdict,
        baseline_note=baseline.note,
        baseline_state=baseline.state,
        warnings=perf_warnings + baseline.warnings,
        doubts=tuple(perf.doubts),
        failures=failures,
        history=baseline.history,
        memory=baseline.memory,
    )


def check_accuracy(
    engine: Engine, spec: AccuracySpec, feed: dict[str, np.ndarray], context: GateContext
) -> tuple[accuracy.AccuracyResult, list[str]]:
    actual = engine.infer(feed)
    asked = engine.spec.reference
    reference = context.reference(engine, feed, asked)
    result = accuracy.compare_outputs(actual, reference, spec, quantized=engine.quantized)
    outputs_missed = not result.passed
    if spec.batch_consistency:
        # Rows may differ by kernel rounding (batched GEMMs pick other tactics), not more.
        result = result.with_problems(accuracy.check_batch_consistency(engine.infer, feed, tolerance=spec.default))
    if result.passed:
        return result, []
    message = result.failure_message() + "\n" + reference_line(engine)
    if outputs_missed and asked is Reference.TORCH:
        message += "\n" + torch_divergence(engine, spec, feed, actual, reference, context)
    if outputs_missed and context.diagnoser is not None and diagnosable(engine):
        result = _diagnosed(engine, spec, feed, reference, result, context)
        assert result.diagnosis is not None
        message += "\n" + "\n".join(result.diagnosis.lines())
    if context.save_failures is not None:
        saved = accuracy.save_failure(context.save_failures, context.subject.nodeid, feed, actual, reference)
        message += f"\ninputs, outputs and reference saved to {saved}"
        if result.diagnosis is not None:
            message += f"\ndiagnosis saved to {accuracy.save_diagnosis(saved, result.diagnosis)}"
    return result, ["accuracy: " + message.replace("\n", "\n  ")]


def _diagnosed(
    engine: Engine,
    spec: AccuracySpec,
    feed: dict[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    result: accuracy.AccuracyResult,
    context: GateContext,
) -> accuracy.AccuracyResult:
    """The failed result with its diagnosis: where the error starts, and the fix that passed."""
    from pytest_trt.judge import precision_fix

    assert context.diagnoser is not None
    subject = f"{context.subject.nodeid}: where the {engine.precision.value} error starts"
    with context.progress.phase(Phase.DIAGNOSE, subject, expected_s=context.diagnoser.cap_s):
        try:
            found = precision_fix.diagnose(engine, spec, feed, reference, context.diagnoser)
        except Exception as exc:  # onnx, onnxruntime or a rebuild: the diagnosis explains a failure, never makes one
            found = Diagnosis(DiagnosisState.FAILED, engine.precision.value, reason=f"{type(exc).__name__}: {exc}")
    return dataclasses.replace(result, diagnosis=found)


def reference_line(engine: Engine) -> str:
    """Which reference the accuracy gate compared with, as the failure report says it."""
    if engine.spec.reference is Reference.TORCH:
        return f"reference: the torch module {engine.spec.source} (CPU, fp32, torch.no_grad())"
    what = f"the export of {engine.spec.source}" if engine.spec.torch is not None else engine.model.path.name
    return f"reference: onnxruntime running {what} in fp32 on CPU"


def torch_divergence(
    engine: Engine,
    spec: AccuracySpec,
    feed: dict[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    module: Mapping[str, np.ndarray],
    context: GateContext,
) -> str:
    """Engine vs export vs module: the export's onnxruntime outputs say which step diverged."""
    export = context.reference(engine, feed, Reference.ONNXRUNTIME)
    found = divergence.locate(actual, export, module, spec, quantized=engine.quantized)
    made = engine.provenance.export
    return "diagnosis: " + found.message(export_cached=made is not None and made.how is StepHow.LOADED)


def running_budget(budgets: tuple[PerfBudget, ...], backend: str) -> PerfBudget | None:
    """The budget the running backend enforces: one naming it, else a GPU budget it runs."""
    named = next((b for b in budgets if b.backend == backend), None)
    return named or next((b for b in budgets if budget_rules.applies(b, backend)), None)


def measure_settings(budgets: tuple[PerfBudget, ...], backend: str) -> MeasureSettings:
    """How to measure: the running backend's mark decides; else the first mark's settings."""
    return (running_budget(budgets, backend) or budgets[0]).measure


def _measured(
    engine: Engine,
    feed: dict[str, np.ndarray],
    settings: MeasureSettings,
    percentiles: tuple[float, ...],
    context: GateContext,
    phase: Phase,
    runner: Runner | None = None,
    batch: int | None = None,
) -> PerfResult:
    used = engine.runner if runner is None else runner
    queries = engine.batch if batch is None else batch

    def measured() -> PerfResult:
        result = measure.measure(used, feed, settings, queries, percentiles=percentiles, lock_wait=context.lock_wait)
        return dataclasses.replace(result, device_memory=device_memory(used))

    return _progress_step(context, phase, f"{context.subject.nodeid} on {engine.backend}", settings, measured)


def _progress_step(
    context: GateContext, phase: Phase, subject: str, settings: MeasureSettings, run: Callable[[], PerfResult]
) -> PerfResult:
    """``run()`` as a step of the progress lines, which a measurement that runs long prints."""
    asked_s = (settings.warmup_ms + settings.min_duration_ms) / 1000
    with context.progress.phase(phase, subject, expected_s=asked_s) as step:
        result = run()
        step.detail = f"{result.iterations} iterations"
        step.waited_s = result.lock_wait_s  # queued for the device: not part of the measurement
    return result


def _threads_advice(engine: Engine) -> bool:
    """Whether one thread would steady the timings: the backend has the option, unused."""
    takes = "intra_op_threads" in backends.get(engine.backend).build_options
    return takes and engine.build.option_map.get("intra_op_threads") != 1


def check_perf(
    engine: Engine, budgets: tuple[PerfBudget, ...], feed: dict[str, np.ndarray], context: GateContext
) -> _Perf:
    running, mode = engine.backend, context.perf_mode
    perf = _Perf()
    if mode is not PerfMode.OFF:
        judged = budget_rules.judged_percentiles(budgets, running)
        perf.result = _measured(engine, feed, measure_settings(budgets, running), judged, context, Phase.MEASURE)
    for budget in budgets:
        applies = budget_rules.applies(budget, running)
        # A GPU budget a GPU backend runs is that backend's; on a CPU backend it stays "gpu".
        owner = running if applies else budget.backend or GPU_BUDGET
        if perf.result is None:
            outcome = _outcome(owner, budget, BudgetState.NOT_MEASURED, "not measured (--trt-perf=off)")
        elif not applies:
            why = f"{running} runs on the CPU" if budget.backend is None else f"running {running}"
            outcome = _outcome(owner, budget, BudgetState.NOT_ENFORCED, f"not enforced ({why})")
        else:
            outcome = _judged(engine, budget, perf, mode)
        perf.budgets.append(outcome)
    return perf


def _judged(engine: Engine, budget: PerfBudget, perf: _Perf, mode: PerfMode) -> BudgetOutcome:
    """A budget the running backend enforces, judged on the measurement (in ``perf``)."""
    assert perf.result is not None
    running = engine.backend
    missed = budget_rules.budget_failures(perf.result, budget)
    perf.doubts += budget_rules.budget_doubts(perf.result, budget, threads_advice=_threads_advice(engine))
    if mode is PerfMode.ENFORCE:
        perf.failures += [f"perf ({running}): {m}" for m in missed]
        return _outcome(running, budget, BudgetState.FAILED if missed else BudgetState.PASSED, "; ".join(missed))
    state = BudgetState.REPORT_OVER if missed else BudgetState.REPORT_WITHIN
    note = "; ".join(missed) if missed else "within budget"
    return _outcome(running, budget, state, f"report only: {note}")


def _outcome(owner: str, budget: PerfBudget, state: BudgetState, message: str) -> BudgetOutcome:
    """The outcome of one budget, with its limits for the reports that draw them."""
    latency = budget.max_latency_ms
    return BudgetOutcome(
        owner, budget_rules.describe_budget(budget), state, message,
        max_latency_ms=latency, percentile=budget.percentile if latency is not None else None,
        min_throughput=budget.min_throughput,
    )


def check_baseline(
    engine: Engine,
    budgets: tuple[PerfBudget, ...],
    feed: dict[str, np.ndarray],
    first: PerfResult,
    result: accuracy.AccuracyResult | None,
    context: GateContext,
    failed_gates: tuple[str, ...],
    batch: int | None = None,
) -> BaselineOutcome:
    """Compare the measurement with the stored baseline (or stage it with --trt-update-baselines);
    with ``batch``, the baseline of that point of a sweep (a baseline per batch size)."""
    policy = context.baseline
    if policy.mode is BaselineMode.OFF:
        return BaselineOutcome(BaselineNote.OFF)
    own = running_budget(budgets, engine.backend)
    if own is not None and own.max_regression is not None:
        policy = BaselinePolicy(policy.mode, policy.update, own.max_regression, policy.enforce, policy.commit)
    settings = measure_settings(budgets, engine.backend)

    judged = budget_rules.judged_percentiles(budgets, engine.backend)

    if policy.update:
        settings = settings.for_further_recording_session()

    subject = context.subject
    if batch is not None:
        subject = dataclasses.replace(
            subject, nodeid=sweep_nodeid(subject.nodeid, batch), workload=engine.workload(feed, batch)
        )
    measured = BaselineInput(subject, perf=first, accuracy=accuracy_stats(result))
    store, software = context.baseline_store()
    engine_own = not getattr(engine.runner, "device_memory_since_open", False)
    source = tracked_path(engine.model.path) if policy.update and engine.spec.torch is None else None
    sessions = _FreshSessions(engine, context, feed, settings, judged, batch)
    try:
        return judge_baseline(
            store, measured, sessions.measure, policy, software=software,
            failed_gates=failed_gates, memory_engine_own=engine_own, model_source=source,
            baseline_model=sessions.of_baseline_model,
        )
    finally:
        sessions.release()


@dataclass(frozen=True)
class _FreshSessions:
    """Fresh sessions measured for a baseline: of the test's engine, each as the test's own
    measurement was taken, or of it and the model a baseline was recorded from, timed in turns
    (an interleaved A/B)."""

    engine: Engine
    context: GateContext
    feed: dict[str, np.ndarray]
    settings: MeasureSettings
    judged: tuple[float, ...]
    batch: int | None
    made: list[Engine] = field(default_factory=list)  # baseline models' engines, closed by release()

    def measure(self) -> PerfResult:
        """A measurement of a fresh session of the test's engine (in a fresh process under
        --trt-fresh-processes=on, where one can load the engine): the regression rule samples
        sessions, not one repeated."""
        context, settings, engine = self.context, self.settings, self.engine
        queries = engine.batch if self.batch is None else self.batch
        job = engine.process_job(context.processes, self.feed, settings, queries, self.judged, context.lock_wait)
        failed = ""
        if job is not None:
            subject = f"{context.subject.nodeid} on {engine.backend}, in a fresh process"
            try:
                return _progress_step(context, Phase.REMEASURE, subject, settings, lambda: measure_in_fresh_process(job))
            except BackendError as exc:
                failed = str(exc)
        with engine.fresh_runner() as runner:
            result = _measured(engine, self.feed, settings, self.judged, context, Phase.REMEASURE, runner, self.batch)
        if failed:
            return dataclasses.replace(result, warnings=[*result.warnings, f"measured in this process: {failed}"])
        return result

    def side_by_side(self, baseline: Engine) -> SideBySide:
        """Fresh sessions of the test's engine and of ``baseline``, timed in turns in this process."""
        context = self.context
        with contextlib.ExitStack() as opened:
            runners = [opened.enter_context((self.engine if s == "B" else baseline).fresh_runner()) for s in ORDER]
            subject = f"{context.subject.nodeid} on {self.engine.backend}, beside the baseline's model"
            with context.progress.phase(Phase.REMEASURE, subject, expected_s=rotation.expected_s(self.settings, len(runners))) as step:
                timed = rotation.measure_rotation(runners, self.feed, self.settings, lock_wait=context.lock_wait)
                step.detail = f"{len(runners)} sessions in turns"
                step.waited_s = timed[0].lock_wait_s
        return SideBySide.in_order(timed)

    def of_baseline_model(self, entry: BaselineEntry) -> Callable[[], SideBySide] | str | None:
        """The A/B against the model ``entry`` was recorded from, why there is none, or None
        where the entry names no model in git."""
        models = self.context.baseline_models
        made = models.engine(self.engine, entry) if models is not None else None
        if made is None or isinstance(made, str):
            return made
        self.made.append(made)
        return functools.partial(self.side_by_side, made)

    def release(self) -> None:
        """Close the baseline models' engines this comparison made (``made`` is empty without them)."""
        models = self.context.baseline_models
        if models is not None:
            for made in self.made:
                models.release(made)


# ---- batch_sizes=: one engine measured at each batch size -----------------------------------


def _swept_budget(budgets: tuple[PerfBudget, ...], backend: str, mode: PerfMode) -> PerfBudget | None:
    """The running backend's budget where it sweeps batch sizes or runs streams (and perf is measured)."""
    own = running_budget(budgets, backend)
    swept = own is not None and bool(own.batch_sizes or own.streams)
    return own if swept and mode is not PerfMode.OFF else None


def _others(budgets: tuple[PerfBudget, ...], swept: PerfBudget, running: str) -> list[BudgetOutcome]:
    """The budgets a sweep does not judge: other backends', shown as not enforced."""
    return [
        BudgetOutcome(b.backend or GPU_BUDGET, budget_rules.describe_budget(b), BudgetState.NOT_ENFORCED,
                      f"not enforced (running {running})")
        for b in budgets if b is not swept
    ]


def check_sweep(engine: Engine, gates: ItemGates, budget: PerfBudget, context: GateContext) -> SweepRun:
    """Measure the engine at each batch size, re-warmed after each shape change; judge each
    point's accuracy, budget and baseline. Every failure names its batch."""
    run = SweepRun()
    judged = budget_rules.judged_percentiles(gates.budgets, engine.backend)
    for batch in budget.batch_sizes:
        feed = engine.batched(batch)
        checked = None
        if gates.accuracy is not None:
            checked, missed = check_accuracy(engine, gates.accuracy, feed, context)
            run.failures += [f"at batch {batch}: {m}" for m in missed]
        result = _measured(engine, feed, budget.measure, judged, context, Phase.MEASURE, batch=batch)
        run.warnings += [f"batch {batch}: {w}" for w in result.warnings]
        at_batch = budget.at_batch(batch)
        outcome, missed, doubts = judge_point(
            result, at_batch, engine.backend, context.perf_mode, batch, threads_advice=_threads_advice(engine)
        )
        run.failures += missed
        run.doubts += doubts
        failed = _failed_gates(checked, bool(missed))
        baseline = check_baseline(engine, gates.budgets, feed, result, checked, context, failed, batch=batch)
        run.failures += [f"at batch {batch}: {f}" for f in baseline.failures]
        run.warnings += [f"batch {batch}: {w}" for w in baseline.warnings]
        if baseline.staged is not None:
            run.staged.append((sweep_nodeid(context.subject.nodeid, batch), baseline.staged))
        run.points.append(SweepPoint(
            batch=batch, latency=result.latency, throughput=result.throughput, iterations=result.iterations,
            duration_s=result.duration_s, device_memory=result.device_memory,
            latency_budget=latency_label(at_batch), within_latency=within_latency(result, at_batch),
            budgets=(outcome,), accuracy_passed=None if checked is None else checked.passed,
            regression=baseline.verdict, baseline_note=baseline.note, baseline_state=baseline.state,
            memory=baseline.memory,
        ))
    return run


# ---- streams=: N runners of the engine at once --------------------------------------------------


def check_streams(engine: Engine, gates: ItemGates, budget: PerfBudget, context: GateContext) -> SweepRun:
    """For each number of streams N: N fresh runners of the engine, each with its own copy of
    the inputs, checked against the reference, then timed together from N threads."""
    run = SweepRun()
    for count in budget.streams:
        with contextlib.ExitStack() as opened:
            runners = [opened.enter_context(engine.fresh_runner(sharing=True)) for _ in range(count)]
            feeds = [engine.sample_inputs() for _ in runners]
            checked = _streams_accuracy(engine, gates, runners, feeds, context, run) if gates.accuracy else None
            subject = f"{context.subject.nodeid} on {engine.backend}, {count} streams"
            asked_s = (budget.measure.warmup_ms + budget.measure.min_duration_ms) / 1000
            with context.progress.phase(Phase.MEASURE, subject, expected_s=asked_s):
                result = measure_concurrent(runners, feeds, budget.measure, engine.batch, lock_wait=context.lock_wait)
            result = dataclasses.replace(result, device_memory=device_memory_together(runners))
        run.warnings += [f"{count} streams: {w}" for w in result.warnings]
        outcome, missed = judge_streams(result, budget, engine.backend, context.perf_mode)
        run.failures += missed
        run.streams.append(StreamsPoint(
            streams=count, latency=result.latency, throughput=result.throughput, iterations=result.iterations,
            per_stream=result.per_stream, duration_s=result.duration_s, clock=result.clock, budgets=(outcome,),
            device_memory=result.device_memory,
            accuracy_passed=checked,
        ))
    return run


def _streams_accuracy(
    engine: Engine, gates: ItemGates, runners: list[Runner], feeds: list[dict[str, np.ndarray]],
    context: GateContext, run: SweepRun,
) -> bool:
    """Every stream's outputs compared with the reference; a failure names the stream."""
    assert gates.accuracy is not None
    reference = context.reference(engine, feeds[0], engine.spec.reference)
    passed = True
    for index, (runner, feed) in enumerate(zip(runners, feeds, strict=True)):
        engine.check_shapes(feed)
        result = accuracy.compare_outputs(runner.infer(feed), reference, gates.accuracy, quantized=engine.quantized)
        if not result.passed:
            passed = False
            run.failures.append(f"accuracy of stream {index} of {len(runners)}: " + result.failure_message().replace("\n", "\n  "))
    return passed


def profile_layers(
    engine: Engine, feed: dict[str, np.ndarray], perf: _Perf, baseline: BaselineOutcome, context: GateContext
) -> tuple[LayerProfile | None, BaselineOutcome]:
    """The profiling pass, after every timed measurement of the test: asked for, or a budget
    missed, a regression confirmed, or a baseline being recorded (its entry keeps the profile).
    A regression's failure then says where the time went; a missed budget, where it is spent."""
    wanted = context.profile_layers or perf.failures or baseline.regressed or baseline.staged is not None
    if not wanted:
        return None, baseline
    try:
        found = layer_times.profile(engine.runner, feed, context.lock_wait)
    except PytestTrtError as exc:  # the profile explains a verdict; it never makes one
        return None, dataclasses.replace(baseline, warnings=(*baseline.warnings, f"layers not profiled: {exc}"))
    if found is None:
        return None, baseline
    kept = found.compact()
    if baseline.staged is not None:
        baseline = dataclasses.replace(baseline, staged=dataclasses.replace(baseline.staged, layers=kept))
    if baseline.regressed and baseline.baseline_layers is not None:
        where = layer_times.where_time_went(baseline.baseline_layers, found)
        text = "\n  where the time went (layer profiles, this run vs the baseline's):\n    " + "\n    ".join(where)
        baseline = dataclasses.replace(baseline, failures=(baseline.failures[0] + text, *baseline.failures[1:]))
    if perf.failures:
        perf.failures[-1] += "\n  slowest layers: " + "; ".join(found.top_lines(3))
    return kept, baseline
