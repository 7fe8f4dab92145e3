"""Push against the simulated org: changes reach /metrics through notification channels, and every
fault of the sockets is survived with nothing false and nothing lost once it has cleared.

The fake clock moves only when told (`tick_for`, `tick_until`): the simulator's ticker and heartbeats, the channel
watchdogs and the pollers all run on it; sockets and requests are real, on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.simulator.faults import Fault
from exporter.sources.agent_states import PRESENCE_CODES
from tests.harness.scraping import by_labels, scrape
from tests.harness.simulated_org import settings_for
from tests.harness.truth import all_pushed, matches_after_settling
from tests.harness.waiting import tick_for, tick_until


async def scenario(org: SimulatedOrg, **body: Any) -> Any:
    async with aiohttp.ClientSession() as session, session.post(f"{org.url}/__admin/scenario", json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


@pytest.fixture
async def pushed(clock: FakeClock) -> AsyncIterator[tuple[SimulatedOrg, Exporter]]:
    async with (
        serve_simulator(queues=6, agents=60, seed=11, clock=clock) as org,
        Exporter(settings_for(org, push="auto", push_sweep_interval=60, agent_metrics="all"), clock=clock) as exporter,
    ):
        await tick_until(clock, lambda: exporter.scheduler.ready and all_pushed(org, exporter), within=120)
        yield org, exporter


async def shows(exporter: Exporter, check: Callable[[dict[str, Any]], bool]) -> bool:
    """A scrape of a page rebuilt now (not on its own schedule) shows what `check` wants."""
    exporter.page.refresh()
    _, families = await scrape(exporter.url)
    return check(families)


async def until_metrics(clock: FakeClock, exporter: Exporter, check: Callable[[dict[str, Any]], bool]) -> float:
    """Tick fake time until a scrape of /metrics shows what `check` wants; the fake seconds it took."""
    return await tick_until(clock, lambda: shows(exporter, check), within=30)


def an_agent_on_queue(org: SimulatedOrg) -> str:
    return next(a.id for a in sorted(org.model.agents.values(), key=lambda a: a.id) if a.presence == "ON_QUEUE")


async def test_a_status_change_reaches_metrics_through_push_without_a_poll(pushed, clock):
    org, exporter = pushed
    polls = org.api_requests("users")
    agent = an_agent_on_queue(org)
    changed = await scenario(org, action="presence", agent=agent, presence="BREAK")
    waited = await until_metrics(
        clock,
        exporter,
        lambda f: by_labels(f, "genesys_agent_presence_code", "user_id").get((agent,)) == PRESENCE_CODES["break"],
    )
    assert waited <= 2.0, f"pushed change took {waited} fake seconds"
    assert changed["presence"] == "BREAK"
    assert org.api_requests("users") == polls, "the change came by push, not by a poll"
    _, families = await scrape(exporter.url)
    assert by_labels(families, "genesys_exporter_push_items", "kind", "source") == {
        ("agents", "push"): 60,
        ("agents", "poll"): 0,
        ("queues", "push"): 6,
        ("queues", "poll"): 0,
    }
    assert by_labels(families, "genesys_exporter_push_channels")[()] == 1
    assert by_labels(families, "genesys_exporter_push_events_total", "kind")[("agents",)] >= 1


async def test_pushed_metrics_equal_the_org_as_it_moves(pushed, clock):
    org, exporter = pushed
    for _ in range(3):
        await tick_for(clock, 20)
        await matches_after_settling(clock, org, exporter)
    assert exporter.store.status("queues").up  # the pollers' status stays true: nothing left to poll, all fresh


async def test_a_queue_change_reaches_metrics_through_push(pushed, clock):
    org, exporter = pushed
    queue = sorted(org.model.queues)[0]
    polls = org.api_requests("queue_observations")
    answer = await scenario(org, action="wait", queue=queue, media="voice", count=3)
    want = answer["waiting"]["voice"]
    waited = await until_metrics(
        clock,
        exporter,
        lambda f: (
            by_labels(f, "genesys_queue_waiting_interactions", "queue_id", "media_type").get((queue, "voice")) == want
        ),
    )
    assert waited <= 2.5
    assert org.api_requests("queue_observations") == polls


@pytest.mark.parametrize(
    "fault",
    [
        Fault("silent", "notification_socket", limit=1),
        Fault("closing", "notification_socket", delay=0.0, limit=1),
        Fault("evict", "notification_socket", limit=1),
        Fault("duplicate", "notification_socket"),
        Fault("reorder", "notification_socket"),
        Fault("lag", "notification_socket", delay=3.0),
    ],
    ids=lambda f: f.kind,
)
async def test_each_socket_fault_is_survived_with_nothing_false_after_it(pushed, clock, fault):
    org, exporter = pushed
    org.faults.arm(fault)
    await tick_for(clock, 90)  # a silent socket is declared dead after 60 s; the others act at once
    org.faults.clear()
    await tick_for(clock, 10)
    await matches_after_settling(clock, org, exporter)
    assert exporter.push is not None
    trust = exporter.push.data.trust
    assert trust.distrusted() == {}, "a fault the service really has must not cost push its trust"
    assert trust.disagreements == {} and trust.compared["agents"] > 0


async def test_a_silent_socket_falls_back_to_polling_and_reconciles_when_back(pushed, clock):
    org, exporter = pushed
    assert exporter.push is not None
    polls = org.api_requests("users")
    org.faults.arm(Fault("silent", "notification_socket", limit=1))
    # Dead 30 s after its last word: quiet 20 s, then a ping unanswered for 10 s (steps of 5 s).
    dead_after = await tick_until(clock, lambda: not exporter.push.data.owned("agents"), within=90)
    assert dead_after <= 40
    assert exporter.push.pool.reconnects["silent"] == 1
    await tick_until(clock, lambda: all_pushed(org, exporter), within=30)
    assert org.api_requests("users") > polls  # the fallback poll and the reconciliation poll
    await matches_after_settling(clock, org, exporter)


async def test_maintenance_closing_hands_over_without_a_gap(pushed, clock):
    org, exporter = pushed
    assert exporter.push is not None
    org.faults.arm(Fault("closing", "notification_socket", delay=30.0, limit=1))
    gaps = 0
    for _ in range(200):  # 40 fake seconds, past the close
        await tick_for(clock, 0.2)
        gaps += not all_pushed(org, exporter)
    assert gaps == 0
    assert exporter.push.pool.reconnects["maintenance"] == 1
    await matches_after_settling(clock, org, exporter)


async def test_revoked_tokens_close_the_sockets_and_push_recovers(pushed, clock):
    org, exporter = pushed
    assert exporter.push is not None
    org.revoke_tokens()
    await tick_until(clock, lambda: exporter.push.pool.reconnects["user_tokens_revoked"] >= 1, within=10)
    await tick_until(clock, lambda: all_pushed(org, exporter), within=30)
    await matches_after_settling(clock, org, exporter)


async def test_rejected_topics_are_polled_instead_and_reported(clock):
    async with serve_simulator(queues=6, agents=60, seed=11, clock=clock) as org:
        org.faults.arm(Fault("reject", "notification_subscriptions", limit=1))
        async with Exporter(settings_for(org, push="auto", push_sweep_interval=60), clock=clock) as exporter:
            await tick_until(clock, lambda: exporter.scheduler.ready, within=120)
            await tick_for(clock, 40)
            assert exporter.push is not None
            _, families = await scrape(exporter.url)
            topics = by_labels(families, "genesys_exporter_push_topics", "kind", "state")
            assert topics[("queues", "rejected")] + topics[("agents", "rejected")] > 0
            org.model.advance(clock.time())
            await tick_for(clock, exporter.settings.queue_interval + 1)
            exporter.page.refresh()
            _, families = await scrape(exporter.url)
            waiting = by_labels(families, "genesys_queue_waiting_interactions", "queue_id", "media_type")
            assert {q for q, _ in waiting} == set(org.model.queues)  # every queue still has data: polled
            # The role is given the permission (the fault is spent): the sweep plans the topics again.
            await tick_until(clock, lambda: all_pushed(org, exporter), within=90)


async def test_429_on_channel_creation_is_retried_within_the_budget(clock):
    async with serve_simulator(queues=6, agents=60, seed=11, clock=clock) as org:
        org.faults.arm(Fault("status", "notification_channels", status=429, retry_after=5, limit=3))
        async with Exporter(settings_for(org, push="auto"), clock=clock) as exporter:
            await tick_until(clock, lambda: exporter.scheduler.ready and all_pushed(org, exporter), within=120)
            assert org.rate_limited == 0


async def test_a_restart_takes_over_the_channels_it_left(clock):
    async with serve_simulator(queues=6, agents=60, seed=11, clock=clock) as org:
        for _ in range(3):
            async with Exporter(settings_for(org, push="auto"), clock=clock) as exporter:
                await tick_until(clock, lambda e=exporter: e.scheduler.ready and all_pushed(org, e), within=120)
        assert len(org.notifications.channels_of(org.client_id)) == 1


async def test_push_off_polls_as_before(clock):
    async with (
        serve_simulator(queues=6, agents=60, seed=11, clock=clock) as org,
        Exporter(settings_for(org, push="off"), clock=clock) as exporter,
    ):
        await tick_until(clock, lambda: exporter.scheduler.ready, within=120)
        assert exporter.push is None
        assert org.notifications.channels_of(org.client_id) == []


async def test_the_landing_page_shows_push_next_to_the_pollers_without_a_channel_id(pushed):
    org, exporter = pushed
    async with aiohttp.ClientSession() as session, session.get(f"{exporter.url}/") as response:
        page = await response.text()
    assert "<h2>Push</h2>" in page
    assert "1 of 1 notification channels connected" in page
    assert "<tr><td>agents</td><td>60</td><td>0</td>" in page
    channel_ids = [c.id for c in org.notifications.channels_of(org.client_id)]
    assert channel_ids and not any(cid in page for cid in channel_ids)
    text, _ = await scrape(exporter.url)
    assert not any(cid in text for cid in channel_ids)  # nor on /metrics


async def test_a_channel_lost_while_its_agents_wait_for_the_start_listing_is_noticed_at_once(clock):
    # Its agents' reconciliation waits for the listing (minutes on one client at 50,000 agents): a socket
    # that dies meanwhile must not leave the slot's items taken for pushed until then.
    async with (
        serve_simulator(queues=6, agents=60, seed=11, clock=clock) as org,
        Exporter(settings_for(org, push="auto"), clock=clock) as exporter,
    ):
        push = exporter.push
        assert push is not None
        with push.listing_first_states():  # before any tick: before any channel
            await tick_until(clock, lambda: push.telemetry().channels >= 1, within=60)
            assert not push.data.owned("agents"), "no agent is push's before its reconciliation"
            org.revoke_tokens()
            await tick_until(clock, lambda: push.pool.reconnects["user_tokens_revoked"] >= 1, within=10)
            await tick_until(clock, lambda: push.telemetry().channels >= 1, within=30)
            assert not push.data.owned("agents")
        await tick_until(clock, lambda: all_pushed(org, exporter), within=60)
