"""Measuring: the timing loop, its lock, the host probe, the GPU clock and statistics."""
