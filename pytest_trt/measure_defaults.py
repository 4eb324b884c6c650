"""How long and how often a measurement runs by default, and the slowdown that fails, in one
place: ``spec.MeasureSettings`` takes its defaults from here, ``run/options.py`` shows them in
``--help`` and as the ini defaults, and ``timing/measure.py`` applies the rule for slow models. No
imports: the plugin loads this at start.

docs/measurement.md says what each one does; docs/regression.md what the bench measured with them.
"""

from __future__ import annotations

WARMUP_MS = 100.0  # run, untimed, before measuring
# A runner measured this recently in this process is still warm: its next measurement (a
# re-measurement, a second budget) warms up for REWARM_MS only.
STILL_WARM_S = 2.0
REWARM_MS = 10.0
MIN_ITERATIONS = 50  # fewest timed iterations, for models fast enough (SLOW_MODEL_MS)
MIN_DURATION_MS = 300.0  # shortest timed duration
MAX_DURATION_MS = 10000.0  # longest timed duration: a slow model stops here, with a warning
# Slowdown against the baseline that fails a test once a re-measurement confirms it. Chosen with
# the two durations above from fresh-process bench runs (docs/regression.md).
REGRESSION_THRESHOLD = 0.03

# On a GPU's own clock, warm-up goes on past WARMUP_MS in windows of this much GPU time until the
# GPU has reached its working clock (timing/gpu_clock.py)...
GPU_WINDOW_MS = 100.0
# ...but never past this much warm-up in all (or WARMUP_MS, where that is longer).
GPU_WARMUP_MAX_MS = 5000.0

# A slow model takes MIN_ITERATIONS only as far as they fit in this much timed time...
SLOW_MODEL_MS = 3000.0
# ...and never fewer than this many, the fewest a baseline comparison accepts
# (regression.MIN_SAMPLES), unless min_iterations asks for fewer still.
FEWEST_ITERATIONS = 20


def text(value: float) -> str:
    """A default as ``--help`` and the ini defaults write it: 200, 1000, 0.5."""
    return f"{value:g}"
