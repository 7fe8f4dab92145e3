"""Many cycles against a simulated org that enforces its per-token limit: the planner keeps every job
inside it (zero 429s) by stretching the agent cadence, and queues keep theirs."""

from __future__ import annotations

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.simulator.api import serve_simulator
from tests.harness.exporter_time import landed, run_for
from tests.harness.simulated_org import settings_for
from tests.harness.waiting import eventually


async def test_twenty_minutes_of_cycles_over_budget_end_with_zero_429s(clock: FakeClock):
    # 20 queues, 900 agents, 60 requests/min (54 with headroom). Asked for: queues 1 per 5 s (12/min),
    # agents 9 per 2 s (270/min), today's figures 2 per 30 s, members 20 per 600 s: 5 times the budget.
    settings = {"rate_limit_per_minute": 60, "queue_interval": 5, "agent_interval": 2, "performance_interval": 30}
    async with (
        serve_simulator(queues=20, agents=900, seed=2, clock=clock, rate_limit=60) as org,
        Exporter(settings_for(org, **settings), clock=clock) as exporter,
    ):
        # 20 fake minutes, a second at a time, each second's answers in before the next
        await run_for(exporter, clock, 1200, wait=landed)
        await eventually(lambda: exporter.store.status("queues").up is not None)

        assert org.rate_limited == 0
        assert exporter.budget.rate_limited_total == 0
        pollers = exporter.store.snapshot.pollers
        assert all(status.up for status in pollers.values()), pollers
        assert pollers["queues"].interval == 5  # kept its cadence
        assert pollers["agents"].interval > 2 * 4  # stretched to what the budget leaves it
        assert pollers["agents"].cost == 9
        served = org.api_requests()
        assert served <= 54 * 20 + 54  # within the budget over the run (and its first window)
