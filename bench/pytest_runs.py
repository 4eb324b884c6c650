"""What every bench passes to a ``python -m pytest`` child process of its own."""

from __future__ import annotations

from importlib.metadata import entry_points


def plugin_args() -> list[str]:
    """``-p pytest_trt.plugin`` unless an installed pytest-trt already registers it (a checkout
    run with PYTHONPATH, as on the GPU host, is not installed)."""
    installed = any(ep.value == "pytest_trt.plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "pytest_trt.plugin"]
