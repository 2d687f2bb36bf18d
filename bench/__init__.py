"""Benchmarks that run Guildhall side by side with Synapse on the same machine.

`python -m bench.cs_load` (or `make bench`) runs the Client-Server load benchmark.
"""
