"""The outer layer: the KCL record processors of both stages and their strategies, the sinks, snapshots, the
daemon launcher, the live pipeline and the replay job (docs/architecture.md)."""
