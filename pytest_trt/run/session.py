"""The run state of one pytest process: settings, the backend chosen for the run, the engine
factory, the baseline stores and what the gated tests produced, from configure to unconfigure.

One ``RunState`` lives on ``config.stash``; ``plugin.py`` stays a list of hooks that call it.
The per-test work is ``gates.evaluate``; reports are written from ``collected`` at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_trt import backends
from pytest_trt.backends import BackendInfo, DeviceKind
from pytest_trt.errors import CacheError, PytestTrtError
from pytest_trt.judge.perf_mode import PerfMode
from pytest_trt.prepare.progress import Progress, terminal_writer, write_on_own_line
from pytest_trt.reports.notes import SummaryNote
from pytest_trt.run.options import Settings
from pytest_trt.run.xdist import WorkerReport
from pytest_trt.types import Availability, BackendContext, GpuPlacement, SetupStep

if TYPE_CHECKING:
    import pytest

    from pytest_trt.backends.base import Backend
    from pytest_trt.baselines.store import BaselineStore
    from pytest_trt.judge.gates import ItemOutcome
    from pytest_trt.judge.item_gates import ItemGates
    from pytest_trt.judge.precision_fix import Diagnoser
    from pytest_trt.judge.records import TestRecord
    from pytest_trt.prepare.engines import Engine, EngineFactory
    from pytest_trt.specs import ModelSpec
    from pytest_trt.store.cache import EngineCache


# ---- backend choice -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendChoice:
    name: str
    reason: str  # shown in the header: why this backend runs
    passed_over: tuple[tuple[str, str], ...] = ()  # (backend title, why not usable), best first

    def header(self, verbose: bool = True) -> list[str]:
        """The header's lines. On a CPU backend, the GPU backends that cannot run are one line
        unless ``verbose`` (-v): a CPU-only machine is no news to its user."""
        on_cpu = backends.get(self.name).device is DeviceKind.CPU
        if self.passed_over and on_cpu and not verbose:
            tried = len(self.passed_over)
            return [
                f"pytest-trt: backend {self.name} ({self.reason})",
                f"pytest-trt:   no GPU backend can run here ({tried} tried; -v says why)",
            ]
        if len(self.passed_over) == 1:
            title, why = self.passed_over[0]
            return [f"pytest-trt: backend {self.name} ({title} unavailable: {why})"]
        lines = [f"pytest-trt: backend {self.name} ({self.reason})"]
        lines += [f"pytest-trt:   {title} unavailable: {why}" for title, why in self.passed_over]
        return lines


def availability_of(info: BackendInfo, settings: Settings, gpu: int = 0) -> Availability:
    """Whether the backend can run here, on GPU ``gpu`` (the process's: a probe makes no CUDA
    context on another GPU); a broken adapter counts as unavailable, with its error."""
    try:
        return info.create(BackendContext(settings=settings, gpu=gpu)).availability()
    except Exception as exc:  # whatever a backend raises means "not usable here"
        return Availability(False, f"{type(exc).__name__}: {exc}")


def choose_backend(settings: Settings, gpu: int = 0) -> BackendChoice:
    """The backend for this run, whose GPU backends run on GPU ``gpu``. Raises UsageError where
    falling back would hide a problem: a named backend that cannot run, or ``--trt-require-gpu``
    without a usable GPU backend."""
    import pytest

    registered = backends.registered()
    gpu_names = [n for n, i in registered.items() if i.device is DeviceKind.GPU]
    if settings.backend != "auto":
        info = backends.get(settings.backend)
        flag = f"--trt-backend={info.name}"
        if settings.require_gpu and info.device is not DeviceKind.GPU:
            raise pytest.UsageError(
                f"pytest-trt: --trt-require-gpu needs a GPU backend ({', '.join(sorted(gpu_names))}), "
                f"but {flag} was given"
            )
        found = availability_of(info, settings, gpu)
        if not found.ok:
            raise pytest.UsageError(f"pytest-trt: {flag}, but {info.label} is unavailable: {found.reason}")
        return BackendChoice(info.name, flag)
    ranked = [(i.auto_rank, i) for i in registered.values() if i.auto_rank is not None]
    candidates = [info for _, info in sorted(ranked, key=lambda pair: pair[0])]
    if settings.require_gpu:
        candidates = [i for i in candidates if i.device is DeviceKind.GPU]
    passed_over: list[tuple[str, str]] = []
    for info in candidates:
        found = availability_of(info, settings, gpu)
        if found.ok:
            return BackendChoice(info.name, "--trt-backend=auto", tuple(passed_over))
        passed_over.append((info.label, found.reason))
    if settings.require_gpu:
        why = "; ".join(f"{title} is unavailable: {reason}" for title, reason in passed_over)
        raise pytest.UsageError(f"pytest-trt: --trt-require-gpu, but {why or 'no GPU backend is registered'}")
    raise pytest.UsageError(
        "pytest-trt: no backend can run here: " + "; ".join(f"{title}: {reason}" for title, reason in passed_over)
    )


# ---- the run state --------------------------------------------------------------------------------


class RunState:
    """Everything one process of a pytest session keeps for pytest-trt."""

    def __init__(self, config: pytest.Config, settings: Settings, session_start: float | None = None) -> None:
        import pytest

        from pytest_trt.store.cache import EngineCache
        from pytest_trt.store.sizes import parse_size

        self.config = config
        self.settings = settings
        self.rootpath = Path(config.rootpath)
        try:
            max_size = parse_size(settings.cache_max_size) if settings.cache_max_size else None
            self.cache: EngineCache = EngineCache(
                settings.engine_cache_dir,
                rebuild=settings.rebuild,
                max_size_bytes=max_size,
                lock_timeout_s=settings.lock_timeout_s,
                session_start=session_start,
                notify=self._notify,
            )
        except CacheError as exc:
            raise pytest.UsageError(f"pytest-trt: {exc}") from None
        self.worker = str(getattr(config, "workerinput", {}).get("workerid", ""))
        self.gpu = self._pinned_gpu()  # the CUDA device index this process runs GPU backends on
        self._choice: BackendChoice | None = None
        self._backends: dict[str, Backend] = {}
        self._engines: EngineFactory | None = None
        self._baselines: dict[tuple[str, int], tuple[BaselineStore, dict[str, str]]] = {}
        # Every gated test's record, staged baseline and measured test id: this process's, and
        # on the xdist controller its workers' too.
        self.collected = WorkerReport()
        self.summary_notes: list[SummaryNote] = []  # baseline lines for the terminal summary
        self.session_errors: list[str] = []  # session-end problems: shown, and the run exits non-zero
        self.progress = Progress(terminal_writer(config))  # long phases on the terminal

    def _pinned_gpu(self) -> int:
        """This process's GPU: the first of ``--trt-gpus``, or under xdist worker gwK's K-th
        (round-robin); GPU 0 when the option is not given (the device count is not asked)."""
        import pytest

        from pytest_trt import fingerprint
        from pytest_trt.run import gpus, options

        selection = self.settings.gpus
        if selection is None:
            return 0
        try:
            listed = selection.resolve(fingerprint.gpu_count())
        except gpus.GpusError as exc:
            source = options.read(self.config, "trt_gpus").source
            raise pytest.UsageError(f"pytest-trt: {source}: {exc}") from None
        return gpus.pinned(listed, self.worker)

    def placement(self) -> GpuPlacement:
        """The GPU this process runs on, as records name it."""
        from pytest_trt import fingerprint

        facts = fingerprint.gpu_facts(self.gpu) or {}
        return GpuPlacement(self.gpu, str(facts.get("gpu_name") or ""), str(facts.get("uuid") or ""), self.worker)

    def _placed(self, record: TestRecord) -> TestRecord:
        """``record`` with the GPU it ran on, where its backend runs on a GPU."""
        if backends.get(record.backend).device is not DeviceKind.GPU:
            return record
        return dataclasses.replace(record, gpu=self.placement())

    def choice(self) -> BackendChoice:
        """The backend for this run, decided on first use (it may probe the CUDA driver)."""
        if self._choice is None:
            self._choice = choose_backend(self.settings, self.gpu)
        return self._choice

    def close(self) -> None:
        if self._engines is not None:
            self._engines.close()
        self.cache.close()

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            context = BackendContext(settings=self.settings, cache=self.cache, progress=self.progress.note, gpu=self.gpu)
            self._backends[name] = backends.create(name, context)
        return self._backends[name]

    def _notify(self, line: str) -> None:
        """Something the user must see now (a wait on another process's lock): on the terminal,
        past pytest's output capture, else on stderr (xdist workers have no terminal)."""
        line = line.removeprefix("pytest-trt: ")  # the cache's own lines carry it already
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            write_on_own_line(terminal, f"pytest-trt: {line}")
        else:
            import sys

            print(f"pytest-trt: {line}", file=sys.stderr, flush=True)

    @property
    def engines(self) -> EngineFactory:
        if self._engines is None:
            from pytest_trt.prepare.engines import EngineFactory

            self._engines = EngineFactory(
                self.cache, self.backend, self.settings.seed, self.settings.max_input_bytes, self.progress
            )
        return self._engines

    def engine(self, spec: ModelSpec) -> Engine:
        """The engine for ``spec`` on the run's backend."""
        return self.engines.engine(spec, self.choice().name)

    # ---- one gated item -----------------------------------------------------------------------

    def item_engine(self, nodeid: str, path: Path, gates: ItemGates) -> Engine:
        """The engine of an item's ``trt_model``, its outputs checked against the names in
        ``trt_accuracy(outputs=)``. Where it cannot be made, a gated item's record says why and
        the item fails (``pytest.fail``: an error at setup) naming the test."""
        import pytest

        spec = gates.model
        assert spec is not None
        try:
            engine = self.engine(spec)
            gates.check_outputs([o.name for o in engine.outputs])
        except PytestTrtError as exc:
            problem, step = f"{nodeid}: {exc}", exc.step
        else:
            return engine
        if gates.gated:
            self.setup_failed(nodeid, path, spec, problem, step)
        pytest.fail(problem, pytrace=False)  # outside the except: no "during handling" noise

    def evaluate(self, nodeid: str, path: Path, gates: ItemGates, engine: Engine) -> ItemOutcome:
        """Run the item's gates and keep what they produced; the caller fails the item."""
        from pytest_trt.baselines.subject import BuildFacts, ModelRef, TestSubject
        from pytest_trt.judge import gates as gate_rules
        from pytest_trt.judge.baseline_gate import BaselineMode, BaselinePolicy
        from pytest_trt.prepare.baseline_model import BaselineModels
        from pytest_trt.timing.fresh_process import ProcessPlace, RuntimeSettings
        from pytest_trt.timing.lock import LockWait

        subject = TestSubject(
            nodeid=nodeid,
            module=self.shown(path),
            backend=engine.backend,
            runtime_version=engine.runtime_version,
            model=ModelRef(engine.shown_source(self.shown), engine.model.content_hash),
            build=BuildFacts(engine.build.precision, dict(engine.build.shapes), dict(engine.build.options)),
            workload=engine.workload(),
            engine=engine.provenance.as_dict(),
            feed=engine.feed_facts(),
        )
        settings = self.settings
        perf_mode = PerfMode(settings.perf)
        context = gate_rules.GateContext(
            subject=subject,
            perf_mode=perf_mode,
            baseline=BaselinePolicy(
                mode=BaselineMode(settings.baseline_mode),
                update=settings.update_baselines,
                threshold=settings.regression_threshold,
                enforce=perf_mode is PerfMode.ENFORCE,
                commit=self.commit(),
            ),
            reference=self.engines.reference,
            baseline_store=lambda: self.baselines(engine.backend),
            save_failures=settings.save_failures,
            profile_layers=settings.profile_layers,
            diagnoser=self._diagnoser(),
            progress=self.progress,
            lock_wait=LockWait(timeout_s=settings.lock_timeout_s, notify=self._notify),
            processes=ProcessPlace(
                settings.fresh_processes, RuntimeSettings(settings.runtime, settings.cuda_api), self.gpu
            ),
            baseline_models=BaselineModels(self.engines),
        )
        outcome = gate_rules.evaluate(gates, engine, context)
        outcome = dataclasses.replace(outcome, record=self._placed(outcome.record))
        self.collected.records.append(outcome.record)
        staged = [(nodeid, outcome.staged)] if outcome.staged is not None else []
        for name, entry in staged + list(outcome.staged_sweep):
            self.collected.staged_baselines.setdefault(subject.module, {})[name] = entry.to_file()
        return outcome

    def _diagnoser(self) -> Diagnoser | None:
        """What an fp16/bf16 accuracy failure's diagnosis uses; None with --trt-diagnose=off."""
        from pytest_trt.judge.precision_fix import Diagnoser, with_kept_nodes

        cap = self.settings.diagnose_s
        if cap is None:
            return None
        engines = self.engines
        return Diagnoser(
            rebuild=lambda engine, nodes: engines.engine(with_kept_nodes(engine.spec, nodes), engine.backend),
            workdir=engines.workdir,
            cap_s=cap,
            discard=engines.discard,
            reader=engines.tensor_reader,
        )

    def setup_failed(self, nodeid: str, path: Path, spec: ModelSpec, problem: str, step: SetupStep | None) -> None:
        """Keep the record of a gated test whose engine could not be made: a row of the reports,
        an error as pytest counts it, with the step that failed."""
        from pytest_trt.baselines.subject import BuildFacts, ModelRef, TestSubject, Workload
        from pytest_trt.judge.records import TestRecord, TestStatus

        precision = str(spec.build.precision.value)
        source = spec.source if spec.torch is not None or spec.path is None else self.shown(spec.path)
        subject = TestSubject(
            nodeid=nodeid,
            module=self.shown(path),
            backend=self.choice().name,
            runtime_version="",
            model=ModelRef(source, ""),
            build=BuildFacts(precision),
            workload=Workload(inputs={}, outputs={}, batch=0, precision=precision),
        )
        record = TestRecord(subject, TestStatus.ERROR, failures=(problem,), step=step, at_setup=True)
        self.collected.records.append(self._placed(record))

    def shown(self, path: Path) -> str:
        """A path relative to the rootdir with forward slashes, as reports and baselines key it."""
        return path.relative_to(self.rootpath).as_posix() if path.is_relative_to(self.rootpath) else str(path)

    def commit(self) -> str | None:
        from pytest_trt.baselines.git import current_commit

        return current_commit(self.rootpath)

    def baselines(self, backend: str, gpu: int | None = None) -> tuple[BaselineStore, dict[str, str]]:
        """The baseline store of this machine's hardware class for ``backend`` (on a GPU backend,
        the class of GPU ``gpu``, this process's by default), and the software facts (driver,
        CUDA) recorded with its entries."""
        key = (backend, self.gpu if gpu is None else gpu)
        if key not in self._baselines:
            from pytest_trt.baselines.hardware import hardware_for
            from pytest_trt.baselines.store import BaselineStore
            from pytest_trt.fingerprint import machine_fingerprint

            on_gpu = backends.get(backend).device is DeviceKind.GPU
            hardware, software = hardware_for(on_gpu, machine_fingerprint(key[1]))
            store = BaselineStore(self.settings.baseline_dir, hardware, lock_timeout_s=self.settings.lock_timeout_s,
                                  notify=self._notify, history_limit=self.settings.baseline_history)
            self._baselines[key] = (store, software)
        return self._baselines[key]

    def _staged_by_store(self, backend: str) -> list[tuple[BaselineStore, dict[str, dict[str, dict[str, Any]]]]]:
        """The staged baseline entries by the store of the GPU that measured them: on a host of
        two GPU models each keeps its own hardware class. This process's store comes first."""
        measured_on = {r.nodeid: r.gpu.index for r in self.collected.records if r.gpu is not None}
        main, _ = self.baselines(backend)
        groups: dict[str, tuple[BaselineStore, dict[str, dict[str, dict[str, Any]]]]] = {main.hardware: (main, {})}
        for module, entries in self.collected.staged_baselines.items():
            for nodeid, entry in entries.items():
                store, _ = self.baselines(backend, measured_on.get(nodeid))
                groups.setdefault(store.hardware, (store, {}))[1].setdefault(module, {})[nodeid] = entry
        return list(groups.values())

    def note_measured(self, measured: Sequence[tuple[Path, str]]) -> None:
        """Remember which collected tests (file, nodeid) measure latency, so unused baselines can
        be listed."""
        if PerfMode(self.settings.perf) is PerfMode.OFF:
            return
        for path, nodeid in measured:
            self.collected.measured.setdefault(self.shown(path), set()).add(nodeid)

    # ---- xdist and the end of the session ------------------------------------------------------

    def worker_report(self) -> WorkerReport:
        return WorkerReport(
            records=self.collected.records,
            staged_baselines=self.collected.staged_baselines,
            measured=self.collected.measured,
            cache=self.cache.stats,
        )

    def merge_worker(self, report: WorkerReport) -> None:
        """Fold in what one xdist worker sent; its cache counters join this process's."""
        self.cache.stats.add(report.cache)
        self.collected.merge(WorkerReport(report.records, report.staged_baselines, report.measured))

    def write_reports(self) -> None:
        """On the controller at the end: baselines written or listed, then the JSON and Markdown
        reports of every gated test (xdist workers' included). A file that cannot be written
        becomes an entry of ``session_errors``, never an exception out of the hook."""
        settings = self.settings
        collected = self.collected
        gated = bool(collected.records or collected.measured)
        if not gated and not self.reports_asked():
            return  # a session without gated tests: nothing to record or report, nothing imported
        from pytest_trt.baselines import folders as baseline_folders
        from pytest_trt.baselines import session_end as baseline
        from pytest_trt.fingerprint import machine_fingerprint
        from pytest_trt.reports.gpus import workers_on_gpus

        choice = self.choice()
        store, _ = self.baselines(choice.name)
        if gated and settings.baseline_mode != "off":
            on_gpu = backends.get(choice.name).device is DeviceKind.GPU
            # Advice only: a root that cannot be searched is reported by finish_session.
            with contextlib.suppress(OSError):
                self.summary_notes += [SummaryNote(line) for line in baseline_folders.unread_folder_notes(
                    settings.baseline_dir, on_gpu, machine_fingerprint(self.gpu), store.hardware
                )]
            not_recorded: set[str] = set()
            for class_store, staged in self._staged_by_store(choice.name):
                end = baseline.finish_session(
                    class_store,
                    staged=staged,
                    used=collected.measured,
                    update=settings.update_baselines,
                    prune=settings.prune_baselines,
                    replace_unreadable=settings.replace_unreadable_baselines,
                )
                self.summary_notes += summary_notes(end.lines)
                self.session_errors += end.errors
                not_recorded |= end.not_recorded
            # The reports must not claim a baseline that was not written.
            collected.records = [not_written(r) if r.nodeid in not_recorded else r for r in collected.records]
        if not self.reports_asked():
            return
        meta: dict[str, Any] = {
            "backend": choice.name,
            "backend_reason": choice.reason,
            "hardware": store.hardware,
            "machine": machine_fingerprint(self.gpu),
            "commit": self.commit(),
            "regression_threshold": settings.regression_threshold,
            "gpus": workers_on_gpus(collected.records),  # which worker ran on which GPU (--trt-gpus)
        }
        for option, path, write in self.reports_asked():
            try:
                write(path, collected.records, meta)
            except OSError as exc:
                where = f": {exc.filename}" if exc.filename and str(exc.filename) != str(path) else ""
                self.session_errors.append(f"{option}: cannot write {path} ({exc.strerror or exc}{where})")

    def reports_asked(self) -> list[tuple[str, Path, Callable[..., None]]]:
        """(option, path, writer) of each report file the options ask for; a writer is imported
        only where its report is asked for (the HTML one draws with matplotlib)."""
        settings = self.settings
        asked: list[tuple[str, Path, Callable[..., None]]] = []
        if settings.report_json is not None or settings.report_md is not None:
            from pytest_trt.reports import ci as ci_report

            for option, path, write in (("--trt-report-json", settings.report_json, ci_report.write_json),
                                        ("--trt-report-md", settings.report_md, ci_report.write_markdown)):
                if path is not None:
                    asked.append((option, path, write))
        if settings.report_html is not None:
            from pytest_trt.reports import html as html_report

            asked.append(("--trt-report-html", settings.report_html, html_report.write_html))
        return asked


def not_written(record: TestRecord) -> TestRecord:
    """The record of a test whose staged baseline could not be written at the session's end."""
    from pytest_trt.baselines.session_end import NOT_WRITTEN_NOTE
    from pytest_trt.judge.baseline_gate import BaselineNote

    return dataclasses.replace(record, baseline_note=NOT_WRITTEN_NOTE, baseline_state=BaselineNote.NOT_RECORDED)


def summary_notes(lines: Sequence[str | SummaryNote]) -> list[SummaryNote]:
    """The session end's lines as notes. ``baselines.store.SessionEnd`` still hands its list of
    unused baselines as lines indented under their heading: those become the heading's items."""
    notes: list[SummaryNote] = []
    for line in lines:
        if isinstance(line, SummaryNote):
            notes.append(line)
        elif line.startswith("  ") and notes:
            notes[-1] = dataclasses.replace(notes[-1], items=(*notes[-1].items, line.strip()))
        else:
            notes.append(SummaryNote(line))
    return notes
