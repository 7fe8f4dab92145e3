"""Per-agent figures on /metrics against the simulated org's own ledger, across hours and midnight."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.simulator.api import SimulatedOrg, serve_simulator
from tests.harness.scraping import by_labels, scrape
from tests.harness.simulated_org import settings_for
from tests.harness.waiting import eventually, tick_for

# What AHT is made of: each part's ledger metric and the name its families carry.
PARTS = (("tTalk", "talk"), ("tHeld", "hold"), ("tAcw", "after_call_work"))


def ledger_truth(
    org: SimulatedOrg, since: float, until: float, metric: str = "tHandle"
) -> dict[str, tuple[int, float]]:
    """Count and seconds per agent of a t-metric (tHandle: closed conversations and handle seconds):
    its entries written in [since, until)."""
    truth: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for entry in org.model.ledger:
        if entry.metric == metric and entry.user_id and since <= entry.at < until:
            truth[entry.user_id][0] += 1
            truth[entry.user_id][1] += round(entry.value_ms or 0) / 1000
    return {uid: (int(n), s) for uid, (n, s) in truth.items()}


async def run_by_minutes(exporter: Exporter, clock: FakeClock, seconds: float) -> None:
    """Move time a minute at a time, letting each performance poll land before the next minute."""

    async def polled() -> None:
        await eventually(lambda: exporter.store.status("performance").last_success == clock.time())

    await tick_for(clock, seconds, every=60, after=polled)
    await eventually(lambda: exporter.page.current)


def assert_leaderboard_matches(families: dict, truth: dict[str, tuple[int, float]], agents: set[str]) -> None:
    handled = by_labels(families, "genesys_agent_handled_interactions", "user_id")
    seconds = by_labels(families, "genesys_agent_handle_seconds", "user_id")
    aht = by_labels(families, "genesys_agent_average_handle_seconds", "user_id")
    for uid in agents:
        count, total = truth.get(uid, (0, 0.0))
        assert handled[(uid,)] == count
        assert seconds[(uid,)] == pytest.approx(total)
        if count:
            assert aht[(uid,)] == pytest.approx(total / count)
        else:
            assert (uid,) not in aht  # nothing closed: no AHT sample, not 0


def assert_parts_match(families: dict, org: SimulatedOrg, since: float, until: float) -> None:
    """Talk, hold and after-call work per agent, count and seconds, as the ledger has them."""
    for metric, part in PARTS:
        truth = ledger_truth(org, since, until, metric)
        counts = by_labels(families, f"genesys_agent_{part}_interactions", "user_id")
        seconds = by_labels(families, f"genesys_agent_{part}_seconds", "user_id")
        for uid in org.model.agents:
            count, total = truth.get(uid, (0, 0.0))
            assert (counts[(uid,)], seconds[(uid,)]) == (count, pytest.approx(total)), (part, uid)


async def test_after_an_hour_handled_and_aht_equal_the_ledger():
    start = datetime(2026, 5, 14, 9, 0, tzinfo=UTC).timestamp()
    clock = FakeClock(start=start)
    async with (
        serve_simulator(queues=6, agents=40, seed=21, clock=clock) as org,
        Exporter(settings_for(org, agent_metrics="all"), clock=clock) as exporter,
    ):
        await eventually(lambda: exporter.scheduler.ready)
        await run_by_minutes(exporter, clock, 3600)
        _, families = await scrape(exporter.url)
        midnight = datetime(2026, 5, 14, tzinfo=UTC).timestamp()
        truth = ledger_truth(org, midnight, clock.time())
        assert sum(n for n, _ in truth.values()) > 100, "an hour of a 40-agent org closes many conversations"
        busy = {a.id for a in org.model.agents.values() if a.conversation is not None}
        assert busy, "some agents are mid-conversation: their open calls must not count"
        assert_leaderboard_matches(families, truth, set(org.model.agents))
        assert_parts_match(families, org, midnight, clock.time())
        assert ledger_truth(org, midnight, clock.time(), "tHeld"), "an hour of voice calls has holds"


async def test_figures_roll_over_at_local_midnight():
    start = datetime(2026, 5, 14, 23, 50, tzinfo=UTC).timestamp()
    clock = FakeClock(start=start)
    async with (
        serve_simulator(queues=4, agents=30, seed=4, clock=clock) as org,
        Exporter(settings_for(org, timezone="UTC", agent_metrics="all"), clock=clock) as exporter,
    ):
        await eventually(lambda: exporter.scheduler.ready)
        await run_by_minutes(exporter, clock, 540)  # 23:59
        _, before = await scrape(exporter.url)
        yesterday = ledger_truth(org, datetime(2026, 5, 14, tzinfo=UTC).timestamp(), clock.time())
        assert_leaderboard_matches(before, yesterday, set(org.model.agents))
        await run_by_minutes(exporter, clock, 300)  # 00:04: a new day
        _, after = await scrape(exporter.url)
        today = ledger_truth(org, datetime(2026, 5, 15, tzinfo=UTC).timestamp(), clock.time())
        assert_leaderboard_matches(after, today, set(org.model.agents))
        assert_parts_match(after, org, datetime(2026, 5, 15, tzinfo=UTC).timestamp(), clock.time())
        closed_before = sum(by_labels(before, "genesys_agent_handled_interactions", "user_id").values())
        closed_after = sum(by_labels(after, "genesys_agent_handled_interactions", "user_id").values())
        assert closed_after < closed_before  # the day started again
