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

_ID = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')
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
def figure(rows: int = 1, cols: int = 1, *, height_in: float | None = None) -> Iterator[tuple[Figure, list[Axes]]]:
    """A matplotlib figure (no pyplot: nothing global changes) and its axes, in the report's style."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, height_in or ROW_IN * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        yield fig, [ax for row in axes for ax in row]


def to_svg(fig: Figure, prefix: str, titles: Mapping[str, str] | None = None) -> str:
    """The figure as inline SVG markup: ids prefixed with ``prefix``, and a ``<title>`` in each
    element whose gid is a key of ``titles``."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = _METADATA.sub("", _PROLOG.sub("", buffer.getvalue(), count=1))
    for gid, title in (titles or {}).items():
        opening = f'<g id="{gid}">'
        text = text.replace(opening, f"{opening}<title>{html.escape(title)}</title>", 1)
    return _ID.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
