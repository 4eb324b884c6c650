"""How a run treats ``trt_perf`` budgets (``--trt-perf``). No numpy here: the session reads it at
collection, before any model is loaded."""

from __future__ import annotations

from enum import Enum


class PerfMode(str, Enum):
    """``--trt-perf``: budgets enforced, only reported, or nothing measured."""

    ENFORCE = "enforce"  # a missed budget fails its test
    REPORT = "report"  # measured and shown; a missed budget or a regression fails nothing
    OFF = "off"  # nothing is measured
