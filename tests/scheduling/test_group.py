"""Several OAuth clients' budgets as one: requests spread, no client's window ever over its limit, and a
client that fails hands its share to the others until it is back (issue 12)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.clock import FakeClock
from exporter.scheduling.budget import Caller, RateBudget, Shares, current_caller
from exporter.scheduling.group import FIRST_BACKOFF_SECONDS, STORM_429S, BudgetGroup
from exporter.scheduling.scheduler import Job, Scheduler
from exporter.snapshot import Store
from tests.harness.waiting import tick_for
from tests.harness.windows import drive, max_in_any_window


def group_of(clock: FakeClock, *per_minute: int, concurrency: int = 4) -> BudgetGroup:
    return BudgetGroup(
        clock,
        {
            f"c{n}": RateBudget(clock, requests_per_minute=limit, headroom=0.0, concurrency=concurrency)
            for n, limit in enumerate(per_minute, 1)
        },
    )


@asynccontextmanager
async def chosen(group: BudgetGroup, job: str = "agents") -> AsyncIterator[str]:
    """A place where the group sends the request, as `GenesysClient._send` does; the client's label."""
    current_caller.set(Caller(job, 1))
    label = group.choose(current_caller.get())
    assert label is not None
    async with group.members[label].slot():
        yield label


async def starts_by_client(
    group: BudgetGroup, clock: FakeClock, arrivals: list[float], latencies: list[float]
) -> dict[str, list[float]]:
    starts: dict[str, list[float]] = {label: [] for label in group.members}
    for at, label in await drive(clock, arrivals, latencies, lambda: chosen(group)):
        starts[label].append(at)
    return starts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=4),
    st.lists(st.tuples(st.floats(0, 200), st.floats(0, 5)), min_size=1, max_size=150),
)
def test_no_clients_60s_window_ever_holds_more_than_its_budget(limits, requests):
    async def scenario() -> dict[str, list[float]]:
        clock = FakeClock()
        group = group_of(clock, *limits)
        return await starts_by_client(group, clock, [a for a, _ in requests], [lat for _, lat in requests])

    starts = asyncio.run(scenario())
    assert sum(len(s) for s in starts.values()) == len(requests)  # everyone got through eventually
    for limit, label in zip(limits, starts, strict=True):
        assert max_in_any_window(starts[label]) <= limit, label


async def test_a_burst_spreads_over_the_clients_in_proportion_to_their_budgets(clock):
    group = group_of(clock, 120, 60, 60, concurrency=8)
    assert group.per_second == 4.0  # the plan sees the sum
    starts = await starts_by_client(group, clock, [0.0] * 480, [0.2] * 480)
    assert {label: len(s) for label, s in starts.items()} == {"c1": 240, "c2": 120, "c3": 120}
    assert max(max(s) for s in starts.values()) < 65  # two windows' worth, each client full in each
    assert all(max_in_any_window(s) <= limit for s, limit in zip(starts.values(), (120, 60, 60), strict=True))


async def test_light_load_goes_round_the_clients_not_to_the_first_only(clock):
    group = group_of(clock, 60, 60, 60)
    starts = await starts_by_client(group, clock, [0.0] * 6, [1.0] * 6)
    assert [len(s) for s in starts.values()] == [2, 2, 2]


async def test_a_client_set_aside_hands_its_share_to_the_others_and_comes_back(clock):
    group = group_of(clock, 60, 60, 60)
    group.set_shares(Shares({"queues": 1.0}, reserve_per_second=0.6, burst=3))

    def reserves() -> list[int]:
        return [b._reserve for b in group.members.values()]

    assert reserves() in ([12, 12, 12], [11, 11, 11])  # a third of the reserve each (floored in requests)
    group.set_aside("c2", "login failed")
    assert group.in_use() == ("c1", "c3")
    assert group.per_second == 2.0
    assert reserves() in ([18, 0, 18], [17, 0, 17])  # its part went to the others
    starts = await starts_by_client(group, clock, [0.0] * 20, [0.1] * 20)
    assert not starts["c2"]
    await clock.advance(FIRST_BACKOFF_SECONDS)  # the back-off is over: it is tried again
    assert group.in_use() == ("c1", "c2", "c3") and group.per_second == 3.0
    assert reserves() in ([12, 12, 12], [11, 11, 11])
    group.set_aside("c2", "login failed again")  # a second failure: twice as long
    await clock.advance(FIRST_BACKOFF_SECONDS)
    assert group.in_use() == ("c1", "c3")
    await clock.advance(FIRST_BACKOFF_SECONDS)
    assert "c2" in group.in_use()
    group.succeeded("c2")  # it works: the next failure starts the back-off afresh
    group.set_aside("c2", "once more")
    await clock.advance(FIRST_BACKOFF_SECONDS)
    assert "c2" in group.in_use()


async def test_failures_of_requests_in_flight_together_count_once(clock):
    group = group_of(clock, 60, 60)
    for _ in range(5):
        group.set_aside("c1", "401 with a new token")
    await clock.advance(FIRST_BACKOFF_SECONDS)
    assert group.in_use() == ("c1", "c2")


async def test_a_429_storm_sets_a_client_aside_and_a_daily_cap_for_its_retry_after(clock):
    group = group_of(clock, 60, 60)
    for _ in range(STORM_429S - 1):
        group.rate_limited("c1", 1.0)
    group.succeeded("c1")  # a success between: no storm
    group.rate_limited("c1", 1.0)
    assert group.in_use() == ("c1", "c2")
    for _ in range(STORM_429S - 1):
        group.rate_limited("c1", 1.0)
    assert group.in_use() == ("c2",)
    assert group.rate_limited_total == 2 * STORM_429S - 1
    group.set_aside("c2", "daily cap", at_least=3600)
    assert group.in_use() == ("c1", "c2")  # every client set aside: all of them, a request has nowhere better
    await clock.advance(FIRST_BACKOFF_SECONDS)
    assert group.in_use() == ("c1",)
    await clock.advance(3600)
    assert group.in_use() == ("c1", "c2")


def test_choose_skips_the_clients_that_failed_the_request_then_the_set_aside_ones(clock):
    group = group_of(clock, 60, 60, 60)
    caller = Caller("agents", 1)
    group.set_aside("c3", "login failed")
    assert group.choose(caller, exclude={"c1"}) == "c2"
    assert group.choose(caller, exclude={"c1", "c2"}) == "c3"  # tried once more before the request gives up
    assert group.choose(caller, exclude={"c1", "c2", "c3"}) is None


def test_one_client_is_todays_budget(clock):
    group = group_of(clock, 300)
    (budget,) = group.members.values()
    group.set_shares(Shares({"queues": 2.0, "agents": 1.0}, reserve_per_second=0.5, burst=7, unplanned=["agents"]))
    assert (budget._reserve, budget._urgent_cap, budget._unplanned) == (30, 37, frozenset({"agents"}))
    group.set_aside("c1", "login failed")
    assert group.in_use() == ("c1",) and group.per_second == 5.0  # nowhere else to go: the plan keeps it


async def test_the_scheduler_plans_with_the_clients_in_use(clock):
    group = group_of(clock, 60, 60)

    async def nothing() -> None:
        return None

    queues = Job("queues", 10, nothing, priority=0)
    scheduler = Scheduler(Store(clock), clock, [queues], group)
    assert scheduler.plan.per_second == 2.0
    group.set_aside("c2", "login failed")
    await scheduler.run_once(queues)  # every cycle replans
    assert scheduler.plan.per_second == 1.0


@pytest.mark.parametrize("queued", [0, 5, 14, 15, 25])
def test_eta_is_when_the_window_has_room_for_everyone_ahead(clock, queued):
    budget = RateBudget(clock, requests_per_minute=10, headroom=0.0)
    budget._starts.extend([0.0] * 5)  # five started at 0: five more fit now, ten at 60 s, ten at 120 s
    budget._flows["directory"] = deque(asyncio.Event() for _ in range(queued))
    expected = {0: 0.0, 5: 60.0, 14: 60.0, 15: 120.0, 25: 180.0}[queued]
    assert budget.eta(Caller("agents", 1)) == expected


async def test_a_planned_job_goes_where_its_part_of_the_window_is_kept(clock):
    """Each client keeps its share of today's figures' part of the window. The listing's backlog is
    longer on some clients than on others (the group sent its pages where each would start soonest):
    were today's requests sent by that alone, they would crowd the client with the shortest backlog,
    overspend its kept part there and wait for its window to slide. Every cycle starts within
    seconds, each client carrying about a third of it."""
    group = group_of(clock, 270, 270, 270, concurrency=8)
    # Kept: its rate and one cycle more, as the scheduler plans it (`Scheduler._kept_per_second`).
    group.set_shares(Shares({"listing": 13.3, "today": 10.7}, kept_per_second={"today": 40 / 15 * 75 / 60}))
    waits: list[float] = []
    where: list[str] = []

    async def listing(label: str) -> None:
        current_caller.set(Caller("listing", 4))
        async with group.members[label].slot():
            await clock.sleep(0.2)

    async def today(at: float) -> None:
        await clock.sleep(at)
        asked = clock.monotonic()
        async with chosen(group, "today") as label:
            waits.append(clock.monotonic() - asked)
            where.append(label)
            await clock.sleep(0.2)

    backlog = {"c1": 1000, "c2": 1500, "c3": 1500}
    tasks = [asyncio.ensure_future(listing(label)) for label, pages in backlog.items() for _ in range(pages)]
    tasks += [asyncio.ensure_future(today(70.0 + 15 * cycle)) for cycle in range(6) for _ in range(40)]
    await tick_for(clock, 170, every=0.1)
    for task in tasks:
        task.cancel()

    assert len(waits) == 240
    assert max(waits) < 2
    assert all(75 <= where.count(label) <= 85 for label in group.members)
