"""`first_of` reaps its losers without ever swallowing its caller's own cancellation."""

from __future__ import annotations

import asyncio

from exporter.tasks import first_of


async def slow_to_die() -> None:
    """A waiter whose cancellation takes a moment to finish (a socket closing, say)."""
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await asyncio.sleep(0.2)
        raise


async def test_the_first_done_wins_and_the_others_are_cancelled() -> None:
    slow = asyncio.ensure_future(asyncio.sleep(60))
    given = asyncio.ensure_future(asyncio.sleep(60))  # a task given in is the caller's: left alone
    assert await first_of({"quick": asyncio.sleep(0), "slow": slow, "given": given}) == {"quick"}
    assert not given.cancelled() and not given.done()
    given.cancel()
    slow.cancel()


async def test_a_caller_cancelled_while_the_losers_are_reaped_is_cancelled() -> None:
    """Before, the reaping swallowed it: a task that loops on `first_of` then never ended when asked to."""

    async def loop_forever() -> None:
        while True:
            await first_of({"quick": asyncio.sleep(0), "slow": slow_to_die()})

    task = asyncio.create_task(loop_forever())
    await asyncio.sleep(0.05)  # the first round's loser is being reaped
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert task in done and task.cancelled()
