"""Settings that belong to the whole process, made by whoever owns the process.

A library object (`Exporter`, a test's stack, a bench's in-process org) shares the interpreter with
others and must not change it for them; the owners (the CLI's `run` and `demo`, the bench and chaos
processes) call `tune_process` once, before starting the exporter, so what they measure is what
`run` does.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from collections.abc import Callable, Mapping

from exporter.snapshot import Store

GC_THRESHOLDS = (50_000, 10, 10)
SWITCH_INTERVAL_SECONDS = 0.001
# glibc's mallopt parameters (malloc.h) and the values set for them
M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES = -3, 1 << 20
M_ARENA_MAX, ARENAS = -8, 2
MALLOC_VARIABLES = ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")  # an operator's own choice


def tune_process() -> None:
    """The collector's thresholds and the C allocator's, for a heap of millions of objects, and the
    GIL's switch interval."""
    tune_gc()
    tune_malloc()
    # The event loop wakes for every socket that drains (a 14 MB scrape, 800 notifications a second)
    # and each time waits for the GIL while the render thread builds agent text; Python makes that
    # thread let go after the switch interval, 5 ms by default: 1 ms keeps a wake within 1 ms.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def tune_gc() -> None:
    """Collect the young generation every 50,000 allocations instead of every 700."""
    # At 50,000 agents the heap holds millions of objects and the pollers replace tens of
    # thousands a minute: with Python's default thresholds (700, 10, 10) the bench saw 145 full
    # collections in 4 minutes, up to 396 ms each, every one stalling scrapes. Collecting the
    # young generation every 50,000 allocations instead makes full passes rare; nothing here
    # relies on prompt cycle collection (the snapshot's data is acyclic and freed by refcount).
    gc.set_threshold(*GC_THRESHOLDS)
    if freeze_after_full_pass not in gc.callbacks:
        gc.callbacks.append(freeze_after_full_pass)
    gc.freeze()  # what is there before the exporter starts (modules, classes) lives as long as the process


def freeze_after_full_pass(phase: str, info: Mapping[str, int]) -> None:
    """What survived a full collection is set aside (`gc.freeze`): later full passes scan only the
    objects made since, not the whole heap again.

    At 50,000 agents the heap holds millions of long-lived objects, and a full pass over them took
    199-233 ms, stalling the event loop and the scrapes in flight (scrape p99 143-262 ms in the
    bench). The first pass still scans all that start-up built (`settle_heap` takes it when the
    exporter is ready); each one after it scans only what is new since. Frozen objects are freed by
    reference counting as ever; only a reference cycle among objects that had already survived a
    full pass would now outlive its use, and the snapshot's data, nearly all of the heap, is acyclic.
    """
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


async def settle_heap_when_ready(store: Store, ready: Callable[[], bool]) -> None:
    """Once the exporter is ready, one full collection and a freeze (`settle_heap`)."""
    while not ready():
        await store.wait_changed(store.snapshot.version)
    settle_heap()


def settle_heap() -> None:
    """Collect every generation once and freeze what survives: the start-up's heap (the directories,
    every agent's first state) is long-lived, and the first full pass over it, left to chance, came
    in the middle of the bench's measured window twice (199 and 233 ms, scrape p99 143-178 ms).
    Taken when the exporter becomes ready, it costs that once, at start-up."""
    gc.collect()
    gc.freeze()


def tune_malloc() -> bool:
    """Blocks of 1 MiB and more mapped on their own, and two malloc arenas; False where glibc is not.

    At 50,000 agents the page's families are megabytes of text made and freed every few seconds.
    glibc raises its mmap threshold to the largest block freed (up to 32 MiB), so after the first
    such free those blocks came from the heap and left it fragmented; and the render thread got an
    arena of its own. A fixed 1 MiB threshold returns every big block to the system when freed, and
    two arenas keep one thread's garbage from holding pages of its own: resident memory at 50,000
    agents fell by 40 MiB in steady state and 35 MiB at its peak. Values an operator set in the
    environment are left as they are.
    """
    if any(name in os.environ for name in MALLOC_VARIABLES):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False  # no mallopt (macOS): its allocator has other knobs
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_ARENA_MAX, ARENAS))
