"""Benchmarks, run by `python -m bench` (`make bench`): every module here with a `run()` function.

Each bench prints its figures and the ratios against baselines measured in the same run; none of
them fails on a number (timings belong in reports, not in tests).
"""
