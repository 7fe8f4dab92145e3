"""Two exporters on one OAuth client: a few evictions in a short while are a conflict, the client gives
way for a long back-off, and then tries again; anything else is an ordinary lost channel."""

from __future__ import annotations

import asyncio

from exporter.clock import FakeClock
from exporter.push.conflict import CONFLICT_BACKOFF_SECONDS, EVICTED, Conflicts


async def test_three_evictions_in_ten_minutes_are_a_conflict_of_that_client_only(clock: FakeClock) -> None:
    conflicts = Conflicts(clock, ("a", "b"))
    for _ in range(2):
        conflicts.lost("a", EVICTED)
        await clock.advance(60)
    conflicts.lost("a", "user_tokens_revoked")  # not another exporter
    conflicts.lost("b", EVICTED)
    assert conflicts.states() == {"a": False, "b": False}
    conflicts.lost("a", EVICTED)
    assert conflicts.states() == {"a": True, "b": False}


async def test_evictions_spread_over_more_than_the_window_are_no_conflict(clock: FakeClock) -> None:
    conflicts = Conflicts(clock, ("a",))
    for _ in range(5):
        conflicts.lost("a", EVICTED)
        await clock.advance(301)  # a restart every five minutes: each recovered as before
    assert not conflicts.in_conflict("a")


async def test_a_client_in_conflict_waits_out_its_back_off_then_tries_again(clock: FakeClock) -> None:
    conflicts = Conflicts(clock, ("a",))
    for _ in range(3):
        conflicts.lost("a", EVICTED)
    waiting = asyncio.create_task(conflicts.wait_clear("a"))
    await clock.advance(CONFLICT_BACKOFF_SECONDS - 1)
    assert not waiting.done() and conflicts.in_conflict("a")
    await clock.advance(2)
    await asyncio.wait_for(waiting, 1)
    assert not conflicts.in_conflict("a")
    await conflicts.wait_clear("a")  # no conflict: at once
