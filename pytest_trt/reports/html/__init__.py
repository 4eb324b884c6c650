"""The HTML report (``--trt-report-html``, and ``pytest-trt html`` from a JSON report): one
self-contained file, with figures drawn by matplotlib as inline SVG (the ``report`` extra).

Also the figures that pytest-html shows when it is active: each gated test's as extras, the
run's in its summary. Everything here reads typed ``TestRecord`` objects.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_trt.errors import PytestTrtError
from pytest_trt.judge.records import TestRecord
from pytest_trt.reports.html import overview, page, plots, series
from pytest_trt.reports.html.figures import Plot
from pytest_trt.reports.plotting import REPORT_EXTRA, plotting_installed
from pytest_trt.reports.report_files import read_report
from pytest_trt.store.files import write_atomic

# A test's figures, in the order its section shows them.
TEST_PLOTS = (plots.latency, plots.phases, plots.regression, series.history, series.sweep, series.profile,
              plots.accuracy)


class PlottingUnavailable(PytestTrtError, ImportError):
    """matplotlib, which draws the report's figures, is not installed."""


def check_plotting() -> None:
    """Raise ``PlottingUnavailable``, naming the extra to install, where matplotlib is missing."""
    if not plotting_installed():
        raise PlottingUnavailable(
            f"the HTML report draws its plots with matplotlib, which is not installed: install the report extra "
            f"({REPORT_EXTRA})"
        )


def plots_of(record: TestRecord, prefix: str = "t") -> list[Plot]:
    """Every figure the record has data for; ``prefix`` keeps their SVG ids apart in one page."""
    drawn = (draw(record, prefix) for draw in TEST_PLOTS)
    return [plot for plot in drawn if plot is not None]


def run_plots(records: Sequence[TestRecord]) -> list[Plot]:
    """The run's figures: latency against budgets, changes against baselines (where any)."""
    drawn = (overview.budgets(records), overview.baselines(records))
    return [plot for plot in drawn if plot is not None]


def render(records: Sequence[TestRecord], meta: Mapping[str, Any]) -> str:
    """The report page for ``records`` (failures first) and the run facts in ``meta``."""
    check_plotting()
    shown = page.ordered(records)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return page.page(shown, {**meta, "generated": now}, run_plots(shown),
                     [plots_of(record, f"t{index}") for index, record in enumerate(shown)])


def write_html(path: Path, records: Sequence[TestRecord], meta: Mapping[str, Any]) -> None:
    """The report to ``path``, atomically: the ``--trt-report-html`` writer."""
    write_atomic(Path(path), render(records, meta))


def write_html_from_json(report_json: Path, out: Path) -> None:
    """The HTML report of a JSON report (``pytest-trt html REPORT.json -o report.html``). Raises
    ``PlottingUnavailable`` without matplotlib (its message names the extra to install),
    ``report_files.ReportFileError`` for a file that is not a JSON report this version reads,
    ``OSError`` where the page cannot be written."""
    check_plotting()
    report = read_report(Path(report_json))
    write_html(out, report.records, report.meta)


def pytest_html_extras(record: TestRecord) -> list[dict[str, Any]]:
    """pytest-html extras for one test: each figure as a base64 SVG image, which its
    ``--self-contained-html`` embeds as a data URI."""
    from pytest_html import extras

    prefix = "x" + hashlib.sha1(record.nodeid.encode()).hexdigest()[:12]
    return [
        extras.svg(base64.b64encode(plot.svg.encode("utf-8")).decode("ascii"), name=f"pytest-trt: {plot.title}")
        for plot in plots_of(record, prefix)
    ]


def pytest_html_summary(records: Sequence[TestRecord]) -> list[str]:
    """HTML for pytest-html's summary: the run's figures, inline."""
    shown = run_plots(records)
    if not shown:
        return []
    figures = "".join(page.figure_html(plot) for plot in shown)
    return [f'<div class="pytest-trt"><h3>{html.escape("pytest-trt")}</h3>{figures}</div>']
