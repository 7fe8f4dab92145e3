"""Push that differs from what the exporter expects is found out and falls back to polling: a frame
that ends the channel, events of an unknown shape, a stream that silently loses changes. Each is
tried against the simulated org, whose faults produce them, on the fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.push.trust import RETRY_AFTER_SECONDS
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.simulator.faults import Fault
from tests.harness.scraping import by_labels, scrape
from tests.harness.simulated_org import settings_for
from tests.harness.truth import all_pushed, matches_after_settling
from tests.harness.waiting import tick_for, tick_until

SOCKET = "notification_socket"


@pytest.fixture
async def pushed(clock: FakeClock) -> AsyncIterator[tuple[SimulatedOrg, Exporter]]:
    async with (
        serve_simulator(queues=6, agents=60, seed=11, clock=clock) as org,
        Exporter(settings_for(org, push="auto"), clock=clock) as exporter,
    ):
        await tick_until(clock, lambda: exporter.scheduler.ready and all_pushed(org, exporter), within=120)
        yield org, exporter


async def test_a_result_404_frame_ends_the_channel_at_once_and_push_comes_back(pushed, clock):
    org, exporter = pushed
    assert exporter.push is not None
    org.faults.arm(Fault("result_404", SOCKET, limit=1))
    # The socket stays open and answers pings: only the frame says the channel is gone.
    waited = await tick_until(clock, lambda: exporter.push.pool.reconnects["result_404"] == 1, within=30)
    assert waited <= 2
    await tick_until(clock, lambda: all_pushed(org, exporter), within=30)
    await matches_after_settling(clock, org, exporter)


async def test_queue_events_of_an_unknown_shape_hand_the_queues_to_the_pollers_until_push_is_tried_again(pushed, clock):
    org, exporter = pushed
    assert exporter.push is not None
    trust = exporter.push.data.trust
    org.faults.arm(Fault("event_shape", SOCKET, topics="queues"))
    await tick_until(clock, lambda: trust.distrusted() == {"queues": "unreadable"}, within=60)
    polls = org.api_requests("queue_observations")
    await tick_for(clock, 30)
    assert org.api_requests("queue_observations") > polls, "the queues are polled"
    _, families = await scrape(exporter.url)
    assert by_labels(families, "genesys_exporter_push_distrusted", "kind", "why") == {("queues", "unreadable"): 1}
    assert by_labels(families, "genesys_exporter_push_topics", "kind", "state")[("queues", "distrusted")] == 6
    items = by_labels(families, "genesys_exporter_push_items", "kind", "source")
    assert items[("queues", "poll")] == 6 and items[("agents", "push")] == 60  # the agents' push is untouched
    assert by_labels(families, "genesys_exporter_push_malformed_events_total", "kind")[("queues",)] >= 10
    assert by_labels(families, "genesys_exporter_push_malformed_events_total", "kind")[("agents",)] == 0
    org.faults.clear()
    await tick_until(clock, lambda: trust.trusted("queues") and all_pushed(org, exporter), within=RETRY_AFTER_SECONDS)
    await matches_after_settling(clock, org, exporter)


async def test_agent_events_of_an_unknown_shape_hand_the_agents_to_the_pollers(pushed, clock):
    org, exporter = pushed
    assert exporter.push is not None
    org.faults.arm(Fault("event_shape", SOCKET, topics="agents"))
    await tick_until(clock, lambda: exporter.push.data.trust.distrusted() == {"agents": "unreadable"}, within=120)
    await tick_until(clock, lambda: not exporter.push.data.owned("agents"), within=5)
    assert len(exporter.push.data.owned("queues")) == 6


@pytest.mark.parametrize("kind", ["agents", "queues"])
async def test_a_stream_that_silently_loses_changes_is_found_by_the_audit_and_polled(pushed, clock, kind):
    org, exporter = pushed
    assert exporter.push is not None
    trust = exporter.push.data.trust
    org.faults.arm(Fault("drop", SOCKET, topics=kind))  # heartbeats go on: the channel looks healthy
    # Each poll that finds push wrong also repairs what it found: five distinct lost changes are needed,
    # and 60 agents change slowly. Each is counted once its channel has lived on for CONFIRM_SECONDS.
    await tick_until(clock, lambda: kind in trust.distrusted(), within=300)
    assert trust.distrusted() == {kind: "disagreeing"}
    exporter.page.refresh()
    _, families = await scrape(exporter.url)
    assert by_labels(families, "genesys_exporter_push_disagreements_total", "kind")[(kind,)] >= 5
    org.faults.clear()
    await tick_until(clock, lambda: all_pushed(org, exporter), within=RETRY_AFTER_SECONDS + 30)
    await matches_after_settling(clock, org, exporter)
