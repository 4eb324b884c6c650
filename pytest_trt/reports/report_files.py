"""JSON reports read back and merged: the command line's ``compare`` and ``merge`` start here.

A report file (``ci.write_json``, schema ``ci.SCHEMA``) is read as a ``ReportFile``: its meta and
its typed ``TestRecord``s. Anything that is not such a file is a ``ReportFileError`` naming the
file and what is wrong with it. Reports of shards (a suite split across CI runners) merge into
one when they measured the same thing: each test in one shard only, and the same hardware
class, backend, commit and threshold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_trt.errors import PytestTrtError
from pytest_trt.judge.records import TestRecord
from pytest_trt.reports.ci import SCHEMA, write_json
from pytest_trt.serde import SerdeError

# What a merged report claims one value of: shards that differ here measured different things.
MUST_AGREE = ("hardware", "backend", "commit", "regression_threshold")


class ReportFileError(PytestTrtError):
    """A report file that cannot be read, or reports that cannot be merged."""


@dataclass(frozen=True)
class ReportFile:
    """One JSON report: where it was read from, its run facts and its records."""

    path: Path
    meta: dict[str, Any]
    records: tuple[TestRecord, ...]

    def by_nodeid(self) -> dict[str, TestRecord]:
        return {record.nodeid: record for record in self.records}


def read_report(path: Path) -> ReportFile:
    """The report at ``path``; ReportFileError naming the file for one that is not a report
    this version reads."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportFileError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ReportFileError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise ReportFileError(f"{path}: not a pytest-trt JSON report (expected an object with a 'tests' list)")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise ReportFileError(
            f"{path}: report schema {schema!r}, this pytest-trt reads schema {SCHEMA} (--trt-report-json of the "
            "same version)"
        )
    meta = data["meta"] if isinstance(data.get("meta"), dict) else {}
    records = []
    for i, entry in enumerate(data["tests"]):
        if not isinstance(entry, dict):
            raise ReportFileError(f"{path}: tests[{i}] is not an object")
        try:
            records.append(TestRecord.from_dict(entry))
        except (SerdeError, KeyError, TypeError, ValueError) as exc:
            raise ReportFileError(f"{path}: tests[{i}] ({entry.get('nodeid', '?')}): {exc}") from None
    return ReportFile(Path(path), meta, tuple(records))


def merged(reports: Sequence[ReportFile]) -> ReportFile:
    """One report of the shards' records, in their order. ReportFileError where a test is in two
    shards, or where the shards disagree on what they measured (``MUST_AGREE``)."""
    if not reports:
        raise ReportFileError("no reports to merge")
    seen: dict[str, Path] = {}
    for report in reports:
        for record in report.records:
            if record.nodeid in seen:
                raise ReportFileError(
                    f"{record.nodeid} is in both {seen[record.nodeid]} and {report.path}: shards must not "
                    "overlap (was the same shard given twice?)"
                )
            seen[record.nodeid] = report.path
    meta = _merged_meta(reports)
    records = tuple(record for report in reports for record in report.records)
    return ReportFile(Path(), meta, records)


def _merged_meta(reports: Sequence[ReportFile]) -> dict[str, Any]:
    for key in MUST_AGREE:
        values = {json.dumps(r.meta.get(key), sort_keys=True): r.path for r in reports if key in r.meta}
        if len(values) > 1:
            shown = "; ".join(f"{path}: {value}" for value, path in values.items())
            raise ReportFileError(f"the reports disagree on {key!r} ({shown}): they measured different things")
    meta: dict[str, Any] = {}
    for report in reports:  # other facts (the machine) are the first shard's that has them
        for key, value in report.meta.items():
            meta.setdefault(key, value)
    meta["merged_from"] = [str(r.path) for r in reports]
    return meta


def write_report(path: Path, meta: Mapping[str, Any], records: Sequence[TestRecord]) -> None:
    """The report written as ``--trt-report-json`` writes it."""
    write_json(path, records, meta)
