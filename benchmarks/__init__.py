"""Benchmarks: runnable scripts (``python benchmarks/<name>.py``), not tests."""
