"""What a run shows and writes: the terminal summary and the CI reports."""
