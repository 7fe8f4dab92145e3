"""The budget never lets more than its limit start in any 60 s window, and shares its room as planned."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.clock import FakeClock
from exporter.scheduling.budget import Caller, RateBudget, Shares, current_caller
from tests.harness.waiting import nothing_in_flight, tick_for
from tests.harness.windows import drive, max_in_any_window


async def starts_of(budget: RateBudget, clock: FakeClock, arrivals: list[float], latencies: list[float]) -> list[float]:
    return [at for at, _ in await drive(clock, arrivals, latencies, budget.slot)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=1, max_value=60),
    st.lists(st.tuples(st.floats(0, 200), st.floats(0, 5)), min_size=1, max_size=150),
)
def test_no_60s_window_ever_holds_more_than_the_budget(per_minute, requests):
    async def scenario() -> list[float]:
        clock = FakeClock()
        budget = RateBudget(clock, requests_per_minute=per_minute, headroom=0.0, concurrency=4)
        return await starts_of(budget, clock, [a for a, _ in requests], [lat for _, lat in requests])

    starts = asyncio.run(scenario())
    assert len(starts) == len(requests)  # everyone got through eventually
    assert max_in_any_window(starts) <= per_minute


async def test_full_speed_uses_the_whole_budget_less_headroom(clock):
    budget = RateBudget(clock, requests_per_minute=300, headroom=0.1, concurrency=8)
    starts = await starts_of(budget, clock, [0.0] * 600, [0.2] * 600)
    assert budget.requests_per_minute == 270
    assert max_in_any_window(starts) == 270
    assert max(starts) < 150  # 600 requests in ~2 windows and a bit: no needless waiting


async def test_server_headers_showing_a_shared_limit_hold_requests_until_reset(clock):
    budget = RateBudget(clock, requests_per_minute=300, headroom=0.1)
    budget.observe({"ININ-RateLimit-Allowed": "300", "inin-ratelimit-count": "290", "inin-ratelimit-reset": "20"})
    assert budget.remaining == 10
    starts = await starts_of(budget, clock, [0.0], [0.0])
    assert starts == [20.0]


async def test_server_allowing_less_tightens_our_limit(clock):
    budget = RateBudget(clock, requests_per_minute=300, headroom=0.1)
    budget.observe({"inin-ratelimit-allowed": "100", "inin-ratelimit-count": "1", "inin-ratelimit-reset": "59"})
    assert budget.requests_per_minute == 90


async def test_a_pause_blocks_everyone_and_ends(clock):
    budget = RateBudget(clock)
    budget.rate_limited(12)
    starts = await starts_of(budget, clock, [0.0, 5.0, 13.0], [0.0, 0.0, 0.0])
    assert sorted(starts) == [12.0, 12.0, 13.0]
    assert budget.rate_limited_total == 1


async def test_a_job_of_unknown_cost_leaves_a_quarter_of_the_window_to_those_that_start_after_it(clock):
    budget = RateBudget(clock, requests_per_minute=300, headroom=0.1, concurrency=8)
    budget.set_shares(Shares({"agent_directory": 1.0, "agents": 1.0}, unplanned=["agent_directory"]))
    listing: list[float] = []
    states: list[float] = []

    async def request(job: str, arrive: float, into: list[float]) -> None:
        current_caller.set(Caller(job, 4))
        await clock.sleep(arrive)
        async with budget.slot():
            into.append(clock.monotonic())
            await clock.sleep(0.05)

    tasks = [asyncio.ensure_future(request("agent_directory", 0.0, listing)) for _ in range(600)]
    tasks += [asyncio.ensure_future(request("agents", 10.0, states)) for _ in range(20)]
    await tick_for(clock, 20, every=0.5, after=nothing_in_flight)
    assert len(listing) == 3 * 270 // 4  # alone at first, yet capped: the cost of a first cycle is a guess
    assert len(states) == 20 and max(states) < 12  # the agents' first polls, ten seconds later, got through
    budget.set_shares(Shares({"agent_directory": 1.0, "agents": 1.0}))  # its cost is known: paced by the plan only
    await tick_for(clock, 120, every=0.5, after=nothing_in_flight)
    assert max_in_any_window(listing + states) == 270
    for task in tasks:
        task.cancel()


async def test_new_shares_that_loosen_the_limits_let_the_waiting_requests_go_at_once(clock):
    """Start-up at 2,000 queues with push: the queues' first poll makes them urgent with a large reserve
    (the others' room fills), then push takes the queues over, the next plan drops the reserve, and
    the requests already waiting on the old room must not sleep out the window."""
    budget = RateBudget(clock, requests_per_minute=300, headroom=0.1, concurrency=8)
    budget.set_shares(Shares({"queues": 1.0, "agents": 1.0}, reserve_per_second=150 / 60))  # others: 270 - 150
    started: list[float] = []

    async def request() -> None:
        current_caller.set(Caller("agents", 2))
        async with budget.slot():
            started.append(clock.monotonic())
            await clock.sleep(0.05)

    tasks = [asyncio.ensure_future(request()) for _ in range(150)]
    await clock.advance(5)
    assert len(started) == 120  # the room the reserve leaves is spent; the rest wait for the window
    budget.set_shares(Shares({"queues": 1.0, "agents": 1.0}))  # the queues are pushed now: no reserve
    await clock.advance(1)
    assert len(started) == 150 and max(started) < 6
    for task in tasks:
        task.cancel()


async def test_a_first_cycle_leaves_a_quarter_of_what_the_others_spent_before_it_left(clock):
    """Start-up as it is at 2,000 queues: the queue list, the queues' first poll and the channels' set-up
    spend 80 of the window in the first second, then the member listing starts alone."""
    budget = RateBudget(clock, requests_per_minute=300, headroom=0.1, concurrency=8)
    budget.set_shares(
        Shares({"directory": 1.0, "agent_directory": 1.0, "agents": 1.0}, unplanned=["agent_directory", "agents"])
    )
    starts: dict[str, list[float]] = {}

    async def request(job: str, priority: int, arrive: float) -> None:
        current_caller.set(Caller(job, priority))
        await clock.sleep(arrive)
        async with budget.slot():
            starts.setdefault(job, []).append(clock.monotonic())
            await clock.sleep(0.05)

    tasks = [asyncio.ensure_future(request("queues", 0, 0.0)) for _ in range(50)]
    tasks += [asyncio.ensure_future(request("directory", 4, 0.0)) for _ in range(30)]
    tasks += [asyncio.ensure_future(request("agent_directory", 4, 0.5)) for _ in range(2000)]
    tasks += [asyncio.ensure_future(request("agents", 2, 10.0)) for _ in range(21)]
    await tick_for(clock, 12, every=0.5, after=nothing_in_flight)
    assert len(starts["agent_directory"]) == 3 * (270 - 50 - 30) // 4
    assert len(starts["agents"]) == 21 and max(starts["agents"]) < 11
    for task in tasks:
        task.cancel()


async def test_a_caller_sent_ahead_goes_after_the_urgent_requests_and_before_every_fair_share(clock):
    """The start's users listing (every agent's first state) against the agents' by-id polls, which
    the plan weighs ten times more, and the queues' urgent polls, all waiting at once."""
    budget = RateBudget(clock, requests_per_minute=300, headroom=0.1, concurrency=1)
    budget.set_shares(Shares({"queues": 1.0, "agents": 10.0}, reserve_per_second=20 / 60, burst=20))

    callers = [Caller("agents", 2)] * 30 + [Caller("user_listing", 1, ahead=True)] * 30 + [Caller("queues", 0)] * 10
    order = await served_order(budget, clock, callers)
    # The first to arrive starts at once, with nobody else waiting; then the queues, the listing, the rest.
    assert order == ["agents"] + ["queues"] * 10 + ["user_listing"] * 30 + ["agents"] * 29


async def test_a_caller_sent_ahead_shares_the_front_with_urgent_jobs_beyond_their_cap(clock):
    """At a start nothing is planned yet: the queues' first poll has no reserve, so no cap to go first
    within. The listing sent ahead must not starve it: they share the front by weight, before the rest."""
    budget = RateBudget(clock, requests_per_minute=300, headroom=0.1, concurrency=1)
    budget.set_shares(Shares({"agents": 10.0}))

    callers = [Caller("agents", 2)] * 20 + [Caller("user_listing", 1, ahead=True)] * 20 + [Caller("queues", 0)] * 20
    front = (await served_order(budget, clock, callers))[1:41]  # the first started alone, before the others arrived
    assert sorted(front) == ["queues"] * 20 + ["user_listing"] * 20
    assert front[:10].count("queues") >= 4  # interleaved, not the listing first


async def served_order(budget: RateBudget, clock: FakeClock, callers: list[Caller]) -> list[str]:
    """The callers' requests, all sent at once, one at a time through the budget: whose went when."""
    order: list[str] = []

    async def request(caller: Caller) -> None:
        current_caller.set(caller)
        async with budget.slot():
            order.append(caller.name)
            await clock.sleep(0.05)

    tasks = [asyncio.ensure_future(request(caller)) for caller in callers]
    await tick_for(clock, 10, every=0.5, after=nothing_in_flight)
    for task in tasks:
        task.cancel()
    return order


async def test_a_request_served_out_of_tag_order_never_sets_the_fair_queue_back(clock):
    """An urgent request goes first whatever its tag. The tag it carried, far ahead of a backlogged
    job's (the member listing's thousands of pages), must not become the virtual time and then fall
    back to the listing's: a job arriving in between (today's figures) would be tagged from the high
    mark and wait behind the listing's whole backlog rather than share the starts by weight."""
    budget = RateBudget(clock, requests_per_minute=6000, headroom=0.0, concurrency=1)
    budget.set_shares(Shares({"queues": 0.1, "listing": 10.0, "today": 10.0}, reserve_per_second=1.0, burst=1))
    order: list[str] = []

    async def request(caller: Caller, at: float, takes: float = 0.05) -> None:
        await clock.sleep(at)
        current_caller.set(caller)
        async with budget.slot():
            order.append(caller.name)
            await clock.sleep(takes)

    tasks = [asyncio.ensure_future(request(Caller("listing", 4), 0.0)) for _ in range(200)]
    tasks.append(asyncio.ensure_future(request(Caller("queues", 0), 1.0, takes=0.5)))
    # Today's figures ask while the queues' request is in flight.
    tasks += [asyncio.ensure_future(request(Caller("today", 1), 1.2)) for _ in range(10)]
    await tick_for(clock, 12, every=0.05, after=nothing_in_flight)
    for task in tasks:
        task.cancel()

    assert order.count("today") == 10
    # The listing and today's figures weigh the same: once today's are waiting, they take every other start.
    after_queues = order[order.index("queues") + 1 :]
    assert after_queues[:21].count("today") == 10


async def test_a_bulk_pass_alone_leaves_the_window_a_planned_job_counts_on(clock):
    """A 2,000-page directory pass starts while today's figures sit between two cycles. Fair queueing
    would lend it their part of the window, and the 60 s window would keep that loan a minute: their
    next cycle must find its planned starts free, not wait for the window to slide."""
    budget = RateBudget(clock, requests_per_minute=270, headroom=0.0, concurrency=8)
    budget.set_shares(
        Shares(
            {"listing": 13.3, "today": 10.7},
            reserve_per_second=0.2,
            kept_per_second={"listing": 3.3, "today": 40 / 15},
        )
    )
    waits: list[float] = []

    async def request(caller: Caller, at: float) -> None:
        await clock.sleep(at)
        current_caller.set(caller)
        asked = clock.monotonic()
        async with budget.slot():
            if caller.name == "today":
                waits.append(clock.monotonic() - asked)
            await clock.sleep(0.2)

    tasks = [asyncio.ensure_future(request(Caller("listing", 4), 0.0)) for _ in range(2000)]
    tasks += [asyncio.ensure_future(request(Caller("today", 1), 20.0)) for _ in range(40)]
    await tick_for(clock, 40, every=0.1)
    for task in tasks:
        task.cancel()

    assert len(waits) == 40
    assert max(waits) < 10  # shared by weight with the listing, never behind a spent window


async def test_a_request_that_became_first_while_another_slept_is_told(clock):
    """The listing's next page sleeps until the window slides (t=60). Today's request arrives meanwhile,
    behind it by tag. At 60 the slide frees today's kept part but not yet the listing's room (its
    pages of t=1 hold it to a second more): today's request is first now, and the listing, waking to
    find that, must tell it rather than wait in turn for a wake-up that nobody sends."""
    budget = RateBudget(clock, requests_per_minute=10, headroom=0.0, concurrency=8)
    budget.set_shares(Shares({"listing": 100.0, "today": 1.0}, kept_per_second={"today": 3 / 60}))
    started: dict[str, list[float]] = {"listing": [], "today": []}

    async def request(job: str, at: float) -> None:
        await clock.sleep(at)
        current_caller.set(Caller(job, 1))
        async with budget.slot():
            started[job].append(clock.monotonic())

    tasks = [asyncio.ensure_future(request("today", 0.0)) for _ in range(3)]
    tasks += [asyncio.ensure_future(request("listing", 1.0)) for _ in range(8)]
    tasks.append(asyncio.ensure_future(request("today", 30.0)))
    await tick_for(clock, 65, every=0.1)
    for task in tasks:
        task.cancel()

    assert started["listing"][:7] == [1.0] * 7 and started["today"][:3] == [0.0] * 3
    assert len(started["today"]) == 4 and 60.0 <= started["today"][3] < 60.5
