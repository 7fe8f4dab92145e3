"""The process owner's settings: glibc's allocator is tuned, unless the operator tuned it already."""

from __future__ import annotations

import asyncio
import gc
import platform

import pytest

from exporter.process import MALLOC_VARIABLES, freeze_after_full_pass, freeze_heap_when_ready, tune_gc, tune_malloc
from exporter.snapshot import PartKey, Store
from exporter.sources.queue_directory import QUEUES, Queue
from exporter.sources.queue_states import QUEUE_STATES


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_mmap_threshold_and_the_arena_count():
    assert tune_malloc() is True


@pytest.mark.parametrize("variable", MALLOC_VARIABLES)
def test_an_operators_own_malloc_settings_are_left_alone(monkeypatch, variable):
    monkeypatch.setenv(variable, "2")
    assert tune_malloc() is False


def test_what_survives_a_full_collection_is_frozen_out_of_the_next():
    thresholds = gc.get_threshold()
    try:
        tune_gc()
        tune_gc()  # once is enough: the owner may call it again
        assert gc.callbacks.count(freeze_after_full_pass) == 1
        survivor = [object()]
        gc.collect()
        assert gc.get_freeze_count() > 0 and survivor
    finally:
        gc.callbacks.remove(freeze_after_full_pass)
        gc.unfreeze()
        gc.set_threshold(*thresholds)


async def test_the_heap_is_settled_once_the_exporter_is_ready(clock):
    store = Store(clock)
    ready = False
    freezing = asyncio.create_task(freeze_heap_when_ready(store, lambda: ready))
    try:
        await asyncio.sleep(0.01)
        assert not freezing.done()  # not before it is ready
        ready = True
        store.set(QUEUES, {"q": Queue("q", "Q", "")})  # any change: it looks again
        store.put(QUEUE_STATES, PartKey.polled(0), {})
        await asyncio.wait_for(freezing, 2)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
