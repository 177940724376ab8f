"""Process-wide settings for trailwarden's long-running Python processes."""

from __future__ import annotations

import gc

# Decoding CloudTrail allocates millions of short-lived dicts and lists that never form cycles; with
# the default gen-0 threshold (700) the cycle collector runs every few events and, once stateful
# rules hold many keys, walks them all again and again. A high threshold keeps it for real cycles.
GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Collect once, freeze what start-up built (modules, rules, configuration) out of the collector's
    sight, and raise the gen-0 threshold. Called at the start of every command and record processor."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
