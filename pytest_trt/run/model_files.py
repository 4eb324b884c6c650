"""ONNX files collected as tests (``--trt-collect-models``): a model ``resnet.onnx`` is collected
when ``resnet.trt.toml`` lies beside it or its folder's ``trt.toml`` has a ``[resnet]`` table
(``run/model_settings.py`` reads them), one item per variant.

The items carry the marks a Python test of those settings would carry and are validated by
``run.marks.read_gates``, as a Python test's marks are; a value it refuses is a collection error
naming the settings file, the line and the key. At run time an item is one more gated test: its
engine is made at setup as ``trt_engine`` makes one, and the runtest wrapper runs its gates.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_trt.errors import PytestTrtError, SidecarError, SpecError
from pytest_trt.judge.item_gates import ItemGates
from pytest_trt.run.keys import ENGINE_KEY, GATES_KEY, STATE_KEY
from pytest_trt.run.marks import check_outputs_now, model_spec, perf_budget, read_gates, search_dirs
from pytest_trt.run.model_settings import Key, ModelTest, Section, SettingsText, key_line, model_tests, parse
from pytest_trt.specs import make_accuracy_spec

if TYPE_CHECKING:
    from pytest_trt.specs import MeasureSettings, ModelSpec

MODEL_SUFFIX = ".onnx"
SIDECAR_SUFFIX = ".trt.toml"  # resnet.onnx -> resnet.trt.toml
FOLDER_SETTINGS = "trt.toml"  # one table per model of the folder, named by its file's stem

_READ = pytest.StashKey[dict[Path, "SettingsText | SidecarError"]]()


# ---- collection ---------------------------------------------------------------------------------


def collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """The collector for ``file_path`` (pytest_collect_file): a model that has settings, or a
    settings file with a problem no model reports."""
    name = file_path.name
    if name.endswith(MODEL_SUFFIX):
        return ModelFile.from_parent(parent, path=file_path) if _has_settings(parent.config, file_path) else None
    if name == FOLDER_SETTINGS or name.endswith(SIDECAR_SUFFIX):
        return SettingsFile.from_parent(parent, path=file_path) if _stray(parent.config, file_path) else None
    return None


def _sidecar(model: Path) -> Path:
    return model.with_name(model.name.removesuffix(MODEL_SUFFIX) + SIDECAR_SUFFIX)


def _stem(model: Path) -> str:
    return model.name.removesuffix(MODEL_SUFFIX)


def _has_settings(config: pytest.Config, model: Path) -> bool:
    if _sidecar(model).is_file():
        return True
    folder = model.with_name(FOLDER_SETTINGS)
    if not folder.is_file():
        return False
    try:
        return _stem(model) in read(config, folder).table
    except SidecarError:
        return True  # collected, to report why its folder's settings cannot be read


def _stray(config: pytest.Config, path: Path) -> SidecarError | None:
    """A sidecar without its model; a folder's trt.toml with a table for a model the folder
    lacks, or one that cannot be read and that no model of the folder reports."""
    if path.name != FOLDER_SETTINGS:
        model = path.with_name(path.name.removesuffix(SIDECAR_SUFFIX) + MODEL_SUFFIX)
        if model.is_file():
            return None
        return SidecarError(config.stash[STATE_KEY].shown(path), None, None, f"no model {model.name} beside it")
    models = sorted(p for p in path.parent.glob(f"*{MODEL_SUFFIX}") if p.is_file())
    try:
        settings = read(config, path)
    except SidecarError as exc:
        return None if any(not _sidecar(m).is_file() for m in models) else exc
    stems = [_stem(m) for m in models]
    for name in settings.table:
        if name not in stems:
            close = difflib.get_close_matches(name, stems, n=1)
            hint = f"did you mean [{close[0]}]? " if close else ""
            here = ", ".join(f"{m.name}" for m in models) or "none"
            return settings.error(
                (name,),
                f"no model {name}{MODEL_SUFFIX} in this folder ({hint}{FOLDER_SETTINGS} holds one table per "
                f"model, named after its file: [resnet] for resnet.onnx; models here: {here})",
            )
    return None


class SettingsFile(pytest.File):
    """A settings file that no model's collection reads: its problem is its collection error."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        problem = _stray(self.config, self.path)
        if problem is not None:
            raise self.CollectError(str(problem))
        return []


class ModelFile(pytest.File):
    """An ONNX file with settings: one ``ModelItem`` per variant."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        try:
            settings, root = self._settings()
            tests = model_tests(settings, root)
            return [self._item(settings, test) for test in tests]
        except SidecarError as exc:
            raise self.CollectError(str(exc)) from None

    def _settings(self) -> tuple[SettingsText, Key]:
        sidecar, folder = _sidecar(self.path), self.path.with_name(FOLDER_SETTINGS)
        stem = _stem(self.path)
        if not sidecar.is_file():
            return read(self.config, folder), (stem,)
        settings = read(self.config, sidecar)
        try:
            shared = read(self.config, folder) if folder.is_file() else None
        except SidecarError:
            shared = None  # the folder's file reports its own problem
        if shared is not None and stem in shared.table:
            where = f"{shared.shown}:{key_line(shared.text, (stem,))}"
            raise settings.error(None, f"{self.path.name} also has a [{stem}] table in {where}; keep one")
        return settings, ()

    def _item(self, settings: SettingsText, test: ModelTest) -> ModelItem:
        item = ModelItem.from_parent(self, name=test.name)
        for mark in test.marks(self.path.name):
            item.add_marker(mark)
        measure = self.config.stash[STATE_KEY].settings.measure
        try:
            item.stash[GATES_KEY] = read_gates(item, measure)
        except SpecError as exc:
            at = culprit(test, self.path.name, search_dirs(self.path, self.config.rootpath), measure)
            raise settings.error(at, str(exc)) from None
        return item


class ModelItem(pytest.Item):
    """One test of a model file. Its engine is made at setup, as the ``trt_engine`` fixture makes
    a Python test's; the runtest wrapper (plugin.py) runs its gates. Settings with no gate
    (only ``[model]``) check that the model builds and runs on its sample inputs."""

    def setup(self) -> None:
        state = self.config.stash[STATE_KEY]
        self.stash[ENGINE_KEY] = state.item_engine(self.nodeid, self.path, self.stash[GATES_KEY])

    def runtest(self) -> None:
        if self.stash[GATES_KEY].gated:
            return
        engine = self.stash[ENGINE_KEY]
        try:
            engine.infer(engine.sample_inputs())
        except PytestTrtError as exc:
            problem = f"{self.nodeid}: {exc}"
        else:
            return
        pytest.fail(problem, pytrace=False)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # The name alone: pytest shows the node id as the file's id, "::", then this.
        return self.path, None, self.name


# ---- reading a settings file once ------------------------------------------------------------


def read(config: pytest.Config, path: Path) -> SettingsText:
    """``path`` parsed, once per session (a model and its folder's other models share it)."""
    cache = config.stash.setdefault(_READ, {})
    if path not in cache:
        try:
            cache[path] = parse(path, config.stash[STATE_KEY].shown(path))
        except SidecarError as exc:
            cache[path] = exc
    found = cache[path]
    if isinstance(found, SidecarError):
        raise found
    return found


# ---- where a bad value is -----------------------------------------------------------------------


def culprit(test: ModelTest, model_file: str, base_dirs: tuple[Path, ...], measure: MeasureSettings) -> Key:
    """The key whose value the marks' validation refuses: each section's keys are checked again
    one by one, in the order written, with the functions ``read_gates`` validates with; the first
    that fails is the one. Where none fails alone, the variant's (or model's) table."""
    found = test.sections
    model = found.model or Section((*test.key, "model"), {})
    key = _first_failing(model, functools.partial(model_spec, model_file, base_dirs=base_dirs))
    if key is not None:
        return key
    if found.accuracy is not None:
        spec = model_spec(model_file, base_dirs=base_dirs, **model.values())
        key = _first_failing(found.accuracy, functools.partial(_accuracy, spec))
        if key is not None:
            return key
    for backend, budget in found.perf:
        chosen = {} if backend is None else {"backend": backend}
        key = _first_failing(budget, functools.partial(perf_budget, measure, **chosen))
        if key is not None:
            return key
    return test.key


def _accuracy(model: ModelSpec, **kwargs: Any) -> None:
    check_outputs_now(ItemGates(model=model, accuracy=make_accuracy_spec(**kwargs)))


def _first_failing(section: Section, check: Callable[..., Any]) -> Key | None:
    given: dict[str, Any] = {}
    if _fails(check, given):
        return section.key
    for name, written in section.args.items():
        given[name] = written.value
        if _fails(check, given):
            return written.key
    return None


def _fails(check: Callable[..., Any], given: Mapping[str, Any]) -> bool:
    try:
        check(**given)
    except (SpecError, TypeError):
        return True
    return False
