"""What an option is: its kind, its flag and ini key, its default and allowed values, and how a
given value is read and checked (``Option``). ``options.OPTIONS`` declares every one of them."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypeVar

import pytest

from pytest_trt.errors import PytestTrtError
from pytest_trt.run.gpus import GpuSelection, GpusError, parse_gpus

# What pytest's "bool" ini type reads as true / false, in any letter case.
INI_TRUE = ("true", "yes", "on", "1", "y", "t")
INI_FALSE = ("false", "no", "off", "0", "n", "f")
# The longest "--flag=METAVAR" that keeps its --help line within 80 columns (argparse indents it).
HELP_FLAG_WIDTH = 60
_Number = TypeVar("_Number", int, float)


class Kind(Enum):
    """An option's type, as the README table shows it."""

    CHOICE = "choice"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    SIZE = "size"
    FOLDER = "folder"
    FILE = "file"
    GPUS = "gpus"


class OptionValueError(PytestTrtError, ValueError):
    """A value an option cannot take. The message names no source: the caller adds the flag, the
    ini key or the environment variable."""


@dataclass(frozen=True)
class Option:
    flag: str
    ini: str
    kind: Kind
    help: str
    default: Any = None  # the value when neither the command line nor the ini gives one
    default_text: str | None = None  # how that default reads, where its value does not say it
    choices: Callable[[], tuple[str, ...]] | None = None
    minimum: float | None = None
    above_minimum: bool = False  # the minimum itself is not allowed
    metavar: str | None = None
    flag_alone: bool = False  # the flag may be given without a value (it means "")
    env: str | None = None  # read when neither the command line nor the ini gives a value

    @property
    def dest(self) -> str:
        return self.ini

    def allowed_choices(self) -> tuple[str, ...]:
        return self.choices() if self.choices is not None else ()

    def parse(self, raw: object) -> Any:
        """The value of one setting as the user wrote it; raises OptionValueError."""
        if self.kind is Kind.CHOICE:
            allowed = self.allowed_choices()
            if raw not in allowed:
                raise OptionValueError(f"invalid choice: {raw!r} (choose from {', '.join(allowed)})")
            return raw
        if self.kind is Kind.INT:
            return self._bounded(as_number(raw, int))
        if self.kind is Kind.FLOAT:
            number = float(as_number(raw, float))
            if not math.isfinite(number):
                raise OptionValueError(f"must be a finite number, got {raw!r}")
            return self._bounded(number)
        if self.kind is Kind.SIZE:
            text = size_value(raw)
            if self.minimum is not None:
                self._bounded(size_bytes(text))
            return text
        if self.kind is Kind.GPUS:
            return gpus_value(raw)
        if self.kind is Kind.BOOL:
            raise TypeError("bool options are read by pytest's own ini parser")
        return str(raw)  # a path: checked against the file system in Settings.from_config

    def _bounded(self, number: _Number) -> _Number:
        if self.minimum is not None and (number <= self.minimum if self.above_minimum else number < self.minimum):
            raise OptionValueError(f"must be {self._bound_text()}, got {number!r}")
        return number

    def _bound_text(self) -> str:
        return f"{'>' if self.above_minimum else '>='} {self.minimum:g}"

    def argparse_type(self, text: str) -> Any:
        try:
            return self.parse(text)
        except OptionValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def shown_default(self) -> str:
        if self.default_text is not None:
            return self.default_text
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)

    def shown_flag(self) -> str:
        if self.kind is Kind.BOOL:
            return self.flag
        value = self._metavar()
        return f"{self.flag}[={value}]" if self.flag_alone else f"{self.flag}={value}"

    def _metavar(self) -> str:
        if self.kind is Kind.CHOICE:
            return "{" + ",".join(self.allowed_choices()) + "}"
        return self.metavar or self.kind.value.upper()

    def allowed_text(self) -> str:
        """The values the option takes, for the README table."""
        if self.kind is Kind.CHOICE:
            return ", ".join(f"`{c}`" for c in self.allowed_choices())
        if self.kind is Kind.BOOL:
            return "`true`, `false`"
        if self.kind is Kind.INT:
            return f"an integer {self._bound_text()}" if self.minimum is not None else "an integer"
        if self.kind is Kind.FLOAT:
            return f"a finite number {self._bound_text()}" if self.minimum is not None else "a finite number"
        if self.kind is Kind.GPUS:
            return "`all`, a number N (the first N GPUs), or device indices `0,2,3` (one GPU: `3,`)"
        if self.kind is Kind.SIZE:
            return "bytes, or a number with K, M, G, T (powers of 1000) or KiB, MiB, GiB, TiB (of 1024): `2GB`, `500MiB`"
        return f"a {self.kind.value} path; a relative one is under the rootdir"

    def register(self, parser: pytest.Parser, group: pytest.OptionGroup) -> None:
        help_text = f"{self.help} Default: {self.shown_default()}."
        metavar = self._metavar()
        if len(self.flag) + 1 + len(metavar) > HELP_FLAG_WIDTH:
            # Choices too many for one --help line (registered backends): named in the help.
            metavar = "NAME"
            help_text += f" Choices: {', '.join(self.allowed_choices())}."
        # argparse %-formats help texts.
        kwargs: dict[str, Any] = {"dest": self.dest, "default": None, "help": help_text.replace("%", "%%")}
        if self.kind is Kind.BOOL:
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = metavar
            if self.kind not in (Kind.FOLDER, Kind.FILE):
                # One function checks the command line and the ini: the same rule, the same words.
                kwargs["type"] = self.argparse_type
            if self.flag_alone:
                kwargs.update(nargs="?", const="")
        group.addoption(self.flag, **kwargs)
        # No ini default: an unset key reads None, so Settings can tell it from one written empty.
        ini_type: Literal["bool", "string"] = "bool" if self.kind is Kind.BOOL else "string"
        parser.addini(self.ini, help=help_text, type=ini_type, default=None)


def as_number(raw: object, kind: type[_Number]) -> _Number:
    if isinstance(raw, bool):
        raise OptionValueError(f"invalid {kind.__name__} value: {raw!r}")
    if isinstance(raw, (int, float)) and not (kind is int and isinstance(raw, float)):
        return kind(raw)  # a TOML number
    try:
        return kind(str(raw))
    except ValueError:
        raise OptionValueError(f"invalid {kind.__name__} value: {raw!r}") from None


def size_value(raw: object) -> str:
    from pytest_trt.errors import CacheError
    from pytest_trt.store.sizes import parse_size

    try:
        parse_size(str(raw))
    except CacheError:
        raise OptionValueError(
            f"invalid size value: {raw!r} (give bytes or a number with K, M, G or T (powers of 1000) "
            "or KiB, MiB, GiB or TiB (powers of 1024), e.g. 2GB or 500MiB)"
        ) from None
    return str(raw)


def gpus_value(raw: object) -> GpuSelection:
    try:
        return parse_gpus(raw)
    except GpusError as exc:
        raise OptionValueError(str(exc)) from None


def size_bytes(size: str) -> int:
    from pytest_trt.store.sizes import parse_size

    return parse_size(size)
