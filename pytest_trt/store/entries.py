"""One entry on disk: its record, reading it back verified, and writing it whole.

An entry appears in one ``os.replace`` of a finished temporary folder (both files fsynced), so a
reader sees a whole entry or none; a writer killed half way leaves only a ``.tmp-<key>-*`` folder.
A read opens only regular files, never through a link, never past the size its record states,
and checks that size and the sha256: anything else is a ``CorruptEntry``, never served.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_trt.errors import CorruptEntry
from pytest_trt.store import keys, memory
from pytest_trt.store.files import folder_mode, write_atomic
from pytest_trt.store.layout import ARTIFACT_FILE, RECORD_FILE, leftover_prefix
from pytest_trt.store.regular_files import FileTooLarge, NotRegularFile, read_regular_file
from pytest_trt.store.removal import remove_own_files
from pytest_trt.types import Artifact

_MAX_RECORD_BYTES = 16 * 1024 * 1024
_RECORD_LIMIT = "16 MiB, far more than any record the cache writes"
# The fields every read relies on, with their JSON types.
_REQUIRED = {"key": str, "kind": str, "size_bytes": int, "sha256": str}


@dataclass(frozen=True)
class EntryRecord:
    """An entry's ``record.json``, checked. ``fields`` is the whole JSON object, so that a hit
    rewrites it changing only its times (fields a newer pytest-trt added survive)."""

    key: str
    kind: str
    size_bytes: int
    sha256: str
    metadata: Mapping[str, Any]
    build_s: float | None  # what building it cost, when recorded
    created: float  # epoch seconds; 0 (oldest) when missing or unreadable
    last_used: float  # likewise; drives eviction
    fields: Mapping[str, Any]

    def is_for(self, kind: str, key: str) -> bool:
        return self.key == key and self.kind == kind


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _epoch(value: Any) -> float:
    """Epoch seconds of an ISO time; 0 (oldest) when it is not one."""
    try:
        return datetime.fromisoformat(value).timestamp()
    except (ValueError, TypeError):
        return 0.0


def parse_record(raw: bytes) -> EntryRecord:
    """The record in ``raw``; CorruptEntry when a field every read relies on is missing or wrong.
    Optional fields of the wrong type read as absent."""
    try:
        fields = json.loads(raw)
    except ValueError as exc:
        raise CorruptEntry(f"{RECORD_FILE} is not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise CorruptEntry(f"{RECORD_FILE} is not a JSON object")
    for name, kind_of in _REQUIRED.items():
        if not isinstance(fields.get(name), kind_of):
            raise CorruptEntry(f"{RECORD_FILE} has no valid {name!r}")
    if fields["size_bytes"] < 0:
        raise CorruptEntry(f"{RECORD_FILE} has a negative 'size_bytes'")
    metadata, build_s = fields.get("metadata"), fields.get("build_s")
    return EntryRecord(
        key=fields["key"],
        kind=fields["kind"],
        size_bytes=fields["size_bytes"],
        sha256=fields["sha256"],
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
        build_s=float(build_s) if isinstance(build_s, (int, float)) else None,
        created=_epoch(fields.get("created")),
        last_used=_epoch(fields.get("last_used")),
        fields=fields,
    )


def _read_entry_file(path: Path, max_bytes: int, limit: str) -> bytes:
    """One file of an entry; anything but a regular file of at most ``max_bytes`` (``limit`` says
    where that number comes from) is corrupt."""
    try:
        return read_regular_file(path, max_bytes)
    except FileNotFoundError:
        raise CorruptEntry(f"{path.name} is missing") from None
    except NotRegularFile as exc:
        raise CorruptEntry(f"{path.name} is not a regular file but {exc.strerror}") from None
    except FileTooLarge:
        raise CorruptEntry(f"{path.name} is larger than {limit}") from None
    except OSError as exc:
        raise CorruptEntry(f"{path.name} cannot be read: {exc}") from None


def _read_record(entry: Path) -> EntryRecord:
    return parse_record(_read_entry_file(entry / RECORD_FILE, _MAX_RECORD_BYTES, _RECORD_LIMIT))


def own_record(entry: Path, kind: str, key: str) -> EntryRecord | None:
    """The entry's record if it is the cache's own record for this path, else None."""
    try:
        record = _read_record(entry)
    except CorruptEntry:
        return None
    return record if record.is_for(kind, key) else None


def read_entry(entry: Path, kind: str, key: str) -> tuple[Artifact, EntryRecord] | None:
    """The entry, None when absent; CorruptEntry when it cannot be trusted."""
    if not os.path.lexists(entry):
        return None
    record = _read_record(entry)
    if not record.is_for(kind, key):
        raise CorruptEntry(f"{RECORD_FILE} belongs to {record.kind}/{record.key[:12]}")
    size = record.size_bytes
    room = memory.available_bytes()
    if room is not None and size > room:
        # An artifact this process cannot even hold: a damaged or planted entry, rebuilt.
        raise CorruptEntry(f"{ARTIFACT_FILE} is recorded as {size} bytes, more than {memory.describe_available(room)}")
    try:
        data = _read_entry_file(entry / ARTIFACT_FILE, size, f"the {size} bytes the record says")
    except MemoryError:
        raise CorruptEntry(f"{ARTIFACT_FILE} of {size} bytes does not fit in memory") from None
    if len(data) != size:
        raise CorruptEntry(f"{ARTIFACT_FILE} has {len(data)} bytes, the record says {size} (truncated?)")
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.sha256:
        raise CorruptEntry(
            f"{ARTIFACT_FILE} sha256 {digest[:12]}.. does not match the recorded {record.sha256[:12]}.."
        )
    return Artifact(data, dict(record.metadata)), record


def _record_text(fields: Mapping[str, Any]) -> bytes:
    return (json.dumps(fields, sort_keys=True, indent=2, default=keys.json_data) + "\n").encode()


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_entry(
    entry: Path, kind: str, key: str, parts: Mapping[str, Any], artifact: Artifact, build_s: float
) -> None:
    """Write the entry into a temp folder beside its place, then move it there in one rename. The
    place must be free. OSError when the disk fails; no temp folder is left then."""
    now = _now()
    fields = {
        "schema": keys.SCHEMA_VERSION,
        "kind": kind,
        "key": key,
        "parts": parts,
        "metadata": artifact.metadata,
        "size_bytes": len(artifact.data),
        "sha256": hashlib.sha256(artifact.data).hexdigest(),
        "build_s": round(build_s, 6),
        "created": now,
        "last_used": now,
    }
    text = _record_text(fields)
    tmp: Path | None = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=leftover_prefix(key), dir=entry.parent))
        os.chmod(tmp, folder_mode())  # mkdtemp's 0700 would keep other accounts from reading it
        _write_durably(tmp / ARTIFACT_FILE, artifact.data)
        _write_durably(tmp / RECORD_FILE, text)
        os.replace(tmp, entry)
    except OSError:
        if tmp is not None:
            remove_own_files(tmp)
        raise


def record_hit(entry: Path, record: EntryRecord, load_s: float) -> None:
    """Rewrite the record after a hit: ``last_used`` drives eviction, ``last_load_s`` shows what
    the hit cost. OSError when it cannot be written."""
    fields = dict(record.fields, last_load_s=round(load_s, 6), last_used=_now())
    write_atomic(entry / RECORD_FILE, _record_text(fields))
