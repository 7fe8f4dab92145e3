"""`genesys-exporter bench`: figures that speed and cost targets are judged by (printed, never asserted).

`scrape-load` runs the exporter against a simulated org in real time and lets many scrapers hit
`/metrics` at once while it polls: it reports latency percentiles, errors, and the API requests
the scrapes caused (there should be none beyond the pollers' own).

`cycle-cost` counts the API requests one cycle of each poller sends, against a simulated org of the
given size: it is what the rate budget must fit, so it decides how fresh each kind of data can be.
The rate limit is lifted for the count (cost does not depend on it) and time is frozen, so every
poller runs exactly one cycle.
"""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from collections import Counter

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.process import freeze_heap, tune_process
from exporter.simulator.api import serve_simulator
from exporter.sources.agent_directory import AGENTS
from exporter.tools.harness import rss_mib, settings_for


async def cycle_cost(queues: int, agents: int, scope: str = "members") -> dict[str, int]:
    """Requests per route for one cycle of every poller."""
    clock = FakeClock(start=time.time())
    async with serve_simulator(queues=queues, agents=agents, seed=1, clock=clock, rate_limit=10**9) as org:
        settings = settings_for(
            org, agent_scope=scope, rate_limit_per_minute=10**9, concurrency=32, request_timeout=300
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
    columns = ("directory", "queues", "agent_directory", "agents", "performance")
    print(f"{'queues':>7} {'agents':>7} | " + " ".join(f"{c:>15}" for c in columns) + " | measured in")
    for queues, agents in sizes:
        started = time.perf_counter()
        costs = asyncio.run(cycle_cost(queues, agents, scope))
        per_poller = {  # in the users scope the user listing is the agent poll: no agent directory
            "directory": costs.get("routing_queues", 0),
            "queues": costs.get("queue_observations", 0),
            "agent_directory": costs.get("queue_members", 0),
            "agents": costs.get("users", 0),
            "performance": costs.get("conversation_aggregates", 0),
        }
        print(
            f"{queues:>7} {agents:>7} | "
            + " ".join(f"{per_poller[c]:>15}" for c in columns)
            + f" | {time.perf_counter() - started:.1f} s"
        )


async def scrape_load(scrapers: int, seconds: float, queues: int, agents: int) -> dict[str, float]:
    """Concurrent scrapers in a closed loop for `seconds` while the exporter polls in real time."""
    import aiohttp

    async with serve_simulator(queues=queues, agents=agents, seed=1) as org:
        settings = settings_for(org)
        async with Exporter(settings) as exporter:
            version = 0
            while not exporter.page.ready:
                version = await exporter.store.wait_changed(version)
                await asyncio.sleep(0.1)  # the page renders a moment after the snapshot changes
            latencies: list[float] = []
            errors = 0
            polls_before = org.api_requests()
            deadline = time.perf_counter() + seconds
            connector = aiohttp.TCPConnector(limit=scrapers)
            async with aiohttp.ClientSession(connector=connector) as http:

                async def scraper() -> None:
                    nonlocal errors
                    while time.perf_counter() < deadline:
                        started = time.perf_counter()
                        try:
                            async with http.get(f"{exporter.url}/metrics", headers={"Accept-Encoding": "gzip"}) as r:
                                await r.read()
                                errors += r.status != 200
                        except aiohttp.ClientError:
                            errors += 1
                        latencies.append(time.perf_counter() - started)

                await asyncio.gather(*(scraper() for _ in range(scrapers)))
            # The pollers keep polling meanwhile; what matters is that scrapes add nothing to it.
            expected = _poller_requests(exporter, seconds)
            caused = org.api_requests() - polls_before
    latencies.sort()
    return {
        "scrapes": len(latencies),
        "errors": errors,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "api_requests": caused,
        "api_requests_expected": expected,
        "page_bytes": exporter.page.plain_bytes,
    }


def _poller_requests(exporter: Exporter, seconds: float) -> float:
    """What the pollers alone send in `seconds`: one cycle's cost times the cycles that fit."""
    costs = {"queues": 1, "agents": -(-len(exporter.store.snapshot[AGENTS]) // 100), "performance": 2}
    intervals = {name: status.interval for name, status in exporter.store.snapshot.pollers.items()}
    return sum(cost * (seconds // intervals[name] + 1) for name, cost in costs.items())


def print_scrape_load(scrapers: int, seconds: float) -> None:
    figures = asyncio.run(scrape_load(scrapers, seconds, queues=20, agents=1000))
    print(f"scrape load: {scrapers} concurrent scrapers for {seconds:.0f} s (gzip), 20 queues, 1,000 agents")
    print(
        f"  scrapes {figures['scrapes']:.0f}, errors {figures['errors']:.0f}, "
        f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, page {figures['page_bytes']:.0f} bytes"
    )
    print(
        f"  API requests meanwhile: {figures['api_requests']:.0f} "
        f"(the pollers' own schedule allows up to {figures['api_requests_expected']:.0f})"
    )


def python_heap_mib() -> tuple[float, float]:
    """Live Python allocations (tracemalloc) made by the exporter's code and by the simulator's, in MiB.

    The soak runs the simulated org in the same process, and the org keeps two days of history: RSS
    alone would blame the exporter for the simulator's ledger.
    """
    exporter = simulator = 0
    for stat in tracemalloc.take_snapshot().statistics("filename"):
        name = stat.traceback[0].filename
        if f"{os.sep}exporter{os.sep}simulator{os.sep}" in name:
            simulator += stat.size
        elif f"{os.sep}exporter{os.sep}" in name:
            exporter += stat.size
    return exporter / 2**20, simulator / 2**20


async def soak(cycles: int) -> list[tuple[int, float, int, int, float, float]]:
    """Queue cycles on a fake clock against the simulated org.

    Samples: (cycle, RSS MiB, asyncio tasks, open fds, exporter heap MiB, simulator heap MiB).
    """
    tracemalloc.start()
    clock = FakeClock(start=time.time())
    samples: list[tuple[int, float, int, int, float, float]] = []
    async with serve_simulator(queues=20, agents=200, seed=3, clock=clock) as org:
        settings = settings_for(org)
        async with Exporter(settings, clock=clock, render_debounce=0.0) as exporter:
            version = 0
            while not exporter.scheduler.ready:
                version = await exporter.store.wait_changed(version)
            freeze_heap()  # as `run` does once ready: what is frozen after it must not grow
            step = max(1, cycles // 10)
            for cycle in range(cycles + 1):
                if cycle % step == 0:
                    tasks, fds = len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd"))
                    samples.append((cycle, rss_mib(), tasks, fds, *python_heap_mib()))
                target = exporter.store.status("queues").last_success or 0  # type: ignore[union-attr]
                await clock.advance(10)
                for _ in range(400):  # the cycle's request lands in real time
                    status = exporter.store.status("queues")
                    if status is not None and (status.last_success or 0) > target:
                        break
                    await asyncio.sleep(0.001)
    tracemalloc.stop()
    return samples


def print_soak(cycles: int) -> None:
    tune_process()  # the process as `run` sets it up: frozen survivors of full collections included
    started = time.perf_counter()
    samples = asyncio.run(soak(cycles))
    print(
        f"soak: {cycles} queue cycles (fake clock, 10 s cadence = {cycles * 10 / 3600:.1f} simulated hours), "
        f"20 queues, 200 agents, {time.perf_counter() - started:.0f} s of wall time"
    )
    heading = ("cycle", "RSS MiB", "tasks", "open fds", "exporter heap MiB", "simulator heap MiB")
    print(" ".join(f"{h:>{w}}" for h, w in zip(heading, (7, 8, 6, 9, 18, 19), strict=True)))
    for cycle, rss, tasks, fds, ours, simulator in samples:
        print(f"{cycle:>7} {rss:>8.1f} {tasks:>6} {fds:>9} {ours:>18.2f} {simulator:>19.2f}")
