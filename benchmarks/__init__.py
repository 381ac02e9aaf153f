"""Benchmarks: scripts that print tables and write results files (never tests)."""
