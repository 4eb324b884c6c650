"""Size and drawing time of the HTML report (``--trt-report-html``) for a run of N gated tests.

The records come from tests/html_records.py: every test has a 2000-iteration latency sample with
a budget and a baseline, GPU phases, a regression verdict, two float outputs compared for real
and a baseline history; every fifth test failed and also has a batch sweep and a 20-layer
profile. Prints the file's size, its size gzipped, the figures per kind with their mean size,
and the CPU time to render (process time: on a busy shared host, wall time says little).

    python bench/html_report_size.py --tests 50
"""

from __future__ import annotations

import argparse
import collections
import gzip
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from html_records import many_records

from pytest_trt.reports import html as html_report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=50)
    args = parser.parse_args()
    records = many_records(args.tests)
    html_report.render(records[:1], {})  # matplotlib imported and its fonts found: not the report's cost
    started = time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.html"
        html_report.write_html(path, records, {"backend": "tensorrt", "commit": "0123abc"})
        seconds = time.process_time() - started
        text = path.read_text(encoding="utf-8")
    sizes: dict[str, list[int]] = collections.defaultdict(list)
    for index, record in enumerate(records):
        for plot in html_report.plots_of(record, f"t{index}"):
            sizes[plot.kind].append(len(plot.svg.encode()))
    print(f"{args.tests} tests: {len(text.encode()) / 1e6:.2f} MB ({len(gzip.compress(text.encode())) / 1e6:.2f} MB "
          f"gzipped), rendered in {seconds:.1f} s CPU ({seconds / args.tests:.2f} s per test)")
    for kind, values in sorted(sizes.items()):
        print(f"  {kind:<10} {len(values):>3} figures, {sum(values) / len(values) / 1e3:5.1f} kB each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
