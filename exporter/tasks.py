"""Waiting for the first of several things without leaving the others running.

`asyncio.wait(..., FIRST_COMPLETED)` leaves the losers pending, and a caller cancelled while it waits
leaves all of them: tasks nobody owns, still holding sockets or sleeping on the fake clock of a
test that has ended. `first_of` cancels and reaps every loser, whatever way it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

K = TypeVar("K")


async def first_of(waits: Mapping[K, Awaitable[Any]]) -> set[K]:
    """The keys of the awaitables done first; the others are cancelled (tasks given in are left alone)."""
    futures = {asyncio.ensure_future(aw): key for key, aw in waits.items()}
    owned = [f for f, key in futures.items() if not isinstance(waits[key], asyncio.Future)]
    try:
        done, _ = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        return {futures[f] for f in done}
    finally:
        losers = [future for future in owned if not future.done()]
        for future in losers:
            future.cancel()
        if losers:  # reaped; a cancellation of the caller meanwhile still reaches it (never swallowed)
            await asyncio.wait(losers)
