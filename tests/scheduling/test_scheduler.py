"""The scheduler keeps cadence through failures, says the truth about each job, and honours dependencies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from exporter.clock import FakeClock
from exporter.scheduling.budget import WINDOW_SECONDS, RateBudget, Shares
from exporter.scheduling.scheduler import Job, Scheduler, stale_limit
from exporter.snapshot import Store


async def test_failures_keep_cadence_and_status_tells_the_truth(clock: FakeClock):
    store = Store(clock)
    calls: list[float] = []
    fail = {"now": False}

    async def work() -> None:
        calls.append(clock.monotonic())
        await clock.sleep(2)  # a cycle takes 2 s
        if fail["now"]:
            raise RuntimeError("boom")

    scheduler = Scheduler(store, clock, [Job("queues", 10, work)], jitter=0)
    task = asyncio.create_task(scheduler.run())
    await clock.advance(25)
    assert calls == [0, 10, 20]  # on the grid, not drifting by the 2 s a cycle takes
    status = store.status("queues")
    assert status is not None and status.up is True and status.last_duration == 2
    assert status.last_success == clock.time() - 3
    fail["now"] = True
    await clock.advance(10)
    status = store.status("queues")
    assert status is not None
    assert (status.up, status.consecutive_failures, status.last_error) == (False, 1, "boom")
    assert status.last_success == clock.time() - 13  # still the last good cycle
    assert scheduler.ready
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_job_waits_for_its_dependency(clock: FakeClock):
    store = Store(clock)
    order: list[str] = []
    directory_ok = {"now": False}

    async def directory() -> None:
        order.append("directory")
        if not directory_ok["now"]:
            raise RuntimeError("403")

    async def queues() -> None:
        order.append("queues")

    scheduler = Scheduler(
        store, clock, [Job("directory", 5, directory), Job("queues", 1, queues, after="directory")], jitter=0
    )
    task = asyncio.create_task(scheduler.run())
    await clock.advance(3)
    assert order == ["directory"] and not scheduler.ready
    directory_ok["now"] = True
    await clock.advance(2.5)
    assert order[:3] == ["directory", "directory", "queues"]
    assert scheduler.ready
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def member_listing(clock: FakeClock) -> tuple[asyncio.Event, Job]:
    """The member listing of 2,000 queues, its first pass running until the event is set."""
    listed = asyncio.Event()

    async def work() -> None:
        await listed.wait()

    return listed, Job("agent_directory", 600, work, priority=4, first_priority=1, expected_cost=lambda: 2000)


def a_second(clock: FakeClock) -> Callable[[], Awaitable[None]]:
    """A cycle's work that takes a second."""

    async def work() -> None:
        await clock.sleep(1)

    return work


async def test_the_agents_polls_are_held_within_their_floor_once_the_first_passes_are_done(clock: FakeClock):
    """One client at 50,000 agents: held within their floor from the start, the by-id polls would leave
    the member listing's first pass (which `genesys_agent_info` waits for) only its reserve."""
    store = Store(clock)
    listed, listing = member_listing(clock)
    jobs = [
        listing,
        Job("agents", 15, a_second(clock), priority=2, within_floor=1.25, expected_cost=lambda: 330),
        Job("performance", 15, a_second(clock), priority=1, expected_cost=lambda: 40),
    ]
    budget = RateBudget(clock, requests_per_minute=300, headroom=0.1)
    scheduler = Scheduler(store, clock, jobs, budget, jitter=0)
    floor = 330 / budget.per_second
    assert scheduler.plan.intervals["agents"] > 2 * floor  # the first pass goes first
    task = asyncio.create_task(scheduler.run())
    await clock.advance(1)
    listed.set()
    await clock.advance(2)
    assert scheduler.plan.intervals["agents"] == pytest.approx(1.25 * floor)
    assert scheduler.plan.intervals["performance"] > 15  # today's figures take what is left
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_job_asleep_on_a_stretched_interval_wakes_on_the_plan_that_shortens_it(clock: FakeClock):
    """While the member listing's first pass runs, the agents' polls are planned minutes apart; once it
    is done their floor applies, and the poll must come on that cadence, not after the old interval
    (their states would be past their stale limit by then)."""
    store = Store(clock)
    listed, listing = member_listing(clock)
    polls: list[float] = []

    async def poll_agents() -> None:
        polls.append(clock.monotonic())
        await clock.sleep(1)

    jobs = [listing, Job("agents", 15, poll_agents, priority=2, within_floor=1.25, expected_cost=lambda: 330)]
    budget = RateBudget(clock, requests_per_minute=300, headroom=0.1)
    scheduler = Scheduler(store, clock, jobs, budget, jitter=0)
    stretched = scheduler.plan.intervals["agents"]
    task = asyncio.create_task(scheduler.run())
    await clock.advance(2)
    assert polls == [0]
    listed.set()
    await clock.advance(1)
    floor = scheduler.plan.intervals["agents"]
    assert floor < stretched / 2
    await clock.advance(floor + 1)
    assert polls == [0, pytest.approx(floor)]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_data_outlives_a_spent_window_but_live_queue_data_keeps_three_cadences() -> None:
    """At a start the users listing and push's subscriptions spend the first minute's window in
    seconds: states listed then must outlive the minute push's reconciliation waits for."""
    agents = Job("agents", 15, _never, priority=2)
    queues = Job("queues", 8, _never, priority=0)
    assert stale_limit(agents, 15) == 15 + WINDOW_SECONDS
    assert stale_limit(agents, 100) == 3 * 100
    assert stale_limit(queues, 8) == 3 * 8


async def _never() -> None:
    raise AssertionError("not run")


async def test_only_jobs_that_come_back_within_the_window_keep_their_part_of_it(clock: FakeClock):
    """Today's figures every 15 s keep their planned part, which a bulk pass between two of their
    cycles cannot spend; a directory every ten minutes keeps none (kept between its passes it would
    go unspent), and nothing is kept while a first pass runs."""
    store = Store(clock)
    listed, listing = member_listing(clock)
    kept: list[dict[str, float]] = []

    class Recording(RateBudget):
        def set_shares(self, shares: Shares) -> None:
            kept.append(dict(shares.kept_per_second))
            super().set_shares(shares)

    jobs = [listing, Job("performance", 15, a_second(clock), priority=1, expected_cost=lambda: 40)]
    scheduler = Scheduler(store, clock, jobs, Recording(clock, requests_per_minute=900, headroom=0.1), jitter=0)
    task = asyncio.create_task(scheduler.run())
    await clock.advance(2)
    assert kept[-1] == {}  # the listing's first pass is running
    listed.set()
    await clock.advance(2)
    # Its rate in the window and one cycle more: a cycle a little late and the one a window after it.
    assert scheduler.plan.intervals["performance"] == 15
    assert kept[-1] == {"performance": pytest.approx(scheduler.plan.shares["performance"] * 75 / 60)}
    assert scheduler.plan.shares["performance"] * 15 == pytest.approx(40)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
