"""Freshness as a user sees it: change the simulated org, time how long until `/metrics` shows it.

Run in a process of its own (`python -m exporter.tools.probe SPEC`), apart from the exporter and the
org, like a supervisor watching a dashboard. Two kinds of change:

- an idle agent's presence, set through the org's scenario endpoint to Training, which takes them
  off queue: the probe is answered when the agent's `genesys_agent_routing_status_code` line says 0
  (off queue); an agent a conversation reached in the meantime (still interacting) is not counted;
- one more interaction waiting in a probe queue, a queue whose members were sent on a break at the
  start so that nobody answers it (`unstaff`, then `wait`); answered when the queue's
  `genesys_queue_waiting_interactions{media_type="voice"}` shows the count the org reported.

And one kind of change the org makes by itself: a conversation an agent closes (its wrap-up ends,
and tHandle is written). The probe asks the org for the latest closes every few seconds, with the
closed conversations the agent, and the queue in that media type, had today once it was; it is
answered when `genesys_agent_handled_interactions` (`genesys_queue_handled_interactions`) shows at
least that many, timed from the close in the org: today's figures as a supervisor waits for them,
the analytics pipeline's processing delay included.

The page is scraped as Prometheus does (gzip), the queue part (`collect[]=queues`) and the agent
part (`collect[]=agents`, inflated only as far as the family it reads) every 0.5 s each for states,
every 2 s for today's figures, so a figure holds up to that much of scrape spacing. A probe is timed
from just before the change to the end of the scrape that first showed it.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time
import zlib
from dataclasses import dataclass
from typing import Any

import aiohttp

AGENT_EVERY = 1.0  # seconds between two agent changes (pushed and polled agents in turn)
QUEUE_EVERY = 2.0
QUEUE_SCRAPE_EVERY = 0.5
PAGE_SCRAPE_EVERY = 0.5
GIVE_UP_AFTER = 900.0  # a probe not answered by then is reported as lost
_STATUS = re.compile(rb'^genesys_agent_routing_status_code\{user_id="([^"]+)"\} (\S+)$', re.M)
IDLE, OFF_QUEUE = "1", "0"  # routing status codes
_WAITING = re.compile(
    rb'^genesys_queue_waiting_interactions\{queue_id="([^"]+)"[^\n]*media_type="voice"\} (\S+)$', re.M
)
_AGENT_HANDLED = re.compile(rb'^genesys_agent_handled_interactions\{user_id="([^"]+)"\} (\S+)$', re.M)
_QUEUE_HANDLED = re.compile(
    rb'^genesys_queue_handled_interactions\{queue_id="([^"]+)"[^\n]*media_type="([^"]+)"\} (\S+)$', re.M
)
CLOSED_EVERY = 3.0  # seconds between two asks for the org's latest closes
CLOSED_PER_ASK = 2  # closes followed from each ask: a sample, not every close of a large org
TODAY_SCRAPE_EVERY = 2.0


@dataclass
class Pending:
    kind: str  # agent or queue
    group: str  # pushed or polled (agents), queue
    item: str
    want: str
    began: float
    at_least: bool = False  # a count that may have grown further by the time it shows


async def _scenario(http: aiohttp.ClientSession, org: str, **body: Any) -> Any:
    async with http.post(f"{org}/__admin/scenario", json=body) as response:
        response.raise_for_status()
        return await response.json()


async def _page(http: aiohttp.ClientSession, url: str, family: bytes) -> bytes:
    """The scraped page's text of one family, read and inflated only as far as it goes: the page is
    tens of megabytes at 50,000 agents, and this process shares the machine with what it measures,
    so it drops what comes before the family and hangs up once the family has ended."""
    start_mark, end_mark = b"# TYPE " + family + b" ", b"\n# HELP "
    async with http.get(url, headers={"Accept-Encoding": "gzip"}) as response:
        response.raise_for_status()
        gzipped = response.headers.get("Content-Encoding") == "gzip"
        inflate, text, begin = zlib.decompressobj(16 + zlib.MAX_WBITS), bytearray(), -1
        async for chunk in response.content.iter_chunked(1 << 18):
            more = inflate.decompress(chunk) if gzipped else chunk
            seen = len(text)  # what was searched already, but for a mark cut in two
            text += more
            if begin < 0:
                begin = text.find(start_mark)
                if begin < 0:
                    del text[: max(0, len(text) - len(start_mark))]
                    continue
                del text[:begin]
                begin, seen = 0, 0
            if text.find(end_mark, max(0, seen - len(end_mark))) >= 0:
                response.close()
                break
    return _family(bytes(text), start_mark)


def _family(text: bytes, start_mark: bytes) -> bytes:
    begin = text.find(start_mark)
    if begin < 0:
        return b""
    end = text.find(b"\n# HELP ", begin)
    return text[begin : end if end >= 0 else len(text)]


async def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Changes for `seconds`; each one's (group, item, latency), inf for one never seen."""
    metrics, org, seconds = spec["metrics"], spec["org"], float(spec["seconds"])
    groups: dict[str, list[str]] = spec["agents"]  # group (pushed, polled) -> agents to change
    queues: list[str] = spec["queues"]
    day_start = float(spec["day_start"])  # the exporter's today began then (epoch seconds)
    rng = random.Random(7)
    pending: list[Pending] = []
    done: list[tuple[str, str, float]] = []  # (kind/group, item, seconds)
    shown_status: dict[str, str] = {}  # agent -> their routing status code on the last page scraped
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for queue in queues:
            await _scenario(http, org, action="unstaff", queue=queue)
        deadline = time.monotonic() + seconds

        async def change_agents() -> None:
            turn = 0
            while time.monotonic() < deadline:
                idle = {g: [a for a in groups[g] if shown_status.get(a) == IDLE] for g in sorted(groups)}
                names = [g for g, agents in idle.items() if agents]
                if names:
                    group = names[turn % len(names)]
                    agent = rng.choice(idle[group])
                    groups[group].remove(agent)
                    began = time.time()
                    answer = await _scenario(http, org, action="presence", agent=agent, presence="TRAINING")
                    if answer["routing_status"] == "OFF_QUEUE":
                        pending.append(Pending("agent", group, agent, OFF_QUEUE, began))
                    turn += 1
                await asyncio.sleep(AGENT_EVERY)

        async def change_queues() -> None:
            turn = 0
            while queues and time.monotonic() < deadline:
                queue = queues[turn % len(queues)]
                began = time.time()
                answer = await _scenario(http, org, action="wait", queue=queue, media="voice", count=1)
                pending.append(Pending("queue", "queues", queue, str(answer["waiting"]["voice"]), began))
                turn += 1
                await asyncio.sleep(QUEUE_EVERY)

        async def follow_closes() -> None:
            since = time.time()
            while time.monotonic() < deadline:
                answer = await _scenario(
                    http, org, action="closed", since=since, day_start=day_start, limit=CLOSED_PER_ASK
                )
                for close in answer["closed"]:
                    at, queue = float(close["at"]), f"{close['queue']}/{close['media']}"
                    pending.append(
                        Pending("today agent", "today agents", close["user"], str(close["user_closed"]), at, True)
                    )
                    pending.append(Pending("today queue", "today queues", queue, str(close["queue_closed"]), at, True))
                since = float(answer["now"])
                await asyncio.sleep(CLOSED_EVERY)

        def reached(item: Pending, shown: str | None) -> bool:
            if shown is None:
                return False
            return float(shown) >= float(item.want) if item.at_least else shown == item.want

        async def watch(url: str, every: float, kind: str, family: bytes, pattern: re.Pattern[bytes]) -> None:
            while time.monotonic() < deadline or any(p.kind == kind for p in pending):
                started = time.monotonic()
                text = await _page(http, url, family)
                seen = time.time()
                # The last group is the value; the others name the item (a queue and media type: "q/voice").
                shown = {
                    b"/".join(groups[:-1]).decode(): groups[-1].decode().removesuffix(".0")
                    for groups in (m.groups() for m in pattern.finditer(text))
                }
                if kind == "agent":
                    shown_status.update(shown)
                for item in [p for p in pending if p.kind == kind]:
                    if reached(item, shown.get(item.item)):
                        pending.remove(item)
                        done.append((item.group, item.item, seen - item.began))
                    elif seen - item.began > GIVE_UP_AFTER:
                        pending.remove(item)
                        done.append((item.group, item.item, float("inf")))
                await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))

        await asyncio.gather(
            change_agents(),
            change_queues(),
            watch(
                f"{metrics}?collect[]=queues",
                QUEUE_SCRAPE_EVERY,
                "queue",
                b"genesys_queue_waiting_interactions",
                _WAITING,
            ),
            watch(
                f"{metrics}?collect[]=agents",
                PAGE_SCRAPE_EVERY,
                "agent",
                b"genesys_agent_routing_status_code",
                _STATUS,
            ),
            follow_closes(),
            watch(
                f"{metrics}?collect[]=agents",
                TODAY_SCRAPE_EVERY,
                "today agent",
                b"genesys_agent_handled_interactions",
                _AGENT_HANDLED,
            ),
            watch(
                f"{metrics}?collect[]=queues",
                TODAY_SCRAPE_EVERY,
                "today queue",
                b"genesys_queue_handled_interactions",
                _QUEUE_HANDLED,
            ),
        )
    return {"latencies": [[group, item, latency] for group, item, latency in done]}


async def count_agents_shown(metrics: str) -> None:
    """Every 2 s until stopped, scraped as Prometheus would, a line: the time (epoch seconds) and the
    agents whose routing status the agents' part shows. From the exporter's start: how soon all show."""
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        while True:
            text = await _page(http, f"{metrics}?collect[]=agents", b"genesys_agent_routing_status_code")
            shown = text.count(b"\ngenesys_agent_routing_status_code{")
            print(f"{time.time():.1f} {shown}", flush=True)
            await asyncio.sleep(2.0)


if __name__ == "__main__":
    if sys.argv[1] == "count":  # python -m exporter.tools.probe count METRICS_URL
        asyncio.run(count_agents_shown(sys.argv[2]))
    else:  # python -m exporter.tools.probe '{"metrics": ..., "org": ..., ...}'
        print(json.dumps(asyncio.run(probe(json.loads(sys.argv[1])))))
