"""Whether the report extra's plotting library (matplotlib) is installed: decided here, without
importing it, for the option check, pytest-html's figures and the HTML report alike."""

from __future__ import annotations

import importlib.util

REPORT_EXTRA = "pip install 'pytest-trt[report]'"


def plotting_installed() -> bool:
    return importlib.util.find_spec("matplotlib") is not None
