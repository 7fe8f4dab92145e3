"""`genesys-exporter bench`: figures that speed and cost targets are judged by (printed, never asserted).

`cycle-cost` counts the API requests one cycle of each poller sends, against a simulated org of the
given size: it is what the rate budget must fit, so it decides how fresh each kind of data can be.
The rate limit is lifted for the count (cost does not depend on it) and time is frozen, so every
poller runs exactly one cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.config import Settings
from exporter.simulator.api import serve_simulator


async def cycle_cost(queues: int, agents: int, scope: str = "members") -> dict[str, int]:
    """Requests per route for one cycle of every poller."""
    clock = FakeClock(start=time.time())
    async with serve_simulator(queues=queues, agents=agents, seed=1, clock=clock, rate_limit=10**9) as org:
        settings = Settings(
            client_id=org.client_id,
            client_secret=org.client_secret,
            api_url=org.url,
            listen="127.0.0.1:0",
            agent_scope=scope,
            rate_limit_per_minute=10**9,
            concurrency=32,
            request_timeout=300,
        )
        async with Exporter(settings, clock=clock) as exporter:
            version = 0
            while not exporter.scheduler.ready:
                version = await exporter.store.wait_changed(version)
        counts: Counter[str] = Counter()
        for (route, status), n in org.requests.items():
            if status == 200 and route != "oauth_token":
                counts[route] += n
        return dict(counts)


def print_cycle_costs(sizes: list[tuple[int, int]], scope: str) -> None:
    print(f"requests per cycle (agent scope: {scope})")
    print(
        f"{'queues':>7} {'agents':>7} | {'directory':>9} {'queues':>7} {'agents':>7} {'performance':>11} | measured in"
    )
    for queues, agents in sizes:
        started = time.perf_counter()
        costs = asyncio.run(cycle_cost(queues, agents, scope))
        directory = costs.get("routing_queues", 0) + (costs.get("queue_members", 0) if scope == "members" else 0)
        users = costs.get("users", 0)
        if scope == "users":  # the directory lists users too; live state is the rest
            directory_users = -(-agents // 100)
            directory += directory_users
            users -= directory_users
        print(
            f"{queues:>7} {agents:>7} | {directory:>9} {costs.get('queue_observations', 0):>7} {users:>7} "
            f"{costs.get('conversation_aggregates', 0):>11} | {time.perf_counter() - started:.1f} s"
        )
