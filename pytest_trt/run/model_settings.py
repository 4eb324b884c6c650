"""A model's settings file, TOML, read into the tests it describes (``run/model_files.py``
collects them).

A model's table (the whole of ``resnet.trt.toml``, or ``[resnet]`` in its folder's ``trt.toml``)
has sections named after the marks: ``[model]`` (``trt_model``'s arguments but the path, which is
the file itself), ``[accuracy]`` (``trt_accuracy``), ``[perf]`` (a GPU budget: ``trt_perf``
without ``backend=``) and ``[perf.<backend>]`` (one budget per backend). ``[variant.<name>]``
tables, each with the same sections, make one test each, named by the variant
(``models/resnet.onnx::fp16``): a variant's keys replace the shared sections' same keys. Without
variants the one test is ``default``. Every value keeps where it is written, so that an error
names the file, the line and the key.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_trt.errors import SidecarError

DEFAULT_NAME = "default"  # the test of a model without variants
SECTIONS = ("model", "accuracy", "perf")
VARIANTS = "variant"
# trt_model arguments that say what the model is: a settings file is for the .onnx it names.
_MODEL_ITSELF = ("path", "torch", "example_inputs", "dynamic")
_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")  # a variant's name, as it shows in the node id

Key = tuple[str, ...]  # a key's path in a settings file


# ---- reading a settings file --------------------------------------------------------------------


@dataclass(frozen=True)
class SettingsText:
    """One settings file: its text and what it parses to."""

    path: Path
    shown: str  # relative to the rootdir, as errors name it
    text: str
    table: dict[str, Any]

    def error(self, key: Key | None, problem: str) -> SidecarError:
        """A SidecarError naming this file, the line of ``key`` and the key."""
        line = key_line(self.text, key) if key else None
        return SidecarError(self.shown, line, ".".join(key) if key else None, problem)


def parse(path: Path, shown: str) -> SettingsText:
    """Read ``path`` as TOML; a file that cannot be read or parsed is a SidecarError naming the
    line where the parser stopped."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SidecarError(shown, None, None, f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SidecarError(shown, None, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        table: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem, line = _syntax_error_position(exc, text)
        raise SidecarError(shown, line, None, f"not valid TOML: {problem}") from None
    return SettingsText(path, shown, text, table)


def _syntax_error_position(exc: ValueError, text: str) -> tuple[str, int | None]:
    """The parser's message and line: ``lineno`` where the parser has it (Python 3.14, tomli
    2.1), else the position its message ends with."""
    message = str(exc)
    found = re.search(r" \(at (?:line (\d+), column \d+|end of document)\)\Z", message)
    problem = message[: found.start()] if found else message
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return problem, lineno
    if found is None:
        return problem, None
    return problem, int(found.group(1)) if found.group(1) else max(1, len(text.splitlines()))


# ---- where a key is written ---------------------------------------------------------------------

_KEY_PART = r"""[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*'"""
_DOTTED = rf"(?:{_KEY_PART})(?:[ \t]*\.[ \t]*(?:{_KEY_PART}))*"
_HEADER = re.compile(rf"[ \t]*\[\[?[ \t]*({_DOTTED})[ \t]*\]\]?[ \t]*(?:#.*)?\Z")
_ASSIGNMENT = re.compile(rf"[ \t]*({_DOTTED})[ \t]*=")
_PART = re.compile(_KEY_PART)


def _parts(dotted: str) -> Key:
    return tuple(_unquoted(part) for part in _PART.findall(dotted))


def _unquoted(part: str) -> str:
    if part.startswith("'"):
        return part[1:-1]
    if part.startswith('"'):
        try:
            return str(json.loads(part))  # TOML's basic strings escape as JSON's do, but for \U
        except ValueError:
            return part[1:-1]
    return part


def key_line(text: str, key: Key) -> int | None:
    """The line (from 1) where ``key`` is written: its own ``key = ...`` or ``[table]`` line;
    else the line of the inline table that holds it, a table under it, or the table it is in.
    tomllib gives no positions for what it parsed, so the text is scanned for keys."""
    best: tuple[int, int] | None = None  # (rank, line): the lowest rank, then the first line
    for number, written, is_header in _written_keys(text):
        rank = _rank(written, key, is_header)
        if rank == 0:
            return number
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, number)
    return best[1] if best else None


def _written_keys(text: str) -> Iterable[tuple[int, Key, bool]]:
    """(line, full key, whether it is a table header) for each line that writes a key or opens a
    table; lines inside a multi-line string are skipped."""
    table: Key = ()
    in_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        opens_or_closes = (line.count('"""') + line.count("'''")) % 2 == 1
        if not in_string:
            header = _HEADER.match(line)
            assignment = _ASSIGNMENT.match(line)
            if header:
                table = _parts(header.group(1))
                yield number, table, True
            elif assignment:
                yield number, table + _parts(assignment.group(1)), False
        in_string = in_string != opens_or_closes


def _rank(written: Key, key: Key, is_header: bool) -> int | None:
    """How well a line that writes ``written`` locates ``key``: 0 the key itself, 1 an inline
    value holding it, 2 a table or key under it, 3 the table it is in; None unrelated."""
    if written == key:
        return 0
    if key[: len(written)] == written:
        return 3 if is_header else 1
    if written[: len(key)] == key:
        return 2
    return None


# ---- a model's settings, as one test per variant ------------------------------------------------


@dataclass(frozen=True)
class Written:
    """One value of a settings file and where it is written."""

    value: Any
    key: Key


@dataclass(frozen=True)
class Section:
    """One mark's keyword arguments, and where their table is written."""

    key: Key
    args: dict[str, Written]

    def values(self) -> dict[str, Any]:
        return {name: written.value for name, written in self.args.items()}

    def over(self, base: Section | None) -> Section:
        """This section's keys over ``base``'s: a variant replaces the shared keys it names."""
        return self if base is None else Section(self.key, {**base.args, **self.args})


@dataclass(frozen=True)
class Sections:
    model: Section | None = None
    accuracy: Section | None = None
    perf: tuple[tuple[str | None, Section], ...] = ()  # backend (None: a GPU budget) -> budget

    def over(self, base: Sections) -> Sections:
        perf = dict(base.perf)
        for backend, budget in self.perf:
            perf[backend] = budget.over(perf.get(backend))
        return Sections(
            model=_over(self.model, base.model),
            accuracy=_over(self.accuracy, base.accuracy),
            perf=tuple(perf.items()),
        )


def _over(section: Section | None, base: Section | None) -> Section | None:
    return base if section is None else section.over(base)


@dataclass(frozen=True)
class ModelTest:
    """One test of a model file: a variant's name, where it is written, and its sections."""

    name: str
    key: Key
    sections: Sections

    def marks(self, model_file: str) -> list[pytest.MarkDecorator]:
        """The marks a Python test of these settings would carry."""
        found = self.sections
        model = found.model.values() if found.model else {}
        marks = [pytest.mark.trt_model.with_args(model_file, **model)]
        if found.accuracy is not None:
            marks.append(pytest.mark.trt_accuracy.with_args(**found.accuracy.values()))
        for backend, budget in found.perf:
            chosen = {} if backend is None else {"backend": backend}
            marks.append(pytest.mark.trt_perf.with_args(**chosen, **budget.values()))
        return marks


def model_tests(settings: SettingsText, root: Key) -> list[ModelTest]:
    """The tests the model table at ``root`` (``()`` for a sidecar) describes; a table or key
    that is not one of the sections is a SidecarError naming it."""
    table = _table(settings, root, _lookup(settings.table, root))
    _known_keys(settings, root, table, (*SECTIONS, VARIANTS))
    shared = _sections(settings, root, table)
    if VARIANTS not in table:
        return [ModelTest(DEFAULT_NAME, root, shared)]
    variants_key = (*root, VARIANTS)
    variants = _table(settings, variants_key, table[VARIANTS])
    if not variants:
        raise settings.error(variants_key, f"no variant in it: write one table per test, e.g. [{VARIANTS}.fp16.model]")
    tests = []
    for name, variant in variants.items():
        key = (*variants_key, name)
        if not _NAME.match(name):
            raise settings.error(key, f"a variant's name is its test's name: letters, digits, '_' and '-' only, got {name!r}")
        own = _table(settings, key, variant)
        _known_keys(settings, key, own, SECTIONS)
        tests.append(ModelTest(name, key, _sections(settings, key, own).over(shared)))
    return tests


def _lookup(table: Mapping[str, Any], key: Key) -> Any:
    for part in key:
        table = table[part]
    return table


def _table(settings: SettingsText, key: Key, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        shown = ".".join(key)
        raise settings.error(key, f"must be a table ([{shown}]), got {value!r}")
    return value


def _known_keys(settings: SettingsText, key: Key, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for name in table:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise settings.error((*key, name), f"unknown key ({hint}known here: {', '.join(known)})")


def _sections(settings: SettingsText, root: Key, table: Mapping[str, Any]) -> Sections:
    found: dict[str, Section | None] = {}
    for name in ("model", "accuracy"):
        key = (*root, name)
        found[name] = _section(key, _table(settings, key, table[name])) if name in table else None
    if found["model"] is not None:
        for name in _MODEL_ITSELF:
            if name in found["model"].args:
                raise settings.error(
                    (*root, "model", name),
                    "the model is the .onnx file these settings are for; [model] takes the other trt_model arguments",
                )
    return Sections(found["model"], found["accuracy"], _budgets(settings, root, table))


def _section(key: Key, table: Mapping[str, Any]) -> Section:
    return Section(key, {name: Written(value, (*key, name)) for name, value in table.items()})


def _budgets(settings: SettingsText, root: Key, table: Mapping[str, Any]) -> tuple[tuple[str | None, Section], ...]:
    """``[perf]``'s own keys are a GPU budget; each ``[perf.<backend>]`` table, one backend's."""
    if "perf" not in table:
        return ()
    key = (*root, "perf")
    perf = _table(settings, key, table["perf"])
    if "backend" in perf:
        raise settings.error(
            (*key, "backend"), "name the backend by the table: [perf.onnxruntime], [perf.tensorrt], ..."
        )
    gpu = {name: value for name, value in perf.items() if not isinstance(value, dict)}
    budgets: list[tuple[str | None, Section]] = [(None, _section(key, gpu))] if gpu else []
    budgets += [(name, _section((*key, name), value)) for name, value in perf.items() if isinstance(value, dict)]
    return tuple(budgets)
