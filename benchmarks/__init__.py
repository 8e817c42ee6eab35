"""Benchmark commands (python -m benchmarks.NAME)."""
