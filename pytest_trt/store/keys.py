"""Cache keys: the sha256 of one canonical JSON text of the schema version, the kind and the key
parts. A key must never change for the same inputs (that would silently empty every user's
cache), so plain JSON data is written exactly as ``json.dumps`` always wrote it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from pytest_trt import serde
from pytest_trt.errors import CacheError
from pytest_trt.store.layout import KIND, RESERVED_KINDS

# Bump whenever the layout or record format changes: old entries then simply stop matching.
SCHEMA_VERSION = 1


def check_kind(kind: str) -> None:
    """CacheError unless ``kind`` can name a folder of the cache."""
    if not isinstance(kind, str) or not KIND.fullmatch(kind) or kind in RESERVED_KINDS:
        raise CacheError(
            "cache kind must be lower-case letters, digits, '-' or '_' (not "
            f"{' or '.join(map(repr, RESERVED_KINDS))}), got {kind!r}"
        )


def entry_key(kind: str, parts: Mapping[str, Any]) -> str:
    """The key of the entry for (kind, parts); CacheError for a bad kind or parts."""
    check_kind(kind)
    if not isinstance(parts, Mapping):
        raise CacheError(f"cache key parts for {kind!r} must be a mapping, got {type(parts).__name__}")
    payload = {"schema": SCHEMA_VERSION, "kind": kind, "parts": parts}
    return hashlib.sha256(canonical_json(payload, f"cache key parts for {kind!r}").encode()).hexdigest()


def canonical_json(value: Any, what: str) -> str:
    """``value`` as compact JSON with sorted keys. Plain data is written as ``json`` writes it;
    records ``json`` does not know (dataclasses, enums, sets, numpy values) by ``serde.to_data``.
    Non-finite numbers are refused (written as null they would share a key with None), and so are
    paths (a path names a file, not what it holds: key its bytes)."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=json_data)
    except (TypeError, ValueError) as exc:
        raise CacheError(
            f"{what} must be plain JSON data (dict, list, str, number, bool, None) or records of it: {exc}"
        ) from None


def json_data(value: Any) -> Any:
    """``json.dumps``'s ``default``: a value ``json`` does not know as plain data, by serde's rule."""
    if isinstance(value, PurePath):
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return serde.to_data(value)
