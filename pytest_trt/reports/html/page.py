"""The report page: a header, the run's figures, the summary table (sortable, failures first,
each row a link to its test) and one section per test with its facts and figures. Everything is
in the one file: styles and the sorting script inline, figures as inline SVG, no link out."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_trt.baselines.regression import Verdict
from pytest_trt.judge.records import TestRecord
from pytest_trt.reports.html.figures import Plot

# Failures first: errors, failed tests, then passed ones whose verdict is in doubt, then the rest.
_RANK = {"error": 0, "failed": 1}
META_KEYS = (("backend", "backend"), ("hardware", "hardware"), ("commit", "commit"),
             ("regression_threshold", "regression threshold"), ("generated", "written"))

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;max-width:1240px;padding:0 1em;color:#212121}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .4em}
.meta{color:#555;margin:0}.counts{font-weight:600}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:.3em .5em;border-bottom:1px solid #e0e0e0;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
th{cursor:pointer;user-select:none;background:#f5f5f5;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
tr.failed td,tr.error td{background:#ffebee}
.badge{display:inline-block;padding:0 .5em;border-radius:.7em;font-size:.85em;color:#fff;background:#757575}
.badge.passed{background:#2e7d32}.badge.failed{background:#c62828}.badge.error{background:#6a1b9a}
.badge.regressed{background:#c62828}.badge.improved{background:#2e7d32}.badge.inconclusive{background:#ef6c00}
section.test{border-top:2px solid #e0e0e0;margin-top:1.5em}
section.test.failed,section.test.error{border-top-color:#c62828}
pre{background:#fafafa;border:1px solid #e0e0e0;padding:.6em;overflow-x:auto;font-size:12px;white-space:pre-wrap}
.plots{display:flex;flex-wrap:wrap;gap:.5em 1.5em}
figure{margin:.4em 0}figure svg{max-width:100%;height:auto}
ul.notes li{color:#8d4a00}a{color:#1565c0}
"""

# Errors of the page's own script are kept in the page, where a headless browser's DOM shows them.
ERROR_CATCHER = """window.trtErrors=[];window.addEventListener("error",function(e){window.trtErrors.push(String(e.message))});"""

SORTER = """
(function(){
  function key(cell,numeric){var v=cell.getAttribute("data-sort");if(v===null)v=cell.textContent;
    if(!numeric)return v;var n=parseFloat(v);return isNaN(n)?Infinity:n;}
  document.querySelectorAll("table.sortable").forEach(function(table){
    var heads=table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads,function(th,col){
      th.addEventListener("click",function(){
        var numeric=th.getAttribute("data-type")==="number";
        var up=th.getAttribute("aria-sort")!=="ascending";
        var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){var x=key(a.cells[col],numeric),y=key(b.cells[col],numeric);
          var c=numeric?(x===y?0:(x<y?-1:1)):String(x).localeCompare(String(y));return up?c:-c;});
        Array.prototype.forEach.call(heads,function(h){h.removeAttribute("aria-sort")});
        th.setAttribute("aria-sort",up?"ascending":"descending");
        rows.forEach(function(r){body.appendChild(r)});
      });
    });
    table.setAttribute("data-ready","true");
  });
  var shown=document.getElementById("trt-js-errors");
  shown.textContent=window.trtErrors.join("\\n");
  document.body.setAttribute("data-js-errors",String(window.trtErrors.length));
})();
"""

COLUMNS = (("test", "text"), ("backend", "text"), ("status", "text"), ("p50 ms", "number"), ("p99 ms", "number"),
           ("qps", "number"), ("vs baseline", "number"), ("verdict", "text"), ("accuracy", "text"))


def ordered(records: Sequence[TestRecord]) -> list[TestRecord]:
    """Failures first (errors, failed, in doubt), each group in the run's order."""
    return sorted(records, key=_rank)


def _rank(record: TestRecord) -> int:
    outcome = _RANK.get(record.pytest_outcome)
    if outcome is not None:
        return outcome
    return 2 if record.inconclusive or record.doubts else 3


def page(records: Sequence[TestRecord], meta: Mapping[str, Any], run_plots: Sequence[Plot],
         per_test: Sequence[Sequence[Plot]]) -> str:
    """The whole page; ``records`` in the order shown (``ordered``), ``per_test`` their figures."""
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>pytest-trt report: {html.escape(_counts(records))}</title>",
        f"<style>{STYLE}</style><script>{ERROR_CATCHER}</script></head><body>",
        '<header><h1>pytest-trt report</h1>', _meta_line(meta),
        f'<p class="counts">{html.escape(_counts(records))}</p></header>',
        '<pre id="trt-js-errors" hidden></pre>',
    ]
    if run_plots:
        parts += ['<section id="run-plots"><h2>The run</h2><div class="plots">', *map(figure_html, run_plots),
                  "</div></section>"]
    parts.append(_table(records))
    parts += [_section(index, record, plots) for index, (record, plots) in enumerate(zip(records, per_test, strict=True))]
    parts.append(f"<script>{SORTER}</script></body></html>\n")
    return "\n".join(parts)


def figure_html(plot: Plot) -> str:
    return (f'<figure class="plot" data-plot="{html.escape(plot.kind)}" aria-label="{html.escape(plot.title)}">'
            f"{plot.svg}</figure>")


def _counts(records: Sequence[TestRecord]) -> str:
    outcomes = [r.pytest_outcome for r in records]
    verdicts = [r.regression.status for r in records if r.regression is not None]
    errors = f", {outcomes.count('error')} errors" if "error" in outcomes else ""
    return (f"{len(records)} tests, {outcomes.count('failed')} failed{errors}, "
            f"{verdicts.count(Verdict.REGRESSED)} regressed, {verdicts.count(Verdict.IMPROVED)} improved")


def _meta_line(meta: Mapping[str, Any]) -> str:
    facts = [f"{label}: <code>{html.escape(str(meta[key]))}</code>" for key, label in META_KEYS if meta.get(key)]
    return f'<p class="meta">{", ".join(facts)}</p>' if facts else ""


def _table(records: Sequence[TestRecord]) -> str:
    head = "".join(
        f'<th data-type="{kind}"{" class=num" if kind == "number" else ""}>{html.escape(name)}</th>'
        for name, kind in COLUMNS
    )
    rows = "\n".join(_row(i, r) for i, r in enumerate(records))
    return (f'<h2>Tests</h2><table id="trt-summary" class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{rows}\n</tbody></table>")


def _row(index: int, record: TestRecord) -> str:
    perf, verdict = record.perf, record.regression
    p50 = perf.latency.median if perf is not None else None
    p99 = perf.latency.p99 if perf is not None else None
    qps = perf.throughput if perf is not None else None
    change = verdict.change if verdict is not None else None
    outcome = record.pytest_outcome
    cells = [
        _cell(f'<a href="#test-{index}">{html.escape(record.nodeid)}</a>', record.nodeid),
        _cell(html.escape(record.backend)),
        _cell(f'<span class="badge {outcome}">{outcome}</span>', f"{_rank(record)} {outcome}"),
        _number_cell(p50, "{:.4g}"), _number_cell(p99, "{:.4g}"), _number_cell(qps, "{:,.0f}"),
        _number_cell(None if change is None else change * 100, "{:+.1f}%"),
        _cell(_verdict_badge(record) or html.escape(record.baseline_note or "-")),
        _cell(_accuracy_word(record)),
    ]
    return f'<tr id="row-{index}" class="{outcome}" data-nodeid="{html.escape(record.nodeid)}">{"".join(cells)}</tr>'


def _cell(content: str, sort: str | None = None) -> str:
    key = f' data-sort="{html.escape(sort)}"' if sort is not None else ""
    return f"<td{key}>{content}</td>"


def _number_cell(value: float | None, form: str) -> str:
    if value is None or not math.isfinite(value):
        return '<td class="num" data-sort="">-</td>'
    return f'<td class="num" data-sort="{value!r}">{form.format(value)}</td>'


def _verdict_badge(record: TestRecord) -> str:
    if record.regression is None:
        return ""
    status = record.regression.status.value
    return f'<span class="badge {status}">{status}</span>'


def _accuracy_word(record: TestRecord) -> str:
    if record.accuracy is None:
        return "-"
    return "passed" if record.accuracy.passed else "failed"


def _section(index: int, record: TestRecord, plots: Sequence[Plot]) -> str:
    outcome = record.pytest_outcome
    step = f" ({record.step.value})" if record.step is not None else ""
    parts = [
        f'<section class="test {outcome}" id="test-{index}" data-nodeid="{html.escape(record.nodeid)}">',
        f'<h2><span class="badge {outcome}">{outcome}{html.escape(step)}</span> {html.escape(record.nodeid)}</h2>',
        _facts(record),
    ]
    if record.failures:
        parts.append(f"<pre class=failures>{html.escape(chr(10).join(record.failures))}</pre>")
    parts += _lists(record)
    if plots:
        parts += ['<div class="plots">', *map(figure_html, plots), "</div>"]
    parts.append('<p><a href="#trt-summary">back to the table</a></p></section>')
    return "\n".join(parts)


def _facts(record: TestRecord) -> str:
    subject = record.subject
    facts = [f"backend {subject.backend}", f"model {subject.model.path}", f"precision {subject.workload.precision}",
             f"batch {subject.workload.batch}"]
    if record.perf is not None:
        perf = record.perf
        facts.append(f"{perf.iterations} iterations, p50 {perf.latency.median:.4g} ms, "
                     f"p99 {perf.latency.p99:.4g} ms, {perf.throughput:,.0f} qps")
    return f'<p class="meta">{html.escape("; ".join(facts))}</p>'


def _lists(record: TestRecord) -> list[str]:
    parts = []
    if record.budgets:
        items = [f"{b.description}: {b.state.value}" + (f" ({b.message})" if b.message else "") for b in record.budgets]
        parts.append(_list("Budgets", items))
    baseline = record.regression.message if record.regression is not None else ""
    baseline += f" [{record.baseline_note}]" if record.baseline_note else ""
    if baseline:
        parts.append(_list("Baseline", [baseline]))
    if record.accuracy is not None and record.accuracy.problems:
        parts.append(_list("Accuracy problems", record.accuracy.problems))
    notes = [*record.doubts, *record.warnings]
    if notes:
        parts.append(_list("Warnings", notes, "notes"))
    return parts


def _list(title: str, items: Sequence[str], css: str = "") -> str:
    lis = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    return f'<h3>{html.escape(title)}</h3><ul class="{css}">{lis}</ul>'
