"""The planner fits cadences into the budget; the scheduler and budget keep to the plan on a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import defaultdict
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.clock import FakeClock
from exporter.scheduling.budget import RateBudget
from exporter.scheduling.planner import MIN_SHARE, Demand, plan_cadences
from exporter.scheduling.scheduler import STALE_AFTER_INTERVALS, Job, Scheduler
from exporter.snapshot import Store
from exporter.sources.agent_states import AGENT_STATES
from tests.harness.waiting import nothing_in_flight, tick_for
from tests.harness.windows import max_in_any_window

PER_SECOND = 270 / 60  # 300 a minute less 10% headroom

# A 50,000-agent, 2,000-queue org: requests per cycle and configured cadence of each job.
LARGE_ORG = [
    Demand("queues", 10, 20, 0),
    Demand("performance", 60, 40, 1),
    Demand("agents", 15, 500, 2),
    Demand("directory", 600, 20, 3),
    Demand("agent_directory", 600, 500, 4),
]


def test_what_fits_keeps_its_configured_cadence():
    small = [Demand("queues", 10, 1, 0), Demand("agents", 15, 10, 2), Demand("performance", 60, 2, 1)]
    assert plan_cadences(small, PER_SECOND).intervals == {"queues": 10, "agents": 15, "performance": 60}


def test_a_large_org_stretches_agents_and_directories_but_not_queues_or_performance():
    result = plan_cadences(LARGE_ORG, PER_SECOND)
    assert result.intervals["queues"] == 10
    assert result.intervals["performance"] == 60
    assert result.intervals["directory"] == 600  # cheap: its reserve covers it
    # Agents get what queues, performance and the directories' reserves leave: 4.5 - 2 - 0.67 - 0.03 - 0.225.
    assert result.shares["agents"] == pytest.approx(PER_SECOND - 2 - 40 / 60 - 20 / 600 - PER_SECOND * MIN_SHARE)
    assert result.intervals["agents"] == pytest.approx(500 / result.shares["agents"])
    assert 300 < result.intervals["agents"] < 330
    assert result.intervals["agent_directory"] == pytest.approx(500 / (PER_SECOND * MIN_SHARE))
    assert sum(result.shares.values()) == pytest.approx(PER_SECOND)  # the whole budget, and no more


def test_queues_stretch_last_and_every_job_keeps_a_reserve():
    huge = [Demand("queues", 10, 100, 0), Demand("agents", 15, 500, 2), Demand("performance", 60, 200, 1)]
    result = plan_cadences(huge, PER_SECOND)
    assert sum(result.shares.values()) == pytest.approx(PER_SECOND)
    for name in ("agents", "performance"):
        assert result.shares[name] == pytest.approx(PER_SECOND * MIN_SHARE)
    assert result.intervals["queues"] == pytest.approx(100 / (PER_SECOND * (1 - 2 * MIN_SHARE)))


@given(
    st.lists(
        st.tuples(st.floats(1, 3600), st.integers(0, 5000), st.integers(0, 5), st.one_of(st.none(), st.floats(1, 4))),
        min_size=1,
        max_size=12,
    ),
    st.floats(0.1, 100),
)
def test_plans_never_exceed_the_budget_nor_shorten_a_cadence(jobs, per_second):
    demands = [Demand(f"job{i}", *job) for i, job in enumerate(jobs)]
    result = plan_cadences(demands, per_second)
    assert sum(result.shares.values()) <= per_second * (1 + 1e-9)
    # Backlogged, a job gets weight/total of the starts: never less than its reserve's part of the budget.
    total_weight = sum(result.weights.values())
    for demand in (d for d in demands if d.cost):
        reserve = min(demand.rate, per_second * MIN_SHARE)
        assert result.weights[demand.name] / total_weight >= reserve / per_second * (1 - 1e-6)
    for demand in demands:
        interval = result.intervals[demand.name]
        assert interval >= demand.interval
        if demand.cost:  # what it spends per cycle over its effective cadence fits its share
            assert demand.cost / interval <= result.shares[demand.name] * (1 + 1e-9)


class FakeApi:
    """Jobs that send `pages` requests each through the budget, each taking `latency` seconds."""

    def __init__(self, clock: FakeClock, budget: RateBudget) -> None:
        self.clock = clock
        self.budget = budget
        self.starts: list[float] = []
        self.cycles: dict[str, list[float]] = defaultdict(list)

    def job(self, name: str, interval: float, pages: int, priority: int, latency: float = 0.2) -> Job:
        async def run() -> None:
            self.cycles[name].append(self.clock.monotonic())

            async def request() -> None:
                async with self.budget.slot():
                    self.starts.append(self.clock.monotonic())
                    await self.clock.sleep(latency)

            await asyncio.gather(*(request() for _ in range(pages)))

        return Job(name, interval, run, priority=priority, refreshes=(AGENT_STATES,) if name == "agents" else ())


async def test_a_budget_bound_job_stretches_while_queues_keep_their_cadence(clock):
    budget = RateBudget(clock, requests_per_minute=60, headroom=0.0, concurrency=4)  # 1 a second
    api = FakeApi(clock, budget)
    store = Store(clock)
    jobs = [api.job("queues", 10, 2, 0), api.job("agents", 15, 60, 2), api.job("performance", 60, 4, 1)]
    scheduler = Scheduler(store, clock, jobs, budget, jitter=0)
    task = asyncio.create_task(scheduler.run())
    await tick_for(clock, 600, every=0.5, after=nothing_in_flight)
    task.cancel()

    # Queues: 0.2/s, performance 0.07/s; agents get the rest (0.73/s): 60 pages take ~82 s, not 15.
    queue_gaps = [b - a for a, b in pairwise(api.cycles["queues"])]
    assert all(gap == pytest.approx(10) for gap in queue_gaps)
    agents = store.status("agents")
    assert agents is not None and agents.configured_interval == 15 and agents.cost == 60
    assert agents.interval == pytest.approx(60 / (1 - 0.2 - 4 / 60))
    assert store.stale_after(AGENT_STATES) == pytest.approx(STALE_AFTER_INTERVALS * agents.interval)
    agent_gaps = [b - a for a, b in pairwise(api.cycles["agents"][1:])]
    # A sliding window keeps the shape of the first minute's bursts: each start frees its place 60 s
    # later, so a cycle that meets more full-window stretches runs longer (one in six here by 14%,
    # 87 starts in 93 s) and the next ones catch up. On average the plan holds.
    assert agent_gaps and all(gap == pytest.approx(agents.interval, rel=0.15) for gap in agent_gaps)
    assert sum(agent_gaps) / len(agent_gaps) == pytest.approx(agents.interval, rel=0.05)
    assert max_in_any_window(api.starts) <= 60


async def test_data_a_job_must_refresh_lives_as_long_as_its_expected_cost_allows_from_its_first_cycle(clock):
    """At a start the users listing gives every agent a state, so the agents' first cycles poll nobody;
    their states must not expire at the cheap cadence before the dear cycles come round to them."""
    budget = RateBudget(clock, requests_per_minute=60, headroom=0.0, concurrency=4)
    api = FakeApi(clock, budget)
    store = Store(clock)
    cheap = api.job("agents", 15, 0, 2)
    jobs = [api.job("queues", 10, 2, 0), dataclasses.replace(cheap, expected_cost=lambda: 60)]
    task = asyncio.create_task(Scheduler(store, clock, jobs, budget, jitter=0).run())
    await tick_for(clock, 20, every=0.5, after=nothing_in_flight)
    task.cancel()

    assert api.cycles["agents"]  # a cycle ran, and sent nothing
    agents = store.status("agents")
    assert agents is not None and agents.interval == pytest.approx(60 / (1 - 0.2))
    assert store.stale_after(AGENT_STATES) == pytest.approx(STALE_AFTER_INTERVALS * agents.interval)


async def test_a_429_pauses_every_job_and_the_schedule_recovers(clock):
    budget = RateBudget(clock, requests_per_minute=120, headroom=0.0, concurrency=4)
    api = FakeApi(clock, budget)
    store = Store(clock)
    jobs = [api.job("queues", 10, 2, 0), api.job("agents", 15, 20, 2)]
    task = asyncio.create_task(Scheduler(store, clock, jobs, budget, jitter=0).run())
    await tick_for(clock, 60, every=0.5, after=nothing_in_flight)
    budget.rate_limited(45)
    paused_at = clock.monotonic()
    await tick_for(clock, 120, every=0.5, after=nothing_in_flight)
    task.cancel()

    assert not [s for s in api.starts if paused_at < s < paused_at + 45]
    after = [c for c in api.cycles["queues"] if c > paused_at + 45]
    assert after and after[0] <= paused_at + 45 + 10  # back on its cadence within one interval
    assert all(b - a == pytest.approx(10) for a, b in pairwise(after))
    assert [c for c in api.cycles["agents"] if c > paused_at + 45]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(1, 120), st.floats(0, 3), st.sampled_from([5.0, 10.0, 30.0, 60.0])), max_size=4),
    st.integers(20, 300),
)
# Slow pages hold the concurrency places, so a job the planner thought it could feed stays backlogged
# at its burst weight: job3 starved behind it until weights kept every job's reserve.
@example(jobs=[(74, 3.0, 30.0), (72, 3.0, 5.0), (1, 3.0, 5.0), (73, 1.0, 5.0)], per_minute=290)
def test_no_60s_window_ever_holds_more_than_the_budget_and_no_job_starves(jobs, per_minute):
    async def scenario() -> tuple[FakeApi, Store]:
        clock = FakeClock()
        budget = RateBudget(clock, requests_per_minute=per_minute, headroom=0.1, concurrency=8)
        api = FakeApi(clock, budget)
        store = Store(clock)
        specs = [api.job("queues", 10, 3, 0, 0.3)]
        specs += [api.job(f"job{i}", interval, pages, 1 + i, lat) for i, (pages, lat, interval) in enumerate(jobs)]
        task = asyncio.create_task(Scheduler(store, clock, specs, budget, jitter=0.1).run())
        await tick_for(clock, 900, every=1.0, after=nothing_in_flight)
        task.cancel()
        return api, store

    api, store = asyncio.run(scenario())
    limit = math.floor(per_minute * 0.9)
    assert max_in_any_window(api.starts) <= limit
    pages = {"queues": 3} | {f"job{i}": n for i, (n, _, _) in enumerate(jobs)}
    for name, status in store.snapshot.pollers.items():
        reserve = limit / 60 * MIN_SHARE / 2  # the least any job gets: half its reserve if queues overrun theirs
        if pages[name] / reserve + 60 < 900:
            assert status.last_success is not None, f"{name} never completed a cycle"


def test_a_job_held_within_its_floor_goes_right_after_the_urgent_ones():
    held = [dataclasses.replace(d, within_floor=1.25) if d.name == "agents" else d for d in LARGE_ORG]
    result = plan_cadences(held, PER_SECOND)
    assert result.intervals["queues"] == 10
    floor = 500 / (PER_SECOND - result.shares["queues"])
    assert result.intervals["agents"] == pytest.approx(1.25 * floor)
    assert result.intervals["performance"] > 60  # today's figures take what is left, stretched
    assert result.shares["performance"] >= PER_SECOND * MIN_SHARE * (1 - 1e-9)  # but never less than a reserve
    assert sum(result.shares.values()) == pytest.approx(PER_SECOND)


def test_a_job_held_within_its_floor_that_the_budget_can_feed_keeps_its_cadence():
    agents = Demand("agents", 15, 10, 2, within_floor=1.25)
    small = [Demand("queues", 10, 1, 0), agents, Demand("performance", 60, 2, 1)]
    assert plan_cadences(small, PER_SECOND).intervals == {"queues": 10, "agents": 15, "performance": 60}
