"""pytest-trt's pytest hooks and fixtures. The work happens in ``session.py`` and below.

Loading this module imports no numpy, onnx or runtime: a pytest run without gated tests pays
only for option parsing; engines, gates and reports are imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from pytest_trt.errors import CacheError, PytestTrtError, SpecError
from pytest_trt.judge.item_gates import ItemGates
from pytest_trt.reports.notes import SummaryNote
from pytest_trt.run import options
from pytest_trt.run.keys import ENGINE_KEY, GATES_KEY, HTML_PLOTS_KEY, RECORD_KEY, STATE_KEY
from pytest_trt.run.marks import model_spec, read_gates, search_dirs
from pytest_trt.run.session import RunState

if TYPE_CHECKING:
    from pytest_trt.prepare.engines import Engine

_SESSION_START = "pytest_trt_session_start"

MARKERS = (
    "trt_model(path=None, *, torch=None, example_inputs=None, dynamic=None, reference='onnxruntime', "
    "precision='fp32', calibration=None, calibration_method=None, shapes=None, batch_size=None, seed=None, "
    "input_ranges=None, inputs=None, profile=None, **build_options): the model a test gates: an ONNX file (relative to the "
    "test file, then the rootdir) or torch=, a factory of a torch.nn.Module (or 'pkg.mod:func') exported with "
    "example_inputs and dynamic axes; reference='torch' compares with the module itself; precision='int8' "
    "with calibration= (an .npz or a number of seeded batches) quantizes a float model; profile= gives "
    "(min, opt, max) shapes per input (a list: several profiles) that one engine serves.",
    "trt_accuracy(rtol=1e-3, atol=1e-5, *, outputs=None, nan='fail', check='elementwise', q=None, "
    "max_mismatch=0.0, min_cosine=None, topk=None, topk_axis=-1, inf_equal=False, "
    "batch_consistency=False): compare the backend's outputs with the reference (onnxruntime running the "
    "model in fp32, or the torch module with reference='torch'), |out - ref| <= atol + rtol * |ref| per element.",
    "trt_perf(max_latency_ms=None, percentile=50, min_throughput=None, backend=None, *, "
    "max_regression=None, batch_sizes=(), streams=(), max_device_memory_mb=None, warmup_ms, min_iterations, "
    "min_duration_ms, max_duration_ms, "
    "cuda_graph, transfers, sync, host_probe): a latency/throughput budget, enforced when its backend runs "
    "the test; without backend=, a GPU budget: enforced on whichever GPU backend runs, reported as not "
    "enforced on a CPU backend. batch_sizes= measures one engine at each batch size (budgets may be "
    "{batch: value}); streams= times N runners at once (a tuple sweeps N); max_device_memory_mb= budgets "
    "device memory.",
)


def _state(config: pytest.Config) -> RunState:
    return config.stash[STATE_KEY]


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_addoption(parser: pytest.Parser) -> None:
    options.register(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    settings = options.Settings.from_config(config)
    session_start = getattr(config, "workerinput", {}).get(_SESSION_START)
    state = RunState(config, settings, session_start)
    config.stash[STATE_KEY] = state
    if settings.require_gpu or settings.backend != "auto":
        state.choice()  # decided now: a named backend or a GPU gate must stop the run before any test
    if settings.cache_clear and not _is_worker(config):
        try:
            state.cache.clear()
        except CacheError as exc:
            raise pytest.UsageError(f"pytest-trt: {exc}") from None
    config.stash[HTML_PLOTS_KEY] = _pytest_html_plots(config, state)


def _pytest_html_plots(config: pytest.Config, state: RunState) -> bool:
    """Whether gated tests' plots go into pytest-html's report: it writes one (``--html``) and
    matplotlib is there to draw them (else a summary note says what to install)."""
    from pytest_trt.reports.plotting import REPORT_EXTRA, plotting_installed

    if not getattr(config.option, "htmlpath", None):
        return False
    if plotting_installed():
        return True
    if not _is_worker(config):
        state.summary_notes.append(SummaryNote(
            f"pytest-html: pytest-trt draws its plots with matplotlib, which is not installed ({REPORT_EXTRA})"
        ))
    return False


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is not None:
        state.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    import textwrap

    # The reason a backend is unavailable can be long (import errors, install hints): wrapped at
    # the terminal's width, continuation lines indented.
    width = config.get_terminal_writer().fullwidth
    return [
        part
        for line in _state(config).choice().header(verbose=config.option.verbose > 0)
        for part in textwrap.wrap(
            line, width, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False
        )
    ]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    # Workers share the controller's session start, so that one worker's --trt-rebuild
    # serves the others and eviction spares what any of them used.
    node.workerinput[_SESSION_START] = _state(node.config).cache.session_start


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    result = yield
    items = result if isinstance(result, list) else [result]
    settings = _state(collector.config).settings
    for item in items:
        if isinstance(item, pytest.Item):
            try:
                item.stash[GATES_KEY] = read_gates(item, settings.measure)
            except SpecError as exc:
                raise collector.CollectError(f"{item.nodeid}: {exc}") from None
    return result


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not _state(parent.config).settings.collect_models:
        return None
    from pytest_trt.run.model_files import collect_file

    return collect_file(file_path, parent)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Before -k/-m deselect anything: a baseline is unused only if its test is gone.
    _state(config).note_measured([
        (Path(item.path), name) for item in items if _gates(item).measured for name in _gates(item).baseline_names(item.nodeid)
    ])


def _gates(item: pytest.Item) -> ItemGates:
    return item.stash.get(GATES_KEY, ItemGates())


@pytest.fixture
def trt_engine(request: pytest.FixtureRequest) -> Engine:
    """The engine for the test's ``trt_model`` mark, built or loaded once per session."""
    item = request.node
    spec = _gates(item).model
    if spec is None:
        pytest.fail(f"{item.nodeid}: trt_engine needs a @pytest.mark.trt_model(...) mark on the test", pytrace=False)
    engine = _state(request.config).item_engine(item.nodeid, Path(item.path), _gates(item))
    item.stash[ENGINE_KEY] = engine
    return engine


@pytest.fixture(autouse=True)
def _trt_gated_engine(request: pytest.FixtureRequest) -> None:
    """Gates need the engine even when the test body does not ask for ``trt_engine``."""
    if _gates(request.node).gated:
        request.getfixturevalue("trt_engine")


@pytest.fixture
def trt_build(request: pytest.FixtureRequest) -> Callable[..., Engine]:
    """``trt_build(path, **trt_model arguments) -> engine`` (or ``trt_build(torch=...)``): engines
    a test specifies itself."""
    state = _state(request.config)
    base_dirs = search_dirs(request.node.path, request.config.rootpath)

    def build(path: str | Path | None = None, **kwargs: Any) -> Engine:
        __tracebackhide__ = True
        try:
            return state.engine(model_spec(path, base_dirs=base_dirs, **kwargs))
        except PytestTrtError as exc:
            problem = f"trt_build: {exc}"
        pytest.fail(problem, pytrace=False)

    return build


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield  # a failing or skipped body raises here, and its gates do not run
    engine = item.stash.get(ENGINE_KEY, None)
    gates = _gates(item)
    if engine is None or not gates.gated:
        return
    from pytest_trt.reports.ci import junit_properties

    outcome = _state(item.config).evaluate(item.nodeid, Path(item.path), gates, engine)
    item.stash[RECORD_KEY] = outcome.record
    item.user_properties.extend(junit_properties(outcome.record))
    if outcome.message:
        pytest.fail(outcome.message, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    record = item.stash.get(RECORD_KEY, None)
    if call.when == "call" and record is not None and item.config.stash.get(HTML_PLOTS_KEY, False):
        from pytest_trt.reports.html import pytest_html_extras

        # pytest-html reads ``extras`` from the report (an xdist worker sends it with the report).
        report.extras = [*getattr(report, "extras", []), *pytest_html_extras(record)]
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list[str], session: pytest.Session) -> None:
    # The run's figures above pytest-html's summary (a hook of pytest-html, called where it is active).
    records = _state(session.config).collected.records
    wanted: bool = session.config.stash.get(HTML_PLOTS_KEY, False)
    if records and wanted:
        from pytest_trt.reports.html import pytest_html_summary

        prefix.extend(pytest_html_summary(records))


def pytest_sessionfinish(session: pytest.Session) -> None:
    from pytest_trt.run.xdist import WORKER_OUTPUT_KEY

    config = session.config
    state = _state(config)
    if _is_worker(config):
        # pytest-xdist sets ``workeroutput`` on a worker's config; pytest's type does not have it.
        cast(Any, config).workeroutput[WORKER_OUTPUT_KEY] = state.worker_report().to_json()
        return
    state.cache.evict()
    try:
        state.write_reports()
    except (OSError, PytestTrtError) as exc:  # never a traceback in place of pytest's summary
        state.session_errors.append(f"session end: {exc}")
    if state.session_errors and session.exitstatus == pytest.ExitCode.OK:
        # Set here, as pytest's own --max-warnings does: the summary still prints in full.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    from pytest_trt.run.xdist import WORKER_OUTPUT_KEY, WorkerReport

    sent = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
    if sent:
        _state(node.config).merge_worker(WorkerReport.from_json(sent))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    state = _state(config)
    records, stats = state.collected.records, state.cache.stats
    if not records and not (stats.builds or stats.hits) and not state.summary_notes and not state.session_errors:
        return  # before importing the report: a run without gated tests stays light
    from pytest_trt.reports import gpus
    from pytest_trt.reports import terminal as report

    verbosity = config.option.verbose  # -1 for -q, 1 for -v, as pytest counts
    width = config.get_terminal_writer().fullwidth
    lines = report.summary_lines(records, width=width, verbosity=verbosity)
    if verbosity >= 0:
        lines += report.wrap(stats.summary_line(), width)
        lines += [part for line in gpus.summary_lines(records) for part in report.wrap(line, width)]
    for note in state.summary_notes:
        lines += report.wrap(note.text, width)
        for item in note.items:
            lines += report.wrap(item, width, "      ", first="  ")
    totals = report.totals(records, width)
    if lines or state.session_errors:
        terminalreporter.write_sep("=", "pytest-trt summary")
    for line in lines + totals:
        terminalreporter.write_line(line)
    for line in state.session_errors:
        terminalreporter.write_line(f"error: {line}", red=True)
