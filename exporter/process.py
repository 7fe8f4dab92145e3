"""Settings that belong to the whole process, made by whoever owns the process.

A library object (`Exporter`, a test's stack, a bench's in-process org) shares the interpreter with
others and must not change it for them; the owners (the CLI's `run` and `demo`, the bench and chaos
processes) call these once, before starting the exporter, so what they measure is what `run` does.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 10, 10)


def tune_gc() -> None:
    """Collect the young generation every 50,000 allocations instead of every 700."""
    # At 50,000 agents the heap holds millions of objects and the pollers replace tens of
    # thousands a minute: with Python's default thresholds (700, 10, 10) the bench saw 145 full
    # collections in 4 minutes, up to 396 ms each, every one stalling scrapes. Collecting the
    # young generation every 50,000 allocations instead makes full passes rare; nothing here
    # relies on prompt cycle collection (the snapshot's data is acyclic and freed by refcount).
    gc.set_threshold(*GC_THRESHOLDS)
