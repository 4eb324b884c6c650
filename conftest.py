"""Repo-root conftest: lets a plain clone run the plugin's own tests and examples.

From a clone where pytest-trt is not pip-installed, the ``pytest11`` entry point does not exist,
so the plugin is loaded from here instead; once installed, the entry point loads it and this
file must not register it a second time.
"""

from importlib.metadata import entry_points


def _installed() -> bool:
    return any(ep.value == "pytest_trt.plugin" for ep in entry_points(group="pytest11"))


pytest_plugins = [] if _installed() else ["pytest_trt.plugin"]
