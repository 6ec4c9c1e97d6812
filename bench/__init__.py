"""Benchmarks (scripts) and the chaos suite (bench.chaos)."""
