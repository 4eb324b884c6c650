"""``python -m pytest_trt``: the ``pytest-trt`` command line (reports/cli.py)."""

from __future__ import annotations

if __name__ == "__main__":
    from pytest_trt.reports.cli import main

    raise SystemExit(main())
