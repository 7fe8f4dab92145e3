"""Rate limits as Genesys counts them: requests started in any sliding window."""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from exporter.clock import FakeClock
from tests.harness.waiting import nothing_in_flight, tick_until

T = TypeVar("T")


def max_in_any_window(starts: list[float], window: float = 60.0) -> int:
    """The most requests that started within any `window` seconds: what a sliding-window limit sees at its worst."""
    ordered = sorted(starts)
    return max((bisect.bisect_left(ordered, s + window) - i for i, s in enumerate(ordered)), default=0)


async def drive(
    clock: FakeClock,
    arrivals: list[float],
    latencies: list[float],
    slot: Callable[[], AbstractAsyncContextManager[T]],
) -> list[tuple[float, T]]:
    """Requests arriving at `arrivals` (fake seconds), each holding a place from `slot()` for its latency:
    when each started and what its place was (a client's label, say), however long it takes (a
    hypothesis example may need hours of fake time: the tests bound the starts, not the run)."""
    starts: list[tuple[float, T]] = []

    async def request(arrive: float, latency: float) -> None:
        await clock.sleep(arrive)
        async with slot() as place:
            starts.append((clock.monotonic(), place))
            await clock.sleep(latency)

    tasks = [asyncio.ensure_future(request(a, lat)) for a, lat in zip(arrivals, latencies, strict=True)]
    await tick_until(
        clock,
        lambda: all(t.done() for t in tasks),
        within=math.inf,
        every=0.5,
        after=nothing_in_flight,
        real_within=None,
    )
    return starts
