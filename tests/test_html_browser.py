"""The HTML report in a real browser: headless Chromium renders it from the file system, with no
network, and the rendered DOM must hold the rows and figures with no console error; the table
sorts when a header is clicked. A screenshot is saved under the test's tmp path.

CI installs Debian's ``chromium`` (.ci/run); where it is absent these tests skip."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from html_records import failed_record, passed_record

BROWSER = next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)
pytestmark = [
    pytest.mark.skipif(BROWSER is None, reason="needs Chromium (Debian: apt-get install chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib: pip install 'pytest-trt[report]'"),
]
TIMEOUT_S = 120
# Clicks the p50 column's header once, then writes the rows' order where --dump-dom shows it.
CLICK_P50 = """<script>
var head = Array.prototype.find.call(document.querySelectorAll("#trt-summary th"), function (th) {
  return th.textContent === "p50 ms"; });
head.click();
document.body.setAttribute("data-order", Array.prototype.map.call(
  document.querySelectorAll("#trt-summary tbody tr"), function (tr) { return tr.getAttribute("data-nodeid"); }).join(" "));
</script></body>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    from pytest_trt.reports import html as html_report

    path = tmp_path / "report.html"
    records = [passed_record("tests/test_zoo.py::test_fast"), failed_record("tests/test_zoo.py::test_slow"),
               passed_record("tests/test_zoo.py::test_mid", seed=5)]
    html_report.write_html(path, records, {"backend": "tensorrt", "commit": "0123abc"})
    return path


def test_the_report_renders_offline_with_its_rows_and_figures_and_no_console_error(report, tmp_path):
    shown = _chromium(tmp_path, "--dump-dom", report.as_uri())
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert _console(shown.stderr) == []
    dom = shown.stdout
    assert 'data-js-errors="0"' in dom and re.search(r'<table id="trt-summary" class="sortable" data-ready="true"', dom)
    rows = re.findall(r'<tr id="row-\d+" class="([a-z]+)" data-nodeid="([^"]+)"', dom)
    assert rows[0] == ("failed", "tests/test_zoo.py::test_slow") and len(rows) == 3
    kinds = re.findall(r'<figure class="plot" data-plot="([a-z]+)"', dom)
    for kind in ("budgets", "baselines", "latency", "phases", "regression", "history", "sweep", "profile", "accuracy"):
        assert kind in kinds
    assert dom.count("<svg") == len(kinds)
    picture = tmp_path / "report.png"
    shot = _chromium(tmp_path, f"--screenshot={picture}", "--window-size=1280,2400", "--hide-scrollbars", report.as_uri())
    assert shot.returncode == 0 and _console(shot.stderr) == []
    assert picture.stat().st_size > 20_000  # drawn: a blank page of this size compresses to a few kB


def test_a_click_on_a_header_sorts_the_table(report, tmp_path):
    clicking = tmp_path / "clicking.html"
    clicking.write_text(report.read_text(encoding="utf-8").replace("</body>", CLICK_P50, 1), encoding="utf-8")
    shown = _chromium(tmp_path, "--dump-dom", clicking.as_uri())
    assert shown.returncode == 0 and _console(shown.stderr) == []
    order = re.search(r'data-order="([^"]*)"', shown.stdout)
    assert order is not None
    p50 = {nodeid: float(value) for nodeid, value in re.findall(
        r'data-nodeid="([^"]+)"><td data-sort="[^"]*"><a [^>]*>[^<]*</a></td><td>[^<]*</td><td[^>]*>.*?</td>'
        r'<td class="num" data-sort="([^"]+)">', shown.stdout)}
    assert order.group(1).split() == sorted(p50, key=p50.__getitem__) and len(p50) == 3
    assert 'aria-sort="ascending"' in shown.stdout
