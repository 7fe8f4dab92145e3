"""`genesys-exporter bench encodings`: what each way of exporting an agent's status costs a real Prometheus.

The same 50,000 agents change routing status and presence at a contact centre's pace, and each
encoding of those states is served on a page of its own, scraped every 15 s by a Prometheus of its
own (Debian's binary, on 127.0.0.1) for the whole run:

- `label`: one series per agent whose label is the state (`{routing_status="idle"} 1`); a change
  ends one series and starts another;
- `stateset`: one series per agent and state, 1 for the current one and 0 for the others;
- `coded`: one series per agent whose value is the state's code, decoded by the dashboards;
- `coded-no-presence`: the same, with presence left out (an opt-in family).

Every page also has the agents' info series (name, team, division), which the queries join to.
At the end it reads each Prometheus (head series, series created, RSS) and times the queries a
leaderboard needs: agents by status per team (instant, and as a range over the run), and the
on-queue agents of one team.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from exporter.exposition import family, labels
from exporter.tools.harness import free_port, prometheus_process, rss_mib_of, wait_for

ROUTING = ("off_queue", "idle", "interacting", "communicating", "not_responding")
PRESENCES = ("offline", "available", "on_queue", "away", "busy", "break", "meal", "meeting", "training", "idle")
ON_QUEUE_ROUTING = (("idle", 0.45), ("interacting", 0.45), ("communicating", 0.05), ("not_responding", 0.05))
OFF_QUEUE_PRESENCES = (("available", 0.3), ("break", 0.2), ("meal", 0.15), ("meeting", 0.15), ("offline", 0.2))
TEAMS = 200
SCRAPE_SECONDS = 15


@dataclass
class Org:
    """Agents whose states move: `changes` routing status or presence changes a second in all."""

    agents: int
    changes: float
    rng: random.Random = field(default_factory=lambda: random.Random(3))
    routing: list[str] = field(default_factory=list)
    presence: list[str] = field(default_factory=list)
    made: int = 0

    def __post_init__(self) -> None:
        for _ in range(self.agents):
            on = self.rng.random() < 0.75
            self.presence.append("on_queue" if on else self._pick(OFF_QUEUE_PRESENCES))
            self.routing.append(self._pick(ON_QUEUE_ROUTING) if on else "off_queue")

    def _pick(self, weighted: tuple[tuple[str, float], ...]) -> str:
        return self.rng.choices([s for s, _ in weighted], [w for _, w in weighted])[0]

    def step(self, seconds: float) -> None:
        """Changes for `seconds`: mostly routing status on queue, a fifth of them presence."""
        count = int(self.changes * seconds + self.rng.random())
        for _ in range(count):
            i = self.rng.randrange(self.agents)
            if self.rng.random() < 0.8 and self.presence[i] == "on_queue":
                now = self.routing[i]
                self.routing[i] = self._pick(tuple((s, w) for s, w in ON_QUEUE_ROUTING if s != now))
            elif self.presence[i] == "on_queue":
                self.presence[i], self.routing[i] = self._pick(OFF_QUEUE_PRESENCES), "off_queue"
            else:
                self.presence[i], self.routing[i] = "on_queue", "idle"
            self.made += 1


def info_family(org: Org) -> str:
    return family(
        "genesys_agent_info",
        "gauge",
        "Agent in scope (value 1).",
        (
            (labels(user_id=f"u{i:05d}", agent_name=f"Agent {i}", team=f"Team {i % TEAMS:03d}", division="Home"), 1)
            for i in range(org.agents)
        ),
    )


# Each state an agent has: its label, family name, every value it takes, and each agent's value now.
STATES: tuple[tuple[str, str, tuple[str, ...], Callable[[Org], list[str]]], ...] = (
    ("routing_status", "genesys_agent_routing_status", ROUTING, lambda org: org.routing),
    ("presence", "genesys_agent_presence", PRESENCES, lambda org: org.presence),
)


def label_states(org: Org) -> Iterator[str]:
    for label, name, _, now in STATES:
        samples = ((f'user_id="u{i:05d}",{label}="{value}"', 1) for i, value in enumerate(now(org)))
        yield family(name, "gauge", f"{label} as a label", samples)


def stateset_states(org: Org) -> Iterator[str]:
    for label, name, states, now in STATES:
        samples = (
            (f'user_id="u{i:05d}",{label}="{state}"', int(state == value))
            for i, value in enumerate(now(org))
            for state in states
        )
        yield family(name, "gauge", f"{label} as a state set", samples)


def coded_states(org: Org, presence: bool = True) -> Iterator[str]:
    for label, name, states, now in STATES[: 2 if presence else 1]:
        samples = ((f'user_id="u{i:05d}"', states.index(value)) for i, value in enumerate(now(org)))
        yield family(f"{name}_code", "gauge", f"{label} as a code", samples)


ENCODINGS: dict[str, Callable[[Org], Iterator[str]]] = {
    "label": label_states,
    "stateset": stateset_states,
    "coded": coded_states,
    "coded-no-presence": lambda org: coded_states(org, presence=False),
}
# What a leaderboard asks, per encoding: agents by routing status per team, and the on-queue agents of one team.
BY_STATUS = {
    "label": "count by (team, routing_status) (genesys_agent_routing_status"
    " * on (user_id) group_left (team) genesys_agent_info)",
    "stateset": "sum by (team, routing_status) (genesys_agent_routing_status"
    " * on (user_id) group_left (team) genesys_agent_info)",
    "coded": 'count_values by (team) ("code", genesys_agent_routing_status_code'
    " * on (user_id) group_left (team) genesys_agent_info)",
}
BY_STATUS["coded-no-presence"] = BY_STATUS["coded"]
ON_QUEUE_OF_TEAM = {
    "label": 'genesys_agent_routing_status{routing_status!="off_queue"}'
    ' and on (user_id) genesys_agent_info{team="Team 007"}',
    "stateset": 'genesys_agent_routing_status{routing_status!="off_queue"} == 1'
    ' and on (user_id) genesys_agent_info{team="Team 007"}',
    "coded": 'genesys_agent_routing_status_code > 0 and on (user_id) genesys_agent_info{team="Team 007"}',
}
ON_QUEUE_OF_TEAM["coded-no-presence"] = ON_QUEUE_OF_TEAM["coded"]


@dataclass
class Result:
    series_per_scrape: int = 0
    page_bytes: int = 0
    head_series: float = math.nan
    created_per_minute: float = math.nan
    rss_mib: float = math.nan
    queries: dict[str, tuple[float, int]] = field(default_factory=dict)  # name -> (seconds, rows)


class Pages:
    """One page per encoding, rendered once per scrape interval (as the exporter renders once per change)."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.bodies: dict[str, bytes] = {}
        self.render()

    def render(self) -> None:
        info = info_family(self.org)
        self.bodies = {name: (info + "".join(states(self.org))).encode() for name, states in ENCODINGS.items()}

    async def serve(self) -> tuple[web.AppRunner, int]:
        async def page(request: web.Request) -> web.Response:
            return web.Response(body=self.bodies[request.match_info["name"]])

        app = web.Application()
        app.router.add_get("/{name}", page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner, port


def prometheus_for(name: str, target: str) -> dict[str, Any]:
    """A Prometheus that scrapes one encoding's page every 15 s."""
    return {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s"},
        "scrape_configs": [
            {"job_name": "agents", "metrics_path": f"/{name}", "static_configs": [{"targets": [target]}]}
        ],
    }


async def prometheus_figures(http: aiohttp.ClientSession, url: str, pid: int, result: Result) -> float:
    """Head series and RSS into `result`; the series created so far."""
    async with http.get(f"{url}/metrics") as response:
        text = await response.text()
    created = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_tsdb_head_series "):
            result.head_series = float(line.split()[1])
        elif line.startswith("prometheus_tsdb_head_series_created_total "):
            created = float(line.split()[1])
    result.rss_mib = rss_mib_of(pid)
    return created


async def timed(http: aiohttp.ClientSession, url: str, path: str, **params: str) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(3):
        began = time.perf_counter()
        async with http.get(f"{url}/api/v1/{path}", params=params) as response:
            body: dict[str, Any] = await response.json()
        times.append(time.perf_counter() - began)
        if body.get("status") != "success":
            raise RuntimeError(f"{params['query']}: {body.get('error')}")
        rows = len(body["data"]["result"])
    return statistics.median(times), rows


async def measure(agents: int, changes: float, minutes: float) -> dict[str, Result]:
    org = Org(agents, changes)
    pages = Pages(org)
    runner, port = await pages.serve()
    results = {name: Result() for name in ENCODINGS}
    try:
        with tempfile.TemporaryDirectory(prefix="genesys-encodings-") as tmp:
            async with contextlib.AsyncExitStack() as stack, aiohttp.ClientSession() as http:
                servers = {
                    name: await stack.enter_async_context(
                        prometheus_process(prometheus_for(name, f"127.0.0.1:{port}"), Path(tmp) / name)
                    )
                    for name in ENCODINGS
                }
                for url, _ in servers.values():
                    await wait_for(http, f"{url}/-/ready", 60, "Prometheus")
                start, wall_start = time.monotonic(), time.time()
                created_at_start = {
                    name: await prometheus_figures(http, url, pid, results[name])
                    for name, (url, pid) in servers.items()
                }
                while time.monotonic() - start < minutes * 60:
                    began = time.monotonic()
                    org.step(SCRAPE_SECONDS)
                    await asyncio.to_thread(pages.render)
                    await asyncio.sleep(max(0.0, SCRAPE_SECONDS - (time.monotonic() - began)))
                measured = time.monotonic() - start
                for name, (url, pid) in servers.items():
                    result = results[name]
                    body = pages.bodies[name]
                    result.page_bytes = len(body)
                    result.series_per_scrape = body.count(b"\n") - body.count(b"\n#") - 1
                    created = await prometheus_figures(http, url, pid, result) - created_at_start[name]
                    result.created_per_minute = created / (measured / 60)
                    result.queries["by status per team (instant)"] = await timed(
                        http, url, "query", query=BY_STATUS[name]
                    )
                    result.queries["by status per team (range)"] = await timed(
                        http,
                        url,
                        "query_range",
                        query=BY_STATUS[name],
                        start=f"{wall_start:.0f}",
                        end=f"{time.time():.0f}",
                        step=str(SCRAPE_SECONDS),
                    )
                    result.queries["on-queue agents of a team"] = await timed(
                        http, url, "query", query=ON_QUEUE_OF_TEAM[name]
                    )
    finally:
        await runner.cleanup()
    print(f"{org.made:,} state changes over {minutes:g} min ({org.made / (minutes * 60):.0f}/s), {agents:,} agents")
    return results


def print_results(results: dict[str, Result]) -> None:
    print(
        f"{'encoding':<20}{'series/scrape':>14}{'page MB':>9}{'head series':>13}{'new series/min':>16}"
        f"{'RSS MiB':>9}  queries (median of 3, ms / rows)"
    )
    for name, r in results.items():
        queries = "; ".join(f"{q}: {s * 1000:.0f} / {rows}" for q, (s, rows) in r.queries.items())
        print(
            f"{name:<20}{r.series_per_scrape:>14,}{r.page_bytes / 1e6:>9.1f}{r.head_series:>13,.0f}"
            f"{r.created_per_minute:>16,.0f}{r.rss_mib:>9,.0f}  {queries}"
        )


def main(agents: int, changes: float, minutes: float) -> None:
    print_results(asyncio.run(measure(agents, changes, minutes)))
