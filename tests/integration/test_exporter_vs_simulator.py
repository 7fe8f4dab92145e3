"""The whole exporter against the simulated org on 127.0.0.1, on a clock that moves only when told.

With time frozen between polls, `/metrics` must equal the simulator's own state at that instant.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.config import Settings
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.tools.harness import settings_for as tool_settings
from tests.integration.harness import eventually, run_for, settle


def settings_for(org: SimulatedOrg, **overrides: Any) -> Settings:
    """Cadences that divide the 30 s steps the tests take, so every poll lands on the instant compared.

    Polling only, unless a test says otherwise: these tests prove the safety net (polling, which push
    falls back to) at frozen instants; tests/integration/test_push.py proves push.
    """
    return tool_settings(org, log_level="info", **{"queue_interval": 10, "push": "off", **overrides})


@pytest.fixture
async def stack(clock: FakeClock) -> AsyncIterator[tuple[SimulatedOrg, Exporter]]:
    async with (
        serve_simulator(queues=12, agents=120, seed=7, clock=clock) as org,
        Exporter(settings_for(org), clock=clock) as exporter,
    ):
        await eventually(lambda: exporter.scheduler.ready)
        await settle(exporter)
        yield org, exporter


async def scrape(url: str) -> tuple[str, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return text, {f.name: f for f in text_string_to_metric_families(text)}


def by_labels(families: dict[str, Any], name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """Samples of one family by the given labels; {} when the family has no sample at all."""
    family = families.get(name.removesuffix("_total"))
    return {tuple(s.labels[k] for k in keys): s.value for s in family.samples} if family else {}


def assert_matches_simulator(
    org: SimulatedOrg, families: dict[str, Any], now: float, *, agents: bool = True, oldest_within: float = 0.002
) -> None:
    """Queue (and, when polled at the same instant, agent) series equal the org's state at `now`."""
    model = org.model
    waiting = by_labels(families, "genesys_queue_waiting_interactions", "queue_id", "media_type")
    interacting = by_labels(families, "genesys_queue_interacting_interactions", "queue_id", "media_type")
    available = by_labels(families, "genesys_queue_available_agents", "queue_id")
    statuses = by_labels(families, "genesys_queue_agents", "queue_id", "routing_status")
    oldest = by_labels(families, "genesys_queue_oldest_waiting_seconds", "queue_id", "media_type")
    members = by_labels(families, "genesys_queue_member_agents", "queue_id")
    assert {q for q, _ in waiting} == set(model.queues)
    for queue_id in model.queues:
        truth = model.queue_truth(queue_id)
        for media in model.queues[queue_id].media:
            assert waiting[(queue_id, media)] == truth.waiting[media]
            assert interacting[(queue_id, media)] == truth.interacting[media]
            if media in truth.oldest_waiting_since:
                assert oldest[(queue_id, media)] == pytest.approx(
                    now - truth.oldest_waiting_since[media], abs=oldest_within
                )
            else:
                assert (queue_id, media) not in oldest
        assert available[(queue_id,)] == truth.on_queue.get("IDLE", 0)
        for status in ("IDLE", "INTERACTING", "OFF_QUEUE", "NOT_RESPONDING", "COMMUNICATING"):
            assert statuses[(queue_id, status.lower())] == truth.statuses.get(status, 0)
        assert members[(queue_id,)] == truth.members
    if not agents:
        return
    routing = by_labels(families, "genesys_agent_routing_status", "user_id", "routing_status")
    assert {uid: status.upper() for uid, status in routing} == {a.id: a.routing_status for a in model.agents.values()}


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


async def test_promtool_finds_no_problem_in_a_real_page(stack):
    _, exporter = stack
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: `make tools` installs Debian's prometheus package")
    text, _ = await scrape(exporter.url)
    result = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


async def test_users_scope_lists_every_active_user_with_their_state_in_one_pass(clock):
    async with (
        serve_simulator(queues=4, agents=250, seed=5, clock=clock) as org,
        Exporter(settings_for(org, agent_scope="users"), clock=clock) as exporter,
    ):
        await eventually(lambda: exporter.scheduler.ready)
        await settle(exporter)
        _, families = await scrape(exporter.url)
        assert_matches_simulator(org, families, clock.time())  # every agent's routing status, from the listing
        assert set(exporter.store.snapshot.pollers) == {"directory", "queues", "agents", "performance"}
        assert exporter.store.status("agents").cost == 3  # 250 users, 100 a page, state included
        assert org.api_requests("users") == 3
