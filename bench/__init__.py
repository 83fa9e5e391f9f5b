"""Benchmarks for the Tasks API: the harness (`run.py`), the floor app and sync vs async."""
