"""Benchmarks run by `spatial-ros bench NAME` (one module each)."""
