"""Sizes as people write them on the command line: ``500MB``, ``2GiB``, ``123``."""

from __future__ import annotations

import re

from pytest_trt.errors import CacheError

_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?)b?\s*", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``123``, ``500MB``/``500M`` (powers of 1000), ``2GiB``/``2Gi`` (of 1024)."""
    match = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise CacheError(
            f"--trt-cache-max-size: cannot read {text!r} as a size; give bytes or a number with "
            "K, M, G or T (powers of 1000) or KiB, MiB, GiB or TiB (powers of 1024), e.g. 2GB or 500MiB"
        )
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    if binary and not unit:
        raise CacheError(f"--trt-cache-max-size: {text!r} has 'i' without a unit (K, M, G or T)")
    return int(float(number) * base ** _SIZE_POWERS[unit.lower()])
