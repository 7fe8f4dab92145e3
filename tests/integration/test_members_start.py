"""A start in the `members` scope: every user at once from the users listing, narrowed to the queues'
members when their listing ends; a member once shown is never missing on the way."""

from __future__ import annotations

import asyncio

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.simulator.faults import Fault
from tests.harness.exporter_time import settled
from tests.harness.scraping import by_labels, scrape
from tests.harness.simulated_org import settings_for
from tests.harness.waiting import eventually, tick_until


def members_of(org: SimulatedOrg) -> set[str]:
    return {agent.id for agent in org.model.agents.values() if agent.queues}


async def with_status(exporter: Exporter) -> set[str]:
    """The users a scrape shows a routing status for."""
    exporter.page.refresh()
    _, families = await scrape(exporter.url)
    return {uid for (uid,) in by_labels(families, "genesys_agent_routing_status_code", "user_id")}


def members_listed(exporter: Exporter) -> bool:
    status = exporter.store.status("agent_directory")
    return status is not None and status.last_success is not None


async def test_a_start_shows_every_user_before_the_member_listing_and_keeps_only_members_after_it(
    clock: FakeClock,
):
    async with serve_simulator(queues=12, agents=120, seed=6, clock=clock, others=15) as org:
        # A slow member listing spans many scrapes, as one request per queue does at thousands of queues.
        org.faults.arm(Fault("slow", route="queue_members", delay=0.05))
        members, users = members_of(org), set(org.model.agents)
        assert len(users - members) == 15
        async with Exporter(settings_for(org), clock=clock) as exporter:
            await eventually(lambda: org.api_requests("users") > 0, failing="the users listing")
            seen: set[str] = set()
            everyone_before_the_members = False
            while not members_listed(exporter):
                shown = await with_status(exporter)
                if not members_listed(exporter):
                    everyone_before_the_members |= shown == users
                missing = seen & members - shown
                assert not missing, f"{len(missing)} members shown earlier went missing mid-start"
                seen |= shown
                await asyncio.sleep(0.02)
            await settled(exporter)
            assert await with_status(exporter) == members
            _, families = await scrape(exporter.url)
            assert {uid for (uid,) in by_labels(families, "genesys_agent_info", "user_id")} == members
    assert everyone_before_the_members, "every user should show with a state before the member listing ends"


async def test_a_start_with_the_queues_narrowed_shows_only_their_members(clock: FakeClock):
    async with serve_simulator(queues=12, agents=120, seed=6, clock=clock, others=15) as org:
        org.faults.arm(Fault("slow", route="queue_members", delay=0.05))
        first = sorted(org.model.queues)[0]
        its_members = {a.id for a in org.model.agents.values() if first in a.queues}
        async with Exporter(settings_for(org, queue_ids=(first,)), clock=clock) as exporter:
            while not members_listed(exporter):  # the users listing would show the whole org meanwhile
                assert await with_status(exporter) <= its_members
                await asyncio.sleep(0.02)
            await settled(exporter)
            assert await with_status(exporter) == its_members


async def test_with_push_the_start_listing_has_the_first_window_and_push_polls_its_agents_after_it(
    clock: FakeClock,
):
    # 4,000 users are 40 pages; push subscribes them as the pages land and reconciles them with as
    # many requests. Within 54 requests a minute, both at once, or the listing held to a job's first
    # cycle's cap, would leave its last pages for the next window; the listing alone fits in the first.
    async with serve_simulator(queues=6, agents=4000, seed=7, clock=clock, rate_limit=60) as org:
        users = set(org.model.agents)
        async with Exporter(settings_for(org, push="auto"), clock=clock) as exporter:
            assert exporter.push is not None
            reconciled_early = False

            def pushed() -> frozenset[str]:  # agents push has polled since subscribing them, and keeps
                assert exporter.push is not None
                return exporter.push.data.owned("agents")

            async def everyone_shown() -> bool:
                nonlocal reconciled_early
                shown = await with_status(exporter)
                reconciled_early |= bool(pushed()) and shown != users
                return shown == users

            took = await tick_until(clock, everyone_shown, within=120, every=1, after=lambda: settled(exporter))
            assert took < 60, f"every user showed {took:.0f} s after the start, not within the first window"
            assert not reconciled_early, "push polled agents while the listing was still giving their states"
            await tick_until(clock, lambda: pushed() == users, within=180, every=1, after=lambda: settled(exporter))
