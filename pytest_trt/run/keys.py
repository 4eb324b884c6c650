"""Where pytest-trt keeps its state on pytest's stashes: the run's ``RunState`` on the config, and
on each test item its validated gates and its engine. Shared by ``plugin.py`` and the items of
model files (``run/model_files.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_trt.judge.item_gates import ItemGates
    from pytest_trt.judge.records import TestRecord
    from pytest_trt.prepare.engines import Engine
    from pytest_trt.run.session import RunState

STATE_KEY: pytest.StashKey[RunState] = pytest.StashKey()
GATES_KEY: pytest.StashKey[ItemGates] = pytest.StashKey()
ENGINE_KEY: pytest.StashKey[Engine] = pytest.StashKey()
RECORD_KEY: pytest.StashKey[TestRecord] = pytest.StashKey()  # the item's record, for pytest-html's extras
HTML_PLOTS_KEY: pytest.StashKey[bool] = pytest.StashKey()  # pytest-html writes a report, and matplotlib can draw for it
