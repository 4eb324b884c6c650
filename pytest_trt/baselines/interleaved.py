"""An interleaved A/B: the baseline's own model and the new one, fresh sessions of each timed
in turns over one window in the test's process.

A stored floor was timed minutes or days ago, in another process; on a shared runner the host's
speed drifts over minutes and each process has a speed of its own, both as large as the changes
gated (docs/regression.md). Where the model changed since its baseline and git still holds the
model the baseline was recorded from, the two are timed side by side instead, so that the drift
and the process weigh on both alike. SESSIONS fresh sessions of each, opened B A A B B A, are
timed in turns of a few iterations (timing/rotation.py): the host's speed also steps within
seconds, and sessions timed one after another would each catch a step of their own.

The rule reads floors, as the stored comparison does, and asks two readings to agree: noise on a
shared host only slows a session, so the fastest sessions of each model are the ones to compare.
The fastest session of the new model is read against the fastest of the baseline's model, and
the second-fastest against the second-fastest. Regressed where both read beyond the threshold,
improved where both read below minus the threshold, unchanged where both read within it; else
inconclusive (``Doubt.SESSIONS_DISAGREE``). A window timed on a contended host makes a
regression or an improvement inconclusive (``Doubt.BUSY``). bench/ab_interleaved.py and
bench/regression_processes.py measured it against other rules (docs/regression.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_trt.baselines.regression import Doubt, RegressionVerdict, Timed, Verdict, contended, statistic_label

SESSIONS = 3  # of each model
ORDER = "BAABBA"  # the order the sessions are opened in, and take their turns


@dataclass(frozen=True)
class SideBySide:
    """The sessions of an A/B: the new model's and the baseline model's, timed together."""

    new: Sequence[Timed]
    old: Sequence[Timed]

    @classmethod
    def in_order(cls, timed: Sequence[Timed]) -> SideBySide:
        """The sessions of a rotation opened in ``ORDER``, by side."""
        return cls([t for t, side in zip(timed, ORDER, strict=True) if side == "B"],
                   [t for t, side in zip(timed, ORDER, strict=True) if side == "A"])


def decide_interleaved(timed: SideBySide, threshold: float, *, baseline_model: str) -> RegressionVerdict:
    """The new model's sessions against the baseline model's (``baseline_model`` names it in the
    message)."""
    sessions = (*timed.new, *timed.old)
    return judge(_floors(timed.new), _floors(timed.old), threshold, baseline_model=baseline_model,
                 busy=tuple(reason for m in sessions for reason in contended(m)))


def _floors(measurements: Sequence[Timed]) -> list[float]:
    return [min(m.samples_ms) for m in measurements]


def judge(
    new_ms: Sequence[float], old_ms: Sequence[float], threshold: float, *, baseline_model: str,
    busy: tuple[str, ...] = (),
) -> RegressionVerdict:
    """The verdict on the sessions' floors (the module docstring gives the rule)."""
    new, old = sorted(new_ms), sorted(old_ms)
    readings = [new[0] / old[0] - 1.0, new[1] / old[1] - 1.0]  # fastest and second-fastest of each
    if min(readings) > threshold:
        status, doubt = Verdict.REGRESSED, None
    elif max(readings) < -threshold:
        status, doubt = Verdict.IMPROVED, None
    elif max(readings) <= threshold:
        status, doubt = Verdict.UNCHANGED, None
    else:
        status, doubt = Verdict.INCONCLUSIVE, Doubt.SESSIONS_DISAGREE
    if busy and status in (Verdict.REGRESSED, Verdict.IMPROVED):
        status, doubt = Verdict.INCONCLUSIVE, Doubt.BUSY
    label = statistic_label(0.0)
    change = readings[0]
    message = (
        f"{label} {change * 100:+.1f}% vs the baseline's model timed beside it ({baseline_model}; threshold "
        f"{threshold * 100:g}%): {len(new_ms)} sessions of each, timed in turns in this process, floors "
        f"{_span(old_ms)} ms (baseline's model) and {_span(new_ms)} ms (this one); the fastest of each read "
        f"{readings[0] * 100:+.1f}%, the second-fastest {readings[1] * 100:+.1f}%"
    )
    if status is Verdict.REGRESSED:
        message += ", both beyond the threshold"
    if doubt is Doubt.SESSIONS_DISAGREE:
        message += ", and the two disagree"
    if doubt is Doubt.BUSY:
        message += f"; the host was busy while they were timed: {'; '.join(dict.fromkeys(busy))}"
    return RegressionVerdict(
        status, change, min(readings), max(readings), threshold, True, message, label, change,
        raw_change=change, bound=threshold, sessions=readings, doubt=doubt, baseline_ms=old[0],
        baseline_model_floors_ms=list(old_ms),
    )


def _span(floors: Sequence[float]) -> str:
    return f"{min(floors):.4g}..{max(floors):.4g}"
