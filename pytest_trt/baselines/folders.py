"""Baseline folders this machine's hardware class no longer reads, named in a per-run note so
that a changed class never silently empties the store: folders recorded under the older
hardware-class scheme (``cpu-amd-epyc-2c``: model name and core count only), and this GPU's
folders under another driver branch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_trt.baselines.hardware import hardware_for


def unread_folder_notes(root: Path, on_gpu: bool, fingerprint: Mapping[str, Any], current: str) -> list[str]:
    """Notes on the folders under ``root`` that hold baselines of this hardware which the class
    ``current`` does not read."""
    if not root.is_dir():
        return []
    here = (root / current).is_dir()
    shown = root.name
    notes = []
    older, _ = hardware_for(on_gpu, fingerprint, older_scheme=True)
    if older != current and (root / older).is_dir():
        if here:
            notes.append(
                f"baseline: {shown}/{older} was recorded under the older hardware-class scheme and is not "
                f"read any more; this machine's baselines are in {shown}/{current}, so it can be removed"
            )
        else:
            notes.append(
                f"baseline: {shown}/{older} was recorded under the older hardware-class scheme (this machine's "
                f"class is now {current}); re-record with --trt-update-baselines"
            )
    stem, _, driver = current.rpartition("-drv")
    if stem and driver and not here:
        others = sorted(p.name for p in root.glob(f"{stem}-drv*") if p.is_dir() and p.name != current)
        if others:
            notes.append(
                f"baseline: no baselines for {current} yet; {', '.join(f'{shown}/{o}' for o in others)} "
                "hold this GPU's under another driver; re-record with --trt-update-baselines to compare on this one"
            )
    return notes
