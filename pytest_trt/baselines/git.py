"""What git knows of a baseline: the commit it was recorded from, and the model file as it was
at that commit (for an interleaved A/B of the baseline's model against the new one)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

_TIMEOUT_S = 10


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def current_commit(root: Path) -> str | None:
    """The git commit checked out at ``root`` (with ``-dirty`` for local changes), or None."""
    head = _git(root, "rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return None
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    changed = dirty is not None and bool(dirty.stdout.strip())
    return head.stdout.decode().strip() + ("-dirty" if changed else "")


def tracked_path(file: Path) -> str | None:
    """``file``'s path from the top of its git work tree, where git tracks it; else None."""
    listed = _git(file.parent, "ls-files", "--full-name", "--error-unmatch", "--", file.name)
    if listed is None or listed.returncode != 0:
        return None
    lines = listed.stdout.decode(errors="replace").splitlines()
    return lines[0] if len(lines) == 1 else None


def file_at(commit: str, source: str, inside: Path) -> bytes | None:
    """The bytes of ``source`` (a path from the top of the work tree) at ``commit``, read from
    the repository ``inside`` belongs to; None where git cannot give them."""
    shown = _git(inside, "show", f"{commit.removesuffix('-dirty')}:{source}")
    return shown.stdout if shown is not None and shown.returncode == 0 else None
