"""The whole exporter against the simulated org on 127.0.0.1, on a clock that moves only when told.

With time frozen between polls, `/metrics` must equal the simulator's own state at that instant.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.simulator.api import SimulatedOrg, serve_simulator
from tests.harness.exporter_time import first_page, ready, run_for
from tests.harness.scraping import assert_promtool_accepts, scrape
from tests.harness.simulated_org import settings_for
from tests.harness.truth import assert_matches_simulator
from tests.harness.waiting import eventually


@pytest.fixture
async def stack(clock: FakeClock) -> AsyncIterator[tuple[SimulatedOrg, Exporter]]:
    async with (
        serve_simulator(queues=12, agents=120, seed=7, clock=clock) as org,
        Exporter(settings_for(org), clock=clock) as exporter,
    ):
        await ready(exporter)
        yield org, exporter


async def test_metrics_equal_the_simulated_org_at_the_same_instant(stack, clock):
    org, exporter = stack
    _, families = await scrape(exporter.url)
    assert_matches_simulator(org, families, clock.time())
    assert sum(sum(org.model.queue_truth(q).waiting.values()) for q in org.model.queues) > 0, "a dull org proves little"

    for _ in range(3):  # the org moves on; so does the exporter, poll after poll
        await run_for(exporter, clock, 30)
        _, families = await scrape(exporter.url)
        assert_matches_simulator(org, families, clock.time())


async def test_scrapes_never_call_the_api(stack):
    org, exporter = stack
    before = org.api_requests()
    results = await asyncio.gather(*(scrape(exporter.url) for _ in range(100)))
    assert org.api_requests() == before
    assert len({text for text, _ in results}) == 1


async def test_250_queues_cost_3_observation_requests_a_poll(clock):
    # 250 member listings do not fit one minute's budget, and this clock stands still: lift the limit.
    async with (
        serve_simulator(queues=250, agents=400, seed=3, clock=clock, rate_limit=10**9) as org,
        Exporter(settings_for(org, rate_limit_per_minute=10**6), clock=clock) as exporter,
    ):
        await eventually(lambda: exporter.scheduler.ready)
        first = org.api_requests("queue_observations")
        await clock.advance(10)
        await eventually(lambda: org.api_requests("queue_observations") > first)
        await eventually(lambda: exporter.store.status("queues").last_success == clock.time())
        assert first == 3
        assert org.api_requests("queue_observations") == 6


async def test_promtool_finds_no_problem_in_a_real_page(stack, promtool):
    _, exporter = stack
    text, _ = await scrape(exporter.url)
    await assert_promtool_accepts(promtool, text)


async def test_users_scope_lists_every_active_user_with_their_state_in_one_pass(clock):
    async with (
        serve_simulator(queues=4, agents=250, seed=5, clock=clock) as org,
        Exporter(settings_for(org, agent_scope="users"), clock=clock) as exporter,
    ):
        families = await first_page(exporter)
        assert_matches_simulator(org, families, clock.time())  # every agent's routing status, from the listing
        assert set(exporter.store.snapshot.pollers) == {"directory", "queues", "agents", "performance", "teams"}
        assert exporter.store.status("agents").cost == 3  # 250 users, 100 a page, state included
        assert org.api_requests("users") == 3
