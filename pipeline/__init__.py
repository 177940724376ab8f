"""The core: decoding, the event model, rules and the rule pack, the engine, stateful state, findings,
configuration and settings; no AWS client, process or KCL. `cli.py` and `commands/` are the command line on
top of every layer (docs/architecture.md, "Layers")."""
