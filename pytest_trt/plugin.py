"""pytest-trt's pytest hooks and fixtures. The work happens in ``session.py``."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from . import options, report
from .cache import CacheError, CacheStats
from .session import GATES_KEY, USER_ERRORS, Engine, ItemGates, RunState, read_gates, search_dirs, write_reports
from .spec import SpecError, make_model_spec

STATE_KEY = pytest.StashKey[RunState]()
ENGINE_KEY = pytest.StashKey[Engine]()
_WORKER_OUTPUT = "pytest_trt"
_SESSION_START = "pytest_trt_session_start"

MARKERS = (
    "trt_model(path, *, precision='fp32', shapes=None, batch_size=None, seed=None, input_ranges=None, "
    "inputs=None, **build_options): the ONNX model a test gates; path is relative to the test file, "
    "then the rootdir.",
    "trt_accuracy(rtol=1e-3, atol=1e-5, *, outputs=None, nan='fail', check='elementwise', q=None, "
    "max_mismatch=0.0, min_cosine=None, topk=None, topk_axis=-1, inf_equal=False, "
    "batch_consistency=False): compare the backend's outputs with the onnxruntime fp32 reference, "
    "|out - ref| <= atol + rtol * |ref| per element.",
    "trt_perf(max_latency_ms=None, percentile=50, min_throughput=None, backend='tensorrt', *, "
    "max_regression=None, warmup_ms, min_iterations, min_duration_ms, max_duration_ms, cuda_graph, "
    "transfers, sync, host_probe): a latency/throughput budget, enforced when its backend runs the test.",
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
    if settings.require_gpu or settings.backend == "tensorrt":
        state.choice()  # decided now: a GPU gate must stop the run before any test runs
    if settings.cache_clear and not _is_worker(config):
        try:
            state.cache.clear()
        except CacheError as exc:
            raise pytest.UsageError(f"pytest-trt: {exc}") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is not None:
        state.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [_state(config).choice().header()]


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
                item.stash[GATES_KEY] = read_gates(item, settings)
            except SpecError as exc:
                raise collector.CollectError(f"{item.nodeid}: {exc}") from None
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Before -k/-m deselect anything: a baseline is unused only if its test is gone.
    _state(config).note_measured(items)


def _gates(item: pytest.Item) -> ItemGates:
    return item.stash.get(GATES_KEY, ItemGates())


@pytest.fixture
def trt_engine(request: pytest.FixtureRequest) -> Engine:
    """The engine for the test's ``trt_model`` mark, built or loaded once per session."""
    item = request.node
    spec = _gates(item).model
    if spec is None:
        pytest.fail(f"{item.nodeid}: trt_engine needs a @pytest.mark.trt_model(...) mark on the test", pytrace=False)
    try:
        engine = _state(request.config).engine(spec)
    except USER_ERRORS as exc:
        problem = f"{item.nodeid}: {exc}"
    else:
        item.stash[ENGINE_KEY] = engine
        return engine
    pytest.fail(problem, pytrace=False)  # outside the except: no "during handling" noise


@pytest.fixture(autouse=True)
def _trt_gated_engine(request: pytest.FixtureRequest) -> None:
    """Gates need the engine even when the test body does not ask for ``trt_engine``."""
    if _gates(request.node).gated:
        request.getfixturevalue("trt_engine")


@pytest.fixture
def trt_build(request: pytest.FixtureRequest) -> Callable[..., Engine]:
    """``trt_build(path, **trt_model arguments) -> engine``: engines a test specifies itself."""
    state = _state(request.config)
    base_dirs = search_dirs(request.node.path, request.config)

    def build(path: str | Path, **kwargs: Any) -> Engine:
        __tracebackhide__ = True
        try:
            return state.engine(make_model_spec(path, base_dirs=base_dirs, **kwargs))
        except USER_ERRORS as exc:
            problem = f"trt_build: {exc}"
        pytest.fail(problem, pytrace=False)

    return build


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield  # a failing or skipped body raises here, and its gates do not run
    engine = item.stash.get(ENGINE_KEY, None)
    if engine is not None and _gates(item).gated:
        _state(item.config).evaluate(item, engine)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = _state(config)
    if _is_worker(config):
        config.workeroutput[_WORKER_OUTPUT] = json.dumps({**state.worker_output(), "cache": state.cache.stats.as_dict()})
        return
    state.cache.evict()
    write_reports(state)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    sent = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if sent:
        state = _state(node.config)
        data = json.loads(sent)
        state.merge_worker(data)
        state.cache.stats.add(CacheStats(**data["cache"]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    state = _state(config)
    width = max(report.DEFAULT_WIDTH, config.get_terminal_writer().fullwidth)
    lines = report.summary_lines(state.record_dicts, width=width)
    stats = state.cache.stats
    if not lines and not (stats.builds or stats.hits) and not state.summary_notes:
        return
    terminalreporter.write_sep("=", "pytest-trt summary")
    for line in lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(stats.summary_line())
    for line in state.summary_notes:
        terminalreporter.write_line(line)
