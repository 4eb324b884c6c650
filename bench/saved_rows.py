"""The rows a bench saves as it goes (``--save``): one JSON line each, appended, so that a run cut
short keeps what it measured."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def append_row(path: Path | None, row: Mapping[str, Any]) -> None:
    """Append ``row`` to ``path`` as one JSON line; nothing where no path was given."""
    if path is not None:
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
