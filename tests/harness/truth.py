"""/metrics against the simulated org's own state: what the integration tests call equal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.simulator.api import SimulatedOrg
from exporter.sources.agent_states import ROUTING_CODES
from tests.harness.scraping import by_labels, scrape
from tests.harness.waiting import tick_for, tick_until


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
    routing = by_labels(families, "genesys_agent_routing_status_code", "user_id")
    status_of = {code: status.upper() for status, code in ROUTING_CODES.items()}
    assert {uid: status_of[code] for (uid,), code in routing.items()} == {
        a.id: a.routing_status for a in model.agents.values()
    }


def all_pushed(org: SimulatedOrg, exporter: Exporter) -> bool:
    """Push owns every agent and every queue of the org: none of them is left to polling."""
    push = exporter.push
    assert push is not None
    return push.data.owned("agents") == frozenset(org.model.agents) and push.data.owned("queues") == frozenset(
        org.model.queues
    )


async def matches_after_settling(clock: FakeClock, org: SimulatedOrg, exporter: Exporter) -> None:
    """Once everything is pushed again, /metrics equals the org.

    The org never stands still and a queue topic publishes at most once a second, so the comparison
    is made at an instant when the org has published every change (then fake time holds while the
    sockets carry it, in real time): each instant a change is still unpublished is skipped. The
    oldest wait is aged every two seconds, so it is compared to 2.1 s.
    """
    await tick_until(clock, lambda: all_pushed(org, exporter), within=120)
    assert exporter.push is not None
    failure: AssertionError | None = None
    for _ in range(300):
        await tick_for(clock, 0.2)
        if org.notifications.unpublished:
            continue
        org.model.advance(clock.time())
        for _ in range(10):  # the frames are on their way: real time, fake time held
            await asyncio.sleep(0.02)
            exporter.push.data.flush()
            exporter.page.refresh()
            _, families = await scrape(exporter.url)
            try:
                assert_matches_simulator(org, families, clock.time(), oldest_within=2.1)
                return
            except AssertionError as error:
                failure = error
    raise AssertionError(f"/metrics never equalled the org: {failure}")
