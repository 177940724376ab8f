"""The reliability suite (`make reliability`): tests that measure the design's delivery, state and input
claims and record one row each in a results file; the session ends with the table (see docs/reliability.md)."""
