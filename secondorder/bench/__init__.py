"""Benchmarks that write their numbers to files (never timed assertions)."""
