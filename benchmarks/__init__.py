"""Benchmark scripts: training throughput, inference latency and time to 99% (see each script's docstring)."""
