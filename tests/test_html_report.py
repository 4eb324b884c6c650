"""The HTML report (--trt-report-html, and from a JSON report), through pytester runs of real test
files and from records with every part it draws; pytest-html's extras and summary."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path

import pytest
from html_records import failed_record, history, passed_record

from pytest_trt.judge.accuracy import compare_output
from pytest_trt.reports.report_files import ReportFileError
from pytest_trt.specs import OutputTolerance

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="needs matplotlib: pip install 'pytest-trt[report]'")
if HAS_MATPLOTLIB:
    # Imported before any in-process run (see conftest.py: a run puts sys.modules back).
    import matplotlib.figure  # noqa: F401

    from pytest_trt.reports import html as html_report

TWO_TESTS = """
import pytest

@pytest.mark.trt_model("mlp.onnx", shapes={"x": (8, 256)}, intra_op_threads=1)
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
@pytest.mark.trt_perf(max_latency_ms=1e6, percentile=99, backend="onnxruntime")
def test_mlp(trt_engine):
    pass

@pytest.mark.trt_model("mlp.onnx", shapes={"x": (8, 256)}, intra_op_threads=1)
@pytest.mark.trt_perf(max_latency_ms=0.000001, backend="onnxruntime")
def test_mlp_too_slow(trt_engine):
    pass
"""
# Where a page could reach outside itself: a source or link that is not an anchor in the page.
OUTSIDE = re.compile(r"""\b(?:src|href|xlink:href)\s*=\s*["'](?!#)|url\((?!#)|@import|<link\b""")


def _plots(html: str, nodeid: str) -> list[str]:
    """The kinds of figures in one test's section."""
    section = re.search(rf'<section class="test [a-z]+" id="test-\d+" data-nodeid="{re.escape(nodeid)}">(.*?)</section>',
                        html, re.S)
    assert section, f"no section for {nodeid}"
    return re.findall(r'data-plot="([a-z]+)"', section.group(1))


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr id="row-\d+" class="[a-z]+" data-nodeid="([^"]+)">', html)


@needs_matplotlib
def test_the_report_is_one_file_with_failures_first_and_each_row_linked_to_its_plots(trt_pytester):
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    before = {p.name for p in trt_pytester.path.iterdir()}
    trt_pytester.run("--trt-report-html=out/report.html").assert_outcomes(passed=1, failed=1)
    assert [p.name for p in (trt_pytester.path / "out").iterdir()] == ["report.html"]
    assert {p.name for p in trt_pytester.path.iterdir()} - before == {"out"}
    html = (trt_pytester.path / "out" / "report.html").read_text(encoding="utf-8")
    assert _rows(html) == ["test_user.py::test_mlp_too_slow", "test_user.py::test_mlp"]
    for index in range(2):
        assert f'href="#test-{index}"' in html and f'id="test-{index}"' in html
    assert _plots(html, "test_user.py::test_mlp") == ["latency", "accuracy"]
    assert _plots(html, "test_user.py::test_mlp_too_slow") == ["latency", "profile"]  # a missed budget is profiled
    assert "budget p99" in html and "budget p50" in html  # each budget's line, at its percentile
    assert 'data-plot="budgets"' in html  # the run's figure: latency against budgets
    assert "1 failed" in html and OUTSIDE.search(html) is None


@needs_matplotlib
def test_the_ini_twin_names_the_file(trt_pytester):
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    trt_pytester.pytester.makeini("[pytest]\ntrt_report_html = reports/trt.html\n")
    trt_pytester.run("-k", "not too_slow").assert_outcomes(passed=1)
    assert _rows((trt_pytester.path / "reports" / "trt.html").read_text(encoding="utf-8")) == ["test_user.py::test_mlp"]


@pytest.mark.parametrize("given", ["option", "ini"])
def test_without_matplotlib_the_option_is_a_usage_error_naming_the_extra(trt_pytester, monkeypatch, given):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what find_spec reads as not installed
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    if given == "ini":
        trt_pytester.pytester.makeini("[pytest]\ntrt_report_html = report.html\n")
    result = trt_pytester.run(*(["--trt-report-html=report.html"] if given == "option" else []))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    named = "--trt-report-html=report.html" if given == "option" else "ini option trt_report_html = report.html"
    assert (f"pytest-trt: {named} draws its plots with matplotlib, which is not installed: install the report "
            "extra (pip install 'pytest-trt[report]')") in result.stderr.str()
    assert not (trt_pytester.path / "report.html").exists()


@needs_matplotlib
def test_a_json_report_renders_as_the_session_s_own(trt_pytester, tmp_path):
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    trt_pytester.run("--trt-report-json=r.json", "--trt-report-html=direct.html").assert_outcomes(passed=1, failed=1)
    out = tmp_path / "from-json.html"
    html_report.write_html_from_json(trt_pytester.path / "r.json", out)
    direct = (trt_pytester.path / "direct.html").read_text(encoding="utf-8")
    again = out.read_text(encoding="utf-8")
    assert _rows(again) == _rows(direct) and len(_rows(again)) == 2
    for nodeid in _rows(direct):
        assert _plots(again, nodeid) == _plots(direct, nodeid)


@needs_matplotlib
@pytest.mark.parametrize("content", ["{not json", '{"schema": 4, "meta": {}}', '{"tests": [{"nodeid": "t", "status": 3}]}'])
def test_a_file_that_is_not_a_json_report_is_an_error_naming_it(tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(ReportFileError, match=re.escape(str(bad))):
        html_report.write_html_from_json(bad, tmp_path / "out.html")
    assert not (tmp_path / "out.html").exists()


def test_without_matplotlib_a_json_report_cannot_be_rendered_and_the_error_names_the_extra(tmp_path, monkeypatch):
    from pytest_trt.reports.html import PlottingUnavailable, write_html_from_json

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    (tmp_path / "r.json").write_text('{"schema": 4, "meta": {}, "tests": []}')
    with pytest.raises(PlottingUnavailable, match=re.escape("pip install 'pytest-trt[report]'")):
        write_html_from_json(tmp_path / "r.json", tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


@needs_matplotlib
def test_xdist_workers_records_are_in_the_controller_s_one_report(trt_pytester):
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    trt_pytester.run_subprocess("-n", "2", "--trt-report-html=report.html").assert_outcomes(passed=1, failed=1)
    assert sorted(_rows((trt_pytester.path / "report.html").read_text(encoding="utf-8"))) == [
        "test_user.py::test_mlp", "test_user.py::test_mlp_too_slow"]


@needs_matplotlib
def test_a_compared_test_marks_its_baseline_on_the_latency_plot(trt_pytester, quiet_host):
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    # A wide threshold: this tiny model's time moves with the host's load, and the plot is asked of
    # whatever the verdict is; a regression (a busy host's) adds the layer profile behind it.
    threshold = "--trt-regression-threshold=0.9"
    trt_pytester.run("-k", "not too_slow", threshold, "--trt-update-baselines").assert_outcomes(passed=1)
    result = trt_pytester.run("-k", "not too_slow", threshold, "--trt-report-html=report.html")
    html = (trt_pytester.path / "report.html").read_text(encoding="utf-8")
    regressed = result.parseoutcomes().get("failed", 0) == 1
    expected = ["latency", "regression", *(["profile"] if regressed else []), "accuracy"]
    assert "baseline min" in html and _plots(html, "test_user.py::test_mlp") == expected


@needs_matplotlib
def test_three_recordings_at_three_commits_are_three_points_with_a_trend():
    record = dataclasses.replace(passed_record(), history=history(3, drift=0.02))
    (plot,) = [p for p in html_report.plots_of(record, "t0") if p.kind == "history"]
    titles = re.findall(r'<g id="t0-history-trt-history-\d"><title>([^<]*)</title>', plot.svg)
    assert [t.split(", ")[1] for t in titles] == ["commit 00c0ffee00", "commit 01c0ffee01", "commit 02c0ffee02"]
    assert all("2026-11-0" in t for t in titles)
    assert 'id="t0-history-trt-trend"' in plot.svg and "trend +2.00% per recording" in plot.svg


@needs_matplotlib
def test_sweeps_and_profiles_are_drawn_where_a_record_has_them_and_skipped_where_not():
    kinds = [p.kind for p in html_report.plots_of(failed_record())]
    assert kinds == ["latency", "phases", "regression", "history", "sweep", "profile", "accuracy"]
    plain = passed_record()
    assert not plain.sweep and not plain.streams and plain.layers is None
    assert [p.kind for p in html_report.plots_of(plain)] == ["latency", "phases", "regression", "history", "accuracy"]


@needs_matplotlib
def test_each_figure_s_ids_are_its_own():
    page = html_report.render([failed_record(), passed_record()], {})
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    assert set(re.findall(r'(?:href="#|url\(#)([^")]+)', page)) <= set(ids)


def test_an_output_keeps_its_error_distribution_in_tolerance_units():
    ref = [[1.0, 2.0, 0.0, 4.0]]
    out = [[1.0, 2.003, 1e-6, float("nan")]]
    report = compare_output("y", out, ref, OutputTolerance(rtol=1e-3, atol=1e-5))
    spread = report.distribution
    assert spread is not None and (spread.rtol, spread.atol, spread.check) == (1e-3, 1e-5, "elementwise")
    assert spread.ratio[0] == 0.0 and spread.ratio[-1] == float("inf")  # a NaN the policy rejects: inf
    # Sorted ratios 0, 0.1, 1.49, inf: half the elements are at or below 1.49, an element's own ratio.
    assert spread.ratio[spread.levels.index(0.5)] == pytest.approx(0.003 / (1e-5 + 1e-3 * 2.0), rel=1e-3)


@needs_matplotlib
def test_pytest_html_gets_each_test_s_plots_and_the_run_s_in_a_self_contained_file(trt_pytester):
    pytest.importorskip("pytest_html")
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    result = trt_pytester.run_subprocess("--html=ph.html", "--self-contained-html")
    result.assert_outcomes(passed=1, failed=1)
    html = (trt_pytester.path / "ph.html").read_text(encoding="utf-8")
    assert "data:image/svg+xml;base64," in html and "pytest-trt: Latency distribution" in html
    assert "pytest-trt: Accuracy error distribution" in html
    assert 'data-plot=\\"budgets\\"' in html or 'data-plot="budgets"' in html  # the summary's figure
    assert "link to external resource" not in result.stdout.str() + result.stderr.str()
    assert sorted(p.name for p in trt_pytester.path.iterdir() if p.suffix == ".html") == ["ph.html"]


def test_pytest_html_without_matplotlib_gets_a_note_and_no_plots(trt_pytester, monkeypatch):
    pytest.importorskip("pytest_html")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    result = trt_pytester.run("--html=ph.html", "-k", "not too_slow")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*pytest-html: pytest-trt draws its plots with matplotlib, which is not installed*"])
    assert "pytest-trt: Latency" not in Path(trt_pytester.path / "ph.html").read_text(encoding="utf-8")
