"""The baselines' part of the session end, on the controller: write what the run staged, then
list or prune baselines no test uses. Problems come back as lines, never as an exception."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_trt.baselines.entry import BaselineEntry
from pytest_trt.baselines.store import BaselineStore, os_problem
from pytest_trt.errors import BaselineFileError

# A test's note when its entry was staged but its file could not be written at the session end.
NOT_WRITTEN_NOTE = "baseline not recorded: its file could not be written (see the session's errors)"


@dataclass
class SessionEnd:
    """What the session end did with the baselines: ``lines`` for the terminal summary,
    ``errors``, each a problem that fails the session (a file left alone, a write that failed),
    and the nodeids whose staged baseline was not written because of them."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_recorded: set[str] = field(default_factory=set)


def finish_session(
    store: BaselineStore,
    *,
    staged: Mapping[str, Mapping[str, Mapping[str, Any]]],
    used: Mapping[str, set[str]],
    update: bool,
    prune: bool,
    replace_unreadable: bool = False,
) -> SessionEnd:
    """Remove temp files of dead writers, write the entries staged here and by xdist workers
    (``staged``: module -> nodeid -> entry in its file form, as workers ship it), then list or
    prune baselines no test uses."""
    end = SessionEnd()
    for module, entries in staged.items():
        for nodeid, entry in entries.items():
            store.stage(module, nodeid, BaselineEntry.from_file(entry))
    # The store turns what it meets into lines; an OSError still escaping (a folder that cannot
    # be searched, a name too long) is a line too, never a crash that hides pytest's summary.
    pending = {nodeid for entries in store.staged.values() for nodeid in entries} if update else set()
    try:
        store.remove_stale_temps()
        if pending:
            _write(store, replace_unreadable, end)
            pending.clear()
        unused = store.unused(used)
    except OSError as exc:
        end.errors.append(f"baselines: {store.root}: {os_problem(exc)}")
        end.not_recorded.update(pending)
        return end
    if unused and prune:
        _prune(store, unused, end)
    elif unused:
        end.lines.append("unused baselines (their tests are gone or no longer measured; remove with --trt-prune-baselines):")
        end.lines += [f"  {nodeid}" for module in sorted(unused) for nodeid in sorted(unused[module])]
    return end


def _write(store: BaselineStore, replace_unreadable: bool, end: SessionEnd) -> None:
    outcome = store.write(replace_unreadable=replace_unreadable)
    if outcome.written:
        end.lines.append(
            f"baselines recorded for {outcome.recorded} test(s) in {len(outcome.written)} file(s) under {store.folder}"
        )
    end.lines += [f"baselines: {line}" for line in outcome.replaced]
    end.errors += [f"baselines: {line}" for line in outcome.problems]
    end.not_recorded.update(outcome.not_recorded)


def _prune(store: BaselineStore, unused: Mapping[str, set[str]], end: SessionEnd) -> None:
    try:
        end.lines.append(f"baselines pruned: {store.prune(unused)} unused")
    except BaselineFileError as exc:
        end.errors.append(f"baselines: not pruned: {exc}")
    except OSError as exc:
        end.errors.append(f"baselines: not pruned: {store.root}: {os_problem(exc)}")
