"""Baselines: where they live (hardware), what an entry holds (entry, validation), the store and
its session end (store, session_end, git), whether an entry is comparable with a run
(comparability) and the regression rule that compares against it (regression)."""
