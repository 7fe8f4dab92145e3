"""Waiting in tests: one wait in real time, and one family of helpers that move a fake clock.

The two are different waits and never stand in for each other:

- `eventually` leaves the fake clock where it is and gives background tasks (or processes asked over
  HTTP) real time to catch up with what has already happened.
- `tick_for` and `tick_until` move a `FakeClock` in ticks of `every` fake seconds and, after each tick,
  await `after`: what must happen in real time before fake time may move again. That is nothing when
  everything runs on the fake clock (`nothing_in_flight`), a few milliseconds when the tick sent frames
  over real sockets (`frames_in_flight`), or a whole exporter's requests answered and shown
  (tests/harness/exporter_time.py).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from exporter.clock import FakeClock

After = Callable[[], Awaitable[None]]
"""What a tick waits for, in real time, before fake time moves again."""


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, within: float = 10.0, every: float = 0.02, failing: str = ""
) -> None:
    """Wait in real time (a fake clock stays put) until `check` holds: for background tasks, or processes
    asked over HTTP (an async `check`), to catch up. `failing` names what it waits for, for the failure message."""
    deadline = asyncio.get_running_loop().time() + within
    while not await _holds(check):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within:g} real seconds: {failing or 'the condition'}")
        await asyncio.sleep(every)


async def _holds(check: Callable[[], bool | Awaitable[bool]]) -> bool:
    """`check()`, awaited when it is a coroutine."""
    result = check()
    return bool(await result) if inspect.isawaitable(result) else bool(result)


async def loopback(seconds: float = 0.05) -> None:
    """Real time for frames already written to 127.0.0.1 to be read (the clock is fake, the sockets are not)."""
    await asyncio.sleep(seconds)


async def frames_in_flight() -> None:
    """After a tick over real sockets: 5 ms, enough for its frames to be read, short enough for thousands of ticks."""
    await loopback(0.005)


async def nothing_in_flight() -> None:
    """After a tick when all that runs is on the fake clock: `FakeClock.advance` has already let it run."""


async def tick_for(
    clock: FakeClock, seconds: float, *, every: float = 0.2, after: After = frames_in_flight, land: float = 0.0
) -> None:
    """Move fake time `seconds` in ticks of `every`, awaiting `after` after each; then `land` real seconds more,
    so what the last tick sent has been read before the test looks."""
    for _ in range(round(seconds / every)):
        await clock.advance(every)
        await after()
    if land:
        await loopback(land)


async def tick_until(
    clock: FakeClock,
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    within: float,
    every: float = 0.2,
    after: After = frames_in_flight,
    real_within: float | None = 60.0,
) -> float:
    """Move fake time tick by tick until `condition` (sync, or async like a scrape) holds; the fake seconds it took.

    Fails once `within` fake seconds have passed without it, and after `real_within` real seconds so that
    a hang fails instead of hanging (None: no such bound, when each tick bounds its own wait or nothing
    but the fake clock runs).
    """
    loop = asyncio.get_running_loop()
    deadline = None if real_within is None else loop.time() + real_within
    ticks = 0
    while not await _holds(condition):
        assert ticks * every < within, f"condition not met within {within:g} fake seconds"
        assert deadline is None or loop.time() < deadline, f"condition not met within {real_within:g} real seconds"
        await clock.advance(every)
        await after()
        ticks += 1
    return ticks * every
