"""How far an unchanged model's floor may read from its baseline on this host, from what the
baseline keeps: the spread between the sessions it was recorded in, and the spread between its
recordings of the same model on the same runtime.

The sessions of one recording are timed seconds apart, in one stretch of the host's speed. On a
shared runner that speed also drifts over minutes, and a baseline recorded in a fast stretch reads
an unchanged model slower later (docs/regression.md): only recordings made at other times show
that drift. Once a baseline's history holds RECORDINGS recordings of the same model, runtime and
workload, their spread is its measure. ``regression.assess`` adds the larger of the two to its
threshold, so a model is gated no finer than this host lets it, and says which.

Pure functions over a ``BaselineEntry``; numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from pytest_trt.baselines.entry import BaselineEntry

RECORDINGS = 3  # recordings of the same model, runtime and workload before their spread counts
WINDOW = 10  # the latest of those read: an old host's drift ages out


class SpreadSource(str, Enum):
    """What a spread was read from."""

    SESSIONS = "sessions"  # the sessions the baseline was recorded in
    RECORDINGS = "recordings"  # the baseline's recordings of the same model, runtime and workload


@dataclass(frozen=True)
class Spread:
    """(max - min) / median of ``count`` floors read from ``source``; 0 where there were too few."""

    fraction: float
    source: SpreadSource
    count: int

    def words(self) -> str:
        """What the spread is of, as a verdict's message says it."""
        if self.source is SpreadSource.RECORDINGS:
            return f"the spread between the {self.count} recordings of this model"
        return "the spread between the sessions it was recorded in"

    def varied(self) -> str:
        """Whose floors varied, as a doubt or a warning says it."""
        if self.source is SpreadSource.RECORDINGS:
            return f"the {self.count} recordings of this model in the baseline's history"
        return "the baseline's sessions"

    def how_far(self, backend: str) -> str:
        """How far the floors varied, as the warning on what the gate can see says it."""
        by = f"{self.fraction * 100:.1f}%"
        if self.source is SpreadSource.RECORDINGS:
            return f"{self.count} recordings of this model ({backend}) varied {by}"
        return f"sessions of this model ({backend}) varied {by} when its baseline was recorded"


def relative_range(floors: Sequence[float]) -> float:
    """(max - min) / median of ``floors``; 0 for fewer than two."""
    if len(floors) < 2:
        return 0.0
    middle = float(np.median(floors))
    return (max(floors) - min(floors)) / middle if middle > 0 else 0.0


def sessions(baseline: BaselineEntry) -> Spread:
    """The spread of the floors of the sessions the baseline was recorded in: how far a new
    session of an unchanged model can read from the baseline in the same stretch of the host's
    speed. 0 for an entry recorded before sessions were sampled."""
    floors = baseline.session_floors_ms or []
    return Spread(relative_range(floors), SpreadSource.SESSIONS, len(floors))


def recordings(baseline: BaselineEntry) -> Spread:
    """The spread of the floors of the latest WINDOW recordings in the baseline's history (its own
    included) that share its model, runtime and workload settings; 0 for fewer than RECORDINGS
    (a point recorded before points kept the model matches none)."""
    own = baseline.point().settings
    if "model" not in own:
        return Spread(0.0, SpreadSource.RECORDINGS, 0)
    floors = [p.floor_ms for p in baseline.series() if p.settings == own][-WINDOW:]
    fraction = relative_range(floors) if len(floors) >= RECORDINGS else 0.0
    return Spread(fraction, SpreadSource.RECORDINGS, len(floors))


def widest(baseline: BaselineEntry) -> Spread:
    """The larger of the two spreads (the sessions' where they tie): what a comparison adds to
    its threshold."""
    by_sessions, by_recordings = sessions(baseline), recordings(baseline)
    return by_recordings if by_recordings.fraction > by_sessions.fraction else by_sessions
