"""The one place time comes from, so tests can run hours of schedule in milliseconds.

Every component that reads the time or sleeps takes a `Clock`. Production uses `SystemClock`;
tests use `FakeClock`, whose `sleep` returns as soon as `advance` moves time past the deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch: for timestamps shown to people and Prometheus."""

    def monotonic(self) -> float:
        """Seconds that never jump: for deadlines, ages and rate windows."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to; `sleep` blocks until `advance` reaches its deadline.

    The wall clock and the monotonic clock move together, from `start` (epoch seconds).
    """

    def __init__(self, start: float = 1_778_752_800.0) -> None:  # 2026-05-14T10:00:00Z
        self._offset = start
        self._now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._offset + self._now

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper in deadline order and letting it run."""
        target = self._now + seconds
        await self._settle()  # tasks that are ready now run now, before time moves
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not future.done():
                future.set_result(None)
            await self._settle()
        self._now = target
        await self._settle()

    @staticmethod
    async def _settle() -> None:
        """Let ready tasks, and the tasks they wake, run (a few loop turns) before time moves on."""
        for _ in range(10):
            await asyncio.sleep(0)
