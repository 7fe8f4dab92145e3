"""Push over several OAuth clients of a simulated org (issue 12): topics spread over every client's own
channels, a client that fails takes down only its own channels and gets them back, and two
exporters on one client settle instead of evicting each other's channels in a loop.

A channel belongs to the client whose token made it; the simulated org enforces that (another
client's token gets a 404 on it) and each client's limit of channels.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.genesys.notifications import TOPIC_KINDS
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.simulator.faults import Fault
from tests.harness.scraping import by_labels, scrape
from tests.harness.simulated_org import settings_for, settings_of
from tests.harness.truth import all_pushed, matches_after_settling
from tests.harness.waiting import tick_for, tick_until

AGENTS = 2_100  # with 6 queues: 2,106 topics, three channels of 1,000, one on each client


@pytest.fixture
async def three_clients(clock: FakeClock) -> AsyncIterator[tuple[SimulatedOrg, Exporter]]:
    async with (
        serve_simulator(queues=6, agents=AGENTS, seed=11, clock=clock, clients=3) as org,
        Exporter(settings_of(org, push="auto", push_sweep_interval=600), clock=clock) as exporter,
    ):
        await tick_until(clock, lambda: exporter.scheduler.ready and all_pushed(org, exporter), within=180)
        yield org, exporter


def slot_items(exporter: Exporter, slot: int) -> set[tuple[str, str]]:
    assert exporter.push is not None
    data = exporter.push.data
    return {(kind, item) for kind in TOPIC_KINDS for item in data.items_of(slot, kind)}


def gave_way(exporter: Exporter, client: str) -> bool:
    """The exporter noticed another one on the client and polls that client's items instead."""
    return exporter.push is not None and exporter.push.pool.conflicts.in_conflict(client)


def owned(exporter: Exporter, items: set[tuple[str, str]]) -> bool:
    assert exporter.push is not None
    data = exporter.push.data
    return all(item in data.owned(kind) for kind, item in items)  # type: ignore[arg-type]


async def test_topics_spread_over_every_clients_own_channels(three_clients):
    org, exporter = three_clients
    assert exporter.push is not None
    for client in org.clients:
        channels = org.notifications.channels_of(client)
        assert 1 <= len(channels) <= 20, (client, len(channels))
        assert org.api_requests("notification_channels", client=client) >= 1  # made with its own token
        assert org.api_requests("notification_subscriptions", client=client) >= 1
    assert sum(len(c.topics) for client in org.clients for c in org.notifications.channels_of(client)) == 6 + AGENTS
    assert all(len(c.topics) <= 1_000 for client in org.clients for c in org.notifications.channels_of(client))
    exporter.page.refresh()
    _, families = await scrape(exporter.url)
    assert by_labels(families, "genesys_exporter_push_channels", "client") == {(c,): 1 for c in org.clients}
    assert by_labels(families, "genesys_exporter_push_planned_channels", "client") == {(c,): 1 for c in org.clients}
    assert by_labels(families, "genesys_exporter_push_conflict", "client") == {(c,): 0 for c in org.clients}


async def test_a_revoked_client_falls_back_and_recovers_while_the_others_stay_pushed(three_clients, clock):
    org, exporter = three_clients
    _, revoked, _ = org.clients
    assert exporter.push is not None
    others = slot_items(exporter, 0) | slot_items(exporter, 2)
    its_own = slot_items(exporter, 1)
    assert its_own and others and exporter.push.pool.plan.channels[1]
    org.revoke_tokens(revoked)
    await tick_until(clock, lambda: not owned(exporter, its_own), within=10)  # polled at once

    def back_while_the_others_stayed() -> bool:
        assert owned(exporter, others), "a client failing took the others' channels down"
        return all_pushed(org, exporter)

    await tick_until(clock, back_while_the_others_stayed, within=120)  # the revoked client's channel reopens
    assert org.notifications.channels_of(revoked)  # its slot is back on a channel of its own
    assert exporter.push.pool.reconnects["user_tokens_revoked"] == 1
    # Pushed again means reconciled: a poll of the slot's items repaired the gap first (that this makes
    # /metrics equal the org is test_push's to prove; at 2,100 agents the comparison takes minutes).
    assert not exporter.push.data.pending(1)


async def test_two_exporters_on_one_client_do_not_evict_each_other_in_a_loop(clock):
    async with serve_simulator(queues=6, agents=60, seed=11, clock=clock) as org:
        org.notifications.max_channels = 1  # room for one channel: each new one evicts the other's
        settings = settings_for(org, push="auto", push_sweep_interval=600)
        async with Exporter(settings, clock=clock) as first:
            await tick_until(clock, lambda: first.scheduler.ready and all_pushed(org, first), within=120)
            async with Exporter(settings, clock=clock) as second:
                exporters = (first, second)

                def evictions() -> int:
                    return sum(e.push.pool.reconnects["another_channel_subscribed"] for e in exporters if e.push)

                await tick_until(clock, lambda: any(gave_way(e, org.client_id) for e in exporters), within=120)
                settled = evictions()
                assert settled <= 6
                await tick_for(clock, 300)  # five minutes on: no more fighting
                assert evictions() == settled
                degraded = [e for e in exporters if gave_way(e, org.client_id)]
                assert len(degraded) == 1
                loser = degraded[0]
                winner = second if loser is first else first
                assert loser.push is not None and not loser.push.data.owned("agents")  # polled
                assert all(status.up for status in loser.store.snapshot.pollers.values())
                loser.page.refresh()
                _, families = await scrape(loser.url)
                assert by_labels(families, "genesys_exporter_push_conflict", "client") == {(org.client_id,): 1}
                assert by_labels(families, "genesys_exporter_push_channels", "client") == {(org.client_id,): 0}
                routing = by_labels(families, "genesys_agent_routing_status_code", "user_id")
                assert {agent for (agent,) in routing} == set(org.model.agents)  # every agent, polled
                waiting = by_labels(families, "genesys_queue_waiting_interactions", "queue_id", "media_type")
                assert {queue for queue, _ in waiting} == set(org.model.queues)
                assert len(org.notifications.channels_of(org.client_id)) == 1
                await matches_after_settling(clock, org, winner)


async def test_a_429_storm_on_one_clients_channels_leaves_the_others_pushed_then_it_catches_up(clock):
    async with serve_simulator(queues=6, agents=AGENTS, seed=11, clock=clock, clients=3) as org:
        _, stormed, _ = org.clients
        org.faults.arm(Fault("status", "notification_channels", status=429, retry_after=5, limit=6, client=stormed))
        async with Exporter(settings_of(org, push="auto", push_sweep_interval=600), clock=clock) as exporter:
            assert exporter.push is not None
            others = (0, 2)
            await tick_until(clock, lambda: all(exporter.push.data.items_of(i, "agents") for i in others), within=60)
            assert org.faults.fired.get("status", 0) >= 1 and not org.notifications.channels_of(stormed)
            await tick_until(clock, lambda: exporter.scheduler.ready and all_pushed(org, exporter), within=180)
            assert org.faults.fired["status"] == 6  # it kept asking, within its Retry-After, until it got one
            assert org.rate_limited == 0  # no client ever went past its real limit
            assert all(len(org.notifications.channels_of(client)) == 1 for client in org.clients)


async def test_topics_one_client_is_refused_move_to_the_others_channels(clock):
    """A client whose role lacks a permission: its topics come back Rejected, and the other clients'
    channels take them, so the org stays pushed whole rather than partly polled."""
    async with serve_simulator(queues=6, agents=AGENTS, seed=11, clock=clock, clients=3) as org:
        _, refused, _ = org.clients
        org.faults.arm(Fault("reject", "notification_subscriptions", client=refused))
        async with Exporter(settings_of(org, push="auto", push_sweep_interval=600), clock=clock) as exporter:
            push = exporter.push
            assert push is not None
            await tick_until(clock, lambda: exporter.scheduler.ready and all_pushed(org, exporter), within=180)
            topics = push.telemetry().topics  # what genesys_exporter_push_topics shows, read at this instant
            assert topics[("agents", "live")] == AGENTS and topics[("agents", "rejected")] == 0
            assert org.faults.fired["reject"] >= 1  # it was refused, and its topics moved
            assert not push.pool.rejected("agents") and not push.pool.rejected("queues")
            assert not any(c.topics for c in org.notifications.channels_of(refused))
            subscribed = sum(len(c.topics) for client in org.clients for c in org.notifications.channels_of(client))
            assert subscribed == 6 + AGENTS
