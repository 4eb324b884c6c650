"""Figures as inline SVG: matplotlib draws, the SVG is made fit to sit in one HTML page.

Each figure's ids get a prefix of their own (matplotlib names clip paths and markers by a hash of
their content, so two figures in one page would share ids, and a hidden figure's definitions
would be the ones found); text stays text (``svg.fonttype: none``), which keeps a figure a few
kilobytes; points that carry a hover text get an SVG ``<title>`` (browsers show it as a tooltip).
matplotlib is imported on first use: it is the ``report`` extra.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH_IN = 5.8  # inches: about 560 px at the 96 px/inch browsers use for the SVG's pt sizes
ROW_IN = 2.3
STYLE: dict[Any, Any] = {  # rc_context types its keys as literals: these are checked at run time
    "svg.fonttype": "none",
    "svg.hashsalt": "pytest-trt",  # ids that do not change between runs of the same report
    "font.size": 8.0,
    "axes.titlesize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 7.0,
    "legend.frameon": False,
}
# Colours of states, shared by the page's CSS and the figures.
RED, GREEN, BLUE, GREY, AMBER = "#c62828", "#2e7d32", "#1565c0", "#9e9e9e", "#ef6c00"

OWN_ID = "trt-"  # the start of the gids the report's figures set: kept in the SVG, for pages and tests
_ID = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')
_ID_ATTRIBUTE = re.compile(r' id="([^"]+)"')
_REFERENCE = re.compile(r'(?:href="#|url\(#)([^")]+)')
_GEOMETRY = re.compile(r'\b(d|transform|x|y|x1|x2|y1|y2|width|height)="([^"]*)"')
_DECIMALS = re.compile(r"(\.\d)\d+")
_BETWEEN_TAGS = re.compile(r">\s+<")
_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


@dataclass(frozen=True)
class Plot:
    """One figure: ``kind`` names what it shows (``latency``, ``history``...; pages and tests
    find it by that), ``svg`` is the markup to put inline."""

    kind: str
    title: str
    svg: str


@contextmanager
def figure(rows: int = 1, cols: int = 1, *, height_in: float | None = None, left_in: float = 0.65,
           right_in: float = 0.15, bottom_in: float = 0.5) -> Iterator[tuple[Figure, list[Axes]]]:
    """A matplotlib figure (no pyplot: nothing global changes) and its axes, in the report's
    style. Margins are fixed, in inches (``left_in`` room for the y labels): a layout engine
    would draw every figure twice, and drawing is most of a report's time."""
    import matplotlib
    from matplotlib.figure import Figure

    height = height_in or ROW_IN * rows
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, height))
        fig.subplots_adjust(left=left_in / WIDTH_IN, right=1 - right_in / WIDTH_IN, bottom=min(bottom_in / height, 0.45),
                            top=1 - min(0.3 / height, 0.25), wspace=0.35)
        axes = fig.subplots(rows, cols, squeeze=False)
        yield fig, [ax for row in axes for ax in row]


def label_room(labels: list[str]) -> float:
    """Inches of left margin that y tick labels of these lengths need at the report's font size."""
    return 0.25 + 0.065 * max((len(label) for label in labels), default=4)


def log_axis(ax: Axes, which: str, base: float = 10) -> None:
    """A log-scale axis with major ticks only, labelled as plain numbers: minor tick labels and
    matplotlib's 10^n labels (mathtext) cost most of a figure's drawing."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log", base=base)
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def to_svg(fig: Figure, prefix: str, titles: Mapping[str, str] | None = None) -> str:
    """The figure as inline SVG markup: ids prefixed with ``prefix``, and a ``<title>`` in each
    element whose gid is a key of ``titles``."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = _smaller(_METADATA.sub("", _PROLOG.sub("", buffer.getvalue(), count=1)), set(titles or {}))
    for gid, title in (titles or {}).items():
        opening = f'<g id="{gid}">'
        text = text.replace(opening, f"{opening}<title>{html.escape(title)}</title>", 1)
    return _ID.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)


def _smaller(text: str, keep: set[str]) -> str:
    """The SVG without what a page does not need: ids nothing refers to (matplotlib names every
    group; ours, ``trt-*``, are kept), coordinates finer than a tenth of a point, and the
    indentation between tags."""
    used = keep | set(_REFERENCE.findall(text))
    text = _ID_ATTRIBUTE.sub(lambda m: m.group(0) if m.group(1) in used or m.group(1).startswith(OWN_ID) else "", text)
    text = _GEOMETRY.sub(lambda m: f'{m.group(1)}="{_coarse(m.group(2))}"', text)
    return _BETWEEN_TAGS.sub("><", text)


def _coarse(numbers: str) -> str:
    return " ".join(_DECIMALS.sub(r"\1", numbers).split())
