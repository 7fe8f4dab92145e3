"""Per-agent figures on /metrics against the simulated org's own ledger, across hours and midnight."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

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
        processed = clock.time() - org.analytics_delay  # what the last poll could count
        truth = ledger_truth(org, midnight, processed)
        assert sum(n for n, _ in truth.values()) > 100, "an hour of a 40-agent org closes many conversations"
        busy = {a.id for a in org.model.agents.values() if a.conversation is not None}
        assert busy, "some agents are mid-conversation: their open calls must not count"
        assert_leaderboard_matches(families, truth, set(org.model.agents))
        assert_parts_match(families, org, midnight, processed)
        assert ledger_truth(org, midnight, processed, "tHeld"), "an hour of voice calls has holds"


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
        yesterday = ledger_truth(org, datetime(2026, 5, 14, tzinfo=UTC).timestamp(), clock.time() - org.analytics_delay)
        assert_leaderboard_matches(before, yesterday, set(org.model.agents))
        await run_by_minutes(exporter, clock, 300)  # 00:04: a new day
        _, after = await scrape(exporter.url)
        midnight = datetime(2026, 5, 15, tzinfo=UTC).timestamp()
        today = ledger_truth(org, midnight, clock.time() - org.analytics_delay)
        assert_leaderboard_matches(after, today, set(org.model.agents))
        assert_parts_match(after, org, midnight, clock.time() - org.analytics_delay)
        closed_before = sum(by_labels(before, "genesys_agent_handled_interactions", "user_id").values())
        closed_after = sum(by_labels(after, "genesys_agent_handled_interactions", "user_id").values())
        assert closed_after < closed_before  # the day started again


async def test_figures_stay_exact_across_local_midnight_and_a_dst_change():
    # Berlin, 2026-03-29: local midnight is 23:00 UTC the day before; at 02:00 local the clocks jump
    # to 03:00, so that day has 23 hours. From 23:50 local the evening before to 03:05 local.
    berlin = ZoneInfo("Europe/Berlin")
    clock = FakeClock(start=datetime(2026, 3, 28, 23, 50, tzinfo=berlin).timestamp())
    async with (
        serve_simulator(queues=4, agents=30, seed=6, clock=clock) as org,
        Exporter(settings_for(org, timezone="Europe/Berlin", agent_metrics="all"), clock=clock) as exporter,
    ):
        await eventually(lambda: exporter.scheduler.ready)
        midnight = datetime(2026, 3, 29, tzinfo=berlin).timestamp()
        await run_by_minutes(exporter, clock, midnight - clock.time() + 240)  # 00:04 local
        _, after_midnight = await scrape(exporter.url)
        truth = ledger_truth(org, midnight, clock.time() - org.analytics_delay)
        assert_leaderboard_matches(after_midnight, truth, set(org.model.agents))
        after_dst = datetime(2026, 3, 29, 3, 5, tzinfo=berlin).timestamp()
        assert after_dst - midnight == 2 * 3600 + 5 * 60  # 03:05 is two hours and five minutes in
        await run_by_minutes(exporter, clock, after_dst - clock.time())
        _, families = await scrape(exporter.url)
        truth = ledger_truth(org, midnight, clock.time() - org.analytics_delay)
        assert sum(n for n, _ in truth.values()) > 50
        assert_leaderboard_matches(families, truth, set(org.model.agents))
        assert_parts_match(families, org, midnight, clock.time() - org.analytics_delay)
