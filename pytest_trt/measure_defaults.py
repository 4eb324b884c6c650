"""How long and how often a measurement runs by default, in one place: ``spec.MeasureSettings``
takes its defaults from here, ``options.py`` shows them in ``--help`` and as the ini defaults,
and ``measure.py`` applies the rule for slow models. No imports: the plugin loads this at start.

docs/measurement.md says what each one does; docs/regression.md what the bench measured with them.
"""

from __future__ import annotations

WARMUP_MS = 200.0  # run, untimed, before measuring
MIN_ITERATIONS = 50  # fewest timed iterations, for models fast enough (SLOW_MODEL_MS)
MIN_DURATION_MS = 1000.0  # shortest timed duration
MAX_DURATION_MS = 10000.0  # longest timed duration: a slow model stops here, with a warning

# A slow model takes MIN_ITERATIONS only as far as they fit in this much timed time...
SLOW_MODEL_MS = 3000.0
# ...and never fewer than this many, the fewest a baseline comparison accepts
# (regression.MIN_SAMPLES), unless min_iterations asks for fewer still.
FEWEST_ITERATIONS = 20


def text(value: float) -> str:
    """A default as ``--help`` and the ini defaults write it: 200, 1000, 0.5."""
    return f"{value:g}"
