"""The ``pytest-trt`` command line (also ``python -m pytest_trt``): baselines and reports read
without opening JSON.

    pytest-trt show [TEST]                  this machine's baselines, or one test's history
    pytest-trt compare OLD.json NEW.json    two JSON reports by the gate's rule; exit 1 on a regression
    pytest-trt merge A.json B.json -o ALL   shard reports merged into one
    pytest-trt html REPORT.json -o OUT.html the HTML report of a JSON report (the report extra)

Exit status: 0 done (compare: no regression); 1 compare found a regression (with ``--strict``,
also an inconclusive or stale test); 2 a usage error or an input that cannot be used (a file
that is not a report, shards that overlap or disagree, no baselines, an unknown test). Every
error names the file or argument and what is wrong with it.

Each subcommand is a ``Command`` in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_trt import measure_defaults
from pytest_trt.errors import PytestTrtError

OK, REGRESSION, USAGE = 0, 1, 2


class CliError(PytestTrtError):
    """Input the command cannot use; the message names it. Exit status 2."""


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one line of help, its arguments and what it does (an exit status)."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (a fraction: 0.03 is 3%)") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be a fraction between 0 and 1 (0.03 is 3%)")
    return value


# ---- show -------------------------------------------------------------------------------------


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("test", nargs="?", help="a test's node id (or a unique part of it): show its history")
    parser.add_argument("--baseline-dir", type=Path, default=Path("baselines"), metavar="DIR",
                        help="the baseline store (default: ./baselines, as --trt-baseline-dir)")
    parser.add_argument("--hardware", metavar="CLASS",
                        help="a hardware class folder under DIR (default: this machine's CPU and GPU classes)")
    parser.add_argument("--threshold", type=_fraction, default=measure_defaults.REGRESSION_THRESHOLD,
                        metavar="FRACTION", help="the drift rule's threshold (default: %(default)s)")


def _this_machine() -> list[str]:
    from pytest_trt.baselines.hardware import hardware_for
    from pytest_trt.fingerprint import machine_fingerprint

    fingerprint = machine_fingerprint()
    classes = [hardware_for(False, fingerprint)[0]]
    if fingerprint.get("gpu"):
        classes.append(hardware_for(True, fingerprint)[0])
    return classes


def _hardware_classes(root: Path, asked: str | None) -> list[str]:
    if not root.is_dir():
        raise CliError(f"--baseline-dir {root}: no such folder (record baselines with pytest --trt-update-baselines)")
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if asked is not None:
        if asked not in present:
            raise CliError(f"--hardware {asked}: no such folder under {root} (there: {', '.join(present) or 'none'})")
        return [asked]
    mine = [name for name in _this_machine() if name in present]
    if not mine:
        raise CliError(
            f"{root}: no baselines for this machine's hardware classes ({', '.join(_this_machine())}); "
            f"pick one with --hardware (there: {', '.join(present) or 'none'})"
        )
    return mine


def _show(args: argparse.Namespace) -> int:
    from pytest_trt.baselines.store import BaselineStore
    from pytest_trt.reports.baseline_table import baselines_table, history_table, stored_tests

    problems = []
    for hardware in _hardware_classes(args.baseline_dir, args.hardware):
        tests, unreadable = stored_tests(BaselineStore(args.baseline_dir, hardware), args.threshold)
        problems += unreadable
        if args.test is None:
            print(f"{hardware} ({args.baseline_dir / hardware}): {len(tests)} test{'' if len(tests) == 1 else 's'}")
            print(baselines_table(tests) if tests else "(none)")
            continue
        matches = [t for t in tests if t.nodeid == args.test] or [t for t in tests if args.test in t.nodeid]
        if len(matches) > 1:
            raise CliError(f"test {args.test!r} matches {len(matches)} baselines: " + ", ".join(t.nodeid for t in matches))
        if matches:
            print(history_table(matches[0]))
            break
    else:
        if args.test is not None:
            raise CliError(f"test {args.test!r}: no baseline under {args.baseline_dir} for this hardware")
    for line in problems:
        print(f"pytest-trt: {line}", file=sys.stderr)
    return USAGE if problems else OK


# ---- compare ----------------------------------------------------------------------------------


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", type=Path, metavar="OLD.json", help="the report to compare with (--trt-report-json)")
    parser.add_argument("new", type=Path, metavar="NEW.json", help="the report to judge")
    parser.add_argument("--threshold", type=_fraction, metavar="FRACTION",
                        help="the slowdown that is a regression (default: NEW's --trt-regression-threshold, else "
                             f"{measure_defaults.REGRESSION_THRESHOLD})")
    parser.add_argument("--strict", action="store_true",
                        help="an inconclusive or stale test exits 1 too, as --trt-baseline=strict fails it")


def _compare(args: argparse.Namespace) -> int:
    from pytest_trt.reports.compare import Compared, compare_reports, table
    from pytest_trt.reports.report_files import read_report

    old, new = read_report(args.old), read_report(args.new)
    threshold = args.threshold
    if threshold is None:
        given = new.meta.get("regression_threshold")
        threshold = given if isinstance(given, float) and given > 0 else measure_defaults.REGRESSION_THRESHOLD
    rows = compare_reports(old, new, threshold)
    print(f"{args.old} -> {args.new} (threshold {threshold * 100:g}%)")
    print(table(rows))
    failing = {Compared.REGRESSED} | ({Compared.INCONCLUSIVE, Compared.STALE} if args.strict else set())
    return REGRESSION if any(r.state in failing for r in rows) else OK


# ---- merge ------------------------------------------------------------------------------------


def _merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", type=Path, nargs="+", metavar="REPORT.json", help="the shards' JSON reports")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="ALL.json", help="the merged report")


def _merge(args: argparse.Namespace) -> int:
    from pytest_trt.reports.report_files import merged, read_report, write_report

    resolved = {path.resolve() for path in args.reports}
    if args.output.resolve() in resolved:
        raise CliError(f"-o {args.output}: is one of the reports to merge; write the merged report elsewhere")
    if len(resolved) < len(args.reports):
        raise CliError("a report is given twice: " + ", ".join(str(p) for p in args.reports))
    report = merged([read_report(path) for path in args.reports])
    try:
        write_report(args.output, report.meta, report.records)
    except OSError as exc:
        raise CliError(f"-o {args.output}: cannot be written ({exc.strerror or exc})") from None
    print(f"merged {len(report.records)} tests from {len(args.reports)} reports into {args.output}")
    return OK


# ---- html -------------------------------------------------------------------------------------


def _html_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, metavar="REPORT.json", help="a --trt-report-json file")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.html", help="the HTML report")


def _html(args: argparse.Namespace) -> int:
    from pytest_trt.reports.html import write_html_from_json

    if args.output.resolve() == args.report.resolve():
        raise CliError(f"-o {args.output}: is the JSON report itself; write the HTML report elsewhere")
    try:
        write_html_from_json(args.report, args.output)
    except OSError as exc:
        raise CliError(f"-o {args.output}: cannot be written ({exc.strerror or exc})") from None
    print(f"wrote {args.output}")
    return OK


COMMANDS: tuple[Command, ...] = (
    Command("show", "this machine's baselines as a table, or one test's history", _show_arguments, _show),
    Command("compare", "two JSON reports side by side by the gate's rule; exit 1 on a regression",
            _compare_arguments, _compare),
    Command("merge", "JSON reports of shards merged into one", _merge_arguments, _merge),
    Command("html", "the HTML report of a JSON report (needs the report extra)", _html_arguments, _html),
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="pytest-trt", description="Read pytest-trt's baselines and JSON reports.",
        epilog="exit status: 0 done; 1 compare found a regression; 2 usage error or unusable input",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.arguments(sub.add_parser(command.name, help=command.help, description=command.help))
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run = next(c.run for c in COMMANDS if c.name == args.command)
    try:
        return run(args)
    except PytestTrtError as exc:
        print(f"pytest-trt {args.command}: error: {exc}", file=sys.stderr)
        return USAGE
