"""The reliability suite (`make reliability`): tests that measure the claims of DESIGN.md and record one
row each in a results file; the session ends with the table (see docs/reliability.md)."""
