"""The pytest run: options, marks, the session's state and xdist workers."""
