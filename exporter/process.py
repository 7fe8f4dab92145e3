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
    # The event loop wakes for every socket that drains and each time waits for the GIL while the
    # render thread builds agent text; that thread lets go after the switch interval (5 ms by default).
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def tune_gc() -> None:
    """Collect the young generation every 50,000 allocations instead of every 700."""
    # A large org's heap holds millions of objects and the sources replace tens of thousands a
    # minute: with the default thresholds full passes come often, each one stalling the loop.
    # Nothing here relies on prompt cycle collection (the snapshot's data is acyclic and freed by
    # reference counting).
    gc.set_threshold(*GC_THRESHOLDS)
    if freeze_after_full_pass not in gc.callbacks:
        gc.callbacks.append(freeze_after_full_pass)
    gc.freeze()  # what is there before the exporter starts (modules, classes) lives as long as the process


def freeze_after_full_pass(phase: str, info: Mapping[str, int]) -> None:
    """What survived a full collection is set aside (`gc.freeze`): later full passes scan only the
    objects made since, not the whole heap again.

    A large org's heap holds millions of long-lived objects, and a full pass over them stalls the
    event loop and the scrapes in flight. The first pass still scans all that start-up built
    (`freeze_heap` takes it when the exporter is ready); each one after it scans only what is new
    since. Frozen objects are freed by
    reference counting as ever; only a reference cycle among objects that had already survived a
    full pass would now outlive its use, and the snapshot's data, nearly all of the heap, is acyclic.
    """
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


async def freeze_heap_when_ready(store: Store, ready: Callable[[], bool]) -> None:
    """Once the exporter is ready, one full collection and a freeze (`freeze_heap`)."""
    while not ready():
        await store.wait_changed(store.snapshot.version)
    freeze_heap()


def freeze_heap() -> None:
    """Collect every generation once and freeze what survives: the start-up's heap (the directories,
    every agent's first state) is long-lived, and the first full pass over it, left to chance, would
    stall the scrapes at a random moment later. Taken when the exporter becomes ready, it is paid at
    start-up."""
    gc.collect()
    gc.freeze()


def tune_malloc() -> bool:
    """Blocks of 1 MiB and more mapped on their own, and two malloc arenas; False where glibc is not.

    A large org's page is megabytes of text made and freed every few seconds. glibc raises its mmap
    threshold to the largest block freed, so after the first such free those blocks come from the
    heap and leave it fragmented, and the render thread gets an arena of its own. A fixed threshold
    returns every big block to the system when freed, and two arenas keep one thread's garbage from
    holding pages of its own (the README's measured tables have what it saves). Values an operator
    set in the environment are left as they are.
    """
    if any(name in os.environ for name in MALLOC_VARIABLES):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False  # no mallopt (macOS): its allocator has other knobs
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_ARENA_MAX, ARENAS))
