"""A start shows each agent's info line once, with its labels as they stay: a label shown before its
source has ended a pass (half an agent's queues, no team yet) would be a series of its own in the
operator's Prometheus, dead as soon as the label is known."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.simulator.api import serve_simulator
from exporter.simulator.faults import Fault
from exporter.sources.agent_directory import AGENTS
from tests.harness.exporter_time import settled
from tests.harness.scraping import scrape
from tests.harness.simulated_org import settings_for
from tests.harness.waiting import eventually


async def test_a_start_shows_each_agents_info_once_with_its_final_labels(clock: FakeClock):
    async with serve_simulator(queues=12, agents=120, seed=6, clock=clock) as org:
        # Slow member and team listings: the first passes span many scrapes, as at 50,000 agents.
        org.faults.arm(Fault("slow", route="queue_members", delay=0.05))
        org.faults.arm(Fault("slow", route="team_members", delay=0.05))
        async with Exporter(settings_for(org), clock=clock) as exporter:
            shown: dict[str, set[tuple[tuple[str, str], ...]]] = defaultdict(set)
            mid_pass = False
            while not exporter.scheduler.ready:
                exporter.page.refresh()
                _, families = await scrape(exporter.url)
                info = families.get("genesys_agent_info")
                for sample in info.samples if info else ():
                    shown[sample.labels["user_id"]].add(tuple(sorted(sample.labels.items())))
                passes = [exporter.store.status(name) for name in ("agent_directory", "teams")]
                mid_pass |= bool(exporter.store.snapshot[AGENTS]) and any(not s or s.up is None for s in passes)
                await asyncio.sleep(0.02)
            await settled(exporter)
            await eventually(lambda: len(exporter.store.snapshot[AGENTS]) == len(org.model.agents))
            exporter.page.refresh()
            _, families = await scrape(exporter.url)
            final = {
                s.labels["user_id"]: tuple(sorted(s.labels.items())) for s in families["genesys_agent_info"].samples
            }
    assert mid_pass, "the slow listings should have spanned scrapes with agents listed and a label source mid-pass"
    assert set(final) == set(org.model.agents)
    assert any(dict(labels).get("queue_ids") for labels in final.values())
    assert any(dict(labels).get("team") for labels in final.values())
    provisional = {uid: seen - {final[uid]} for uid, seen in shown.items() if seen - {final[uid]}}
    assert not provisional, f"{len(provisional)} agents were shown with labels they lost"
