"""Benchmark of the Gong server: sync cost against Gong's limits, and offline search latency."""
