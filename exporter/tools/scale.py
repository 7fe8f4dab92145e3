"""`make bench`: the exporter against a large simulated org in its own process, and the naive design's cost.

The simulated org runs in a child process (its own core, its own per-token limit of 300 a minute);
the exporter runs here, as `genesys-exporter run` would, while four scrapers in a third process
fetch `/metrics` every 5 s. Data age is read from the snapshot the served page shows: for every series, how long ago the
request that measured it was answered, so render delay counts against freshness. Ages are taken
once every job has completed a cycle (steady state); the warm-up is reported apart.

Each job's floor is the shortest cycle its share of the budget allows (requests a cycle / requests
a second the planner gives it): the distance from measured age to floor is the scheduler's fault,
the floor itself is the API's limit.

The naive row measures, on the same org, the pattern of the usual tutorial scripts: one observation
request per queue (honouring 429s) and a render of the whole page on every scrape.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import itertools
import json
import math
import multiprocessing
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from exporter import logs, sources
from exporter.app import Exporter
from exporter.config import Settings
from exporter.genesys.endpoints import QUEUE_OBSERVATIONS
from exporter.genesys.queries import queue_observation_query
from exporter.metrics import Telemetry
from exporter.page import build_page
from exporter.process import freeze_heap, tune_process
from exporter.simulator.api import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from exporter.snapshot import Snapshot
from exporter.sources.agent_directory import AGENTS
from exporter.sources.agent_states import AGENT_STATES
from exporter.sources.performance import today
from exporter.sources.queue_directory import QUEUES
from exporter.sources.queue_states import QUEUE_STATES
from exporter.tools.harness import SimulatorProcess, percentile, simulator_process

SCRAPERS = 4
SCRAPE_EVERY = 5.0
AGED_JOBS = ("queues", "agents", "performance")  # the jobs whose data age the bench reports


@dataclass
class Figures:
    queues: int
    agents: int
    warmup_s: float = 0.0
    first_queue_data_s: float = math.nan
    first_agent_data_s: float = math.nan
    every_agent_s: float = math.nan  # from start until the agents' part shows a routing status for all
    states_lost: int = 0  # the largest fall, from one count to the next, of agents shown with a routing status
    scope: str = ""
    measured_s: float = 0.0
    ages: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # job -> (age, series) samples
    scrape_ms: list[float] = field(default_factory=list)
    render_s: dict[str, list[float]] = field(default_factory=dict)  # page segment -> its last build time, sampled
    requests: int = 0
    rate_limited: int = 0
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0
    plain_bytes: int = 0
    gzip_bytes: int = 0
    jobs: dict[str, tuple[float, float, int | None, float]] = field(default_factory=dict)  # conf, eff, cost, floor
    loop_lag_ms: list[float] = field(default_factory=list)  # how late a 100 ms sleep woke: the loop's stalls
    outside: dict[str, list[float]] = field(default_factory=dict)  # probe group -> seconds from change to /metrics
    events: int = 0  # notification events received while measured
    split: dict[str, int] = field(default_factory=dict)  # "agents push" -> count, ...
    gc_pauses_ms: list[float] = field(default_factory=list)  # full (generation 2) collections
    by_client: dict[str, tuple[int, int]] = field(default_factory=dict)  # OAuth client -> (requests, 429s)


async def scrape(url: str, seconds: float) -> list[float]:
    """Four scrapers, each every 5 s, asking for gzip as Prometheus does: latencies in ms."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(auto_decompress=False) as http:

        async def scraper(offset: float) -> None:
            await asyncio.sleep(offset)
            while time.monotonic() < deadline:
                began = time.perf_counter()
                async with http.get(url, headers={"Accept-Encoding": "gzip"}) as response:
                    await response.read()
                    response.raise_for_status()
                latencies.append((time.perf_counter() - began) * 1000)
                await asyncio.sleep(max(0.0, SCRAPE_EVERY - (time.perf_counter() - began)))

        await asyncio.gather(*(scraper(i * SCRAPE_EVERY / SCRAPERS) for i in range(SCRAPERS)))
    return latencies


async def until(condition: Callable[[], bool], every: float = 0.05) -> None:
    """Poll what the served page shows (it has no event to wait on, and a bench may poll)."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(every)


def weighted_percentile(samples: Iterable[tuple[float, int]], q: float) -> float:
    ordered = sorted(samples)
    total = sum(n for _, n in ordered)
    if not total:
        return math.nan
    seen = 0
    for value, n in ordered:
        seen += n
        if seen >= q * total:
            return value
    return ordered[-1][0]


def sample_ages(snapshot: Snapshot, now: float, figures: Figures, settings: Settings) -> None:
    for poll in sources.polls(settings):
        poller = poll.poller
        if poller.name in AGED_JOBS:
            for key in poller.refreshes:
                for part in snapshot[key].values():
                    figures.ages.setdefault(poller.name, []).append((now - part.taken_at, len(part.items)))


PROBED_AGENTS = 600  # per group: more than a run changes, each agent changed once
PROBE_QUEUES = 4  # queues unstaffed for the queue probes (their members take a break)


def probe_spec(exporter: Exporter, org_url: str, seconds: float) -> dict[str, object]:
    """What the outside probe changes: agents pushed and polled (as the exporter holds them now) and a few queues."""
    rng = random.Random(3)
    snapshot = exporter.store.snapshot
    pushed = exporter.push.data.owned("agents") if exporter.push is not None else frozenset()
    groups = {
        "pushed": sorted(pushed),
        "polled": sorted(set(snapshot[AGENTS]) - pushed),
    }
    owned_queues = exporter.push.data.owned("queues") if exporter.push is not None else frozenset()
    queue_pool = sorted(owned_queues) or sorted(snapshot[QUEUES])
    return {
        "metrics": f"{exporter.url}/metrics",
        "org": org_url,
        "seconds": seconds,
        "agents": {g: rng.sample(ids, min(PROBED_AGENTS, len(ids))) for g, ids in groups.items()},
        "queues": rng.sample(queue_pool, min(PROBE_QUEUES, len(queue_pool))),
        "day_start": today(exporter.settings, exporter.clock.time())[0].timestamp(),
    }


async def measure(
    org: SimulatorProcess, queues: int, agents: int, scope: str, minutes: float, rate_limit: int
) -> tuple[Figures, Snapshot]:
    url = org.url
    settings = Settings(
        client_id=org.client_id,
        client_secret=org.client_secret,
        api_url=url,
        listen="127.0.0.1:0",
        agent_scope=scope,
        rate_limit_per_minute=rate_limit,
        log_level="error",
        log_format="json",
    )
    figures = Figures(queues, agents, scope=scope)
    started, started_wall = time.monotonic(), time.time()
    async with Exporter(settings) as exporter:
        counter = await asyncio.create_subprocess_exec(  # outside, from the start: when every agent shows
            sys.executable,
            "-m",
            "exporter.tools.probe",
            "count",
            f"{exporter.url}/metrics",
            stdout=asyncio.subprocess.PIPE,
        )
        await until(lambda: bool(exporter.page.snapshot[QUEUE_STATES]))
        figures.first_queue_data_s = time.monotonic() - started
        await until(lambda: bool(exporter.page.snapshot[AGENT_STATES]))
        figures.first_agent_data_s = time.monotonic() - started
        await until(lambda: exporter.page.ready and _settled(exporter))
        figures.warmup_s = time.monotonic() - started
        freeze_heap()  # as `run` does once the exporter is ready
        prober = await asyncio.create_subprocess_exec(  # the outside observer, a process of its own
            sys.executable,
            "-m",
            "exporter.tools.probe",
            json.dumps(probe_spec(exporter, url, minutes * 60)),
            stdout=asyncio.subprocess.PIPE,
        )
        events_before = sum(exporter.push.data.events.values()) if exporter.push is not None else 0
        requests_before = sum(exporter.client.stats.requests.values())
        by_client_before = collections.Counter(exporter.client.stats.by_client)
        cpu_before = time.process_time()
        deadline = time.monotonic() + minutes * 60
        scrapers = await asyncio.create_subprocess_exec(  # out of process, as Prometheus is
            sys.executable,
            "-m",
            "exporter.tools.scale",
            f"{exporter.url}/metrics",
            str(minutes * 60),
            stdout=asyncio.subprocess.PIPE,
        )
        gc_started = 0.0

        def on_gc(phase: str, info: dict[str, int]) -> None:
            nonlocal gc_started
            if info.get("generation") == 2:
                if phase == "start":
                    gc_started = time.perf_counter()
                else:
                    figures.gc_pauses_ms.append((time.perf_counter() - gc_started) * 1000)

        gc.callbacks.append(on_gc)
        next_sample = time.monotonic()
        while time.monotonic() < deadline:
            began = time.perf_counter()
            await asyncio.sleep(0.1)
            figures.loop_lag_ms.append((time.perf_counter() - began - 0.1) * 1000)
            if time.monotonic() >= next_sample:
                sample_ages(exporter.page.snapshot, exporter.clock.monotonic(), figures, exporter.settings)
                for segment, seconds in exporter.page.segment_seconds.items():
                    figures.render_s.setdefault(segment, []).append(seconds)
                next_sample += SCRAPE_EVERY / SCRAPERS
        gc.callbacks.remove(on_gc)
        output, _ = await scrapers.communicate()
        figures.scrape_ms = json.loads(output)
        output, _ = await prober.communicate()  # waits for the slowest probes (polled agents) to land
        pushed = exporter.push.data.owned("agents") if exporter.push is not None else frozenset()
        for group, item, latency in json.loads(output)["latencies"]:  # agents grouped by how they are fed now
            name = ("pushed" if item in pushed else "polled") if group in ("pushed", "polled") else group
            figures.outside.setdefault(name, []).append(latency)
        if exporter.push is not None:
            figures.events = sum(exporter.push.data.events.values()) - events_before
            for (kind, source), n in exporter.push.telemetry().items.items():
                figures.split[f"{kind} {source}"] = n
        figures.measured_s = time.monotonic() - deadline + minutes * 60
        counter.terminate()
        output, _ = await counter.communicate()
        lines = (line.split() for line in output.decode().splitlines())
        counts = [(float(at) - started_wall, int(shown)) for at, shown in lines]
        # Every agent the directory has in scope by the end, each with a routing status on the page.
        figures.every_agent_s = first_reaching(counts, len(exporter.store.snapshot[AGENTS]))
        figures.states_lost = max((a - b for (_, a), (_, b) in itertools.pairwise(counts)), default=0)
        figures.cpu_s = time.process_time() - cpu_before
        figures.requests = sum(exporter.client.stats.requests.values()) - requests_before
        figures.rate_limited = exporter.budget.rate_limited_total
        sent = collections.Counter(exporter.client.stats.by_client)
        sent.subtract(by_client_before)
        for label, budget in exporter.budget.members.items():
            requests = sum(n for (_, _, client), n in sent.items() if client == label)
            figures.by_client[label] = (requests, budget.rate_limited_total)
        figures.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures.plain_bytes, figures.gzip_bytes = exporter.page.plain_bytes, exporter.page.gzip_bytes
        plan = exporter.scheduler.plan
        for name, status in sorted(exporter.store.snapshot.pollers.items()):
            cost = status.cost
            floor = plan.floor(name, cost) if cost else math.nan
            figures.jobs[name] = (status.configured_interval or status.interval, status.interval, cost, floor)
        return figures, exporter.page.snapshot


def first_reaching(counts: list[tuple[float, int]], target: int) -> float:
    return next((at for at, count in counts if count >= target), math.nan)


def _settled(exporter: Exporter) -> bool:
    """Push has subscribed what it planned (or there is no push): the steady state to measure."""
    if exporter.push is None:
        return True
    telemetry = exporter.push.telemetry()
    return bool(exporter.push.pool.plan.channels) and not any(
        n for (_, state), n in telemetry.topics.items() if state == "pending"
    )


async def naive(url: str, snapshot: Snapshot, seconds: float) -> dict[str, float]:
    """One observation request per queue, one after another, as tutorial scripts poll: no budget of
    its own, a 429 waits out its Retry-After and is retried."""
    answered = rate_limited = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        form = {"grant_type": "client_credentials"}
        basic = aiohttp.helpers.BasicAuth(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).encode()
        async with http.post(f"{url}/oauth/token", data=form, headers={"Authorization": basic}) as response:
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        queue_ids = iter(sorted(snapshot[QUEUES]) * 10)
        queue_id = next(queue_ids)
        while time.monotonic() < deadline:
            body = queue_observation_query([queue_id])
            async with http.post(f"{url}{QUEUE_OBSERVATIONS.path}", json=body, headers=headers) as response:
                await response.read()
                if response.status == 429:
                    rate_limited += 1
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
            answered += 1
            queue_id = next(queue_ids)
    renders = [build_page(snapshot, Telemetry())[2] for _ in range(3)]
    rate = answered / seconds
    return {
        "requests_per_poll": len(snapshot[QUEUES]),
        "rate_limited": rate_limited,
        "answered_per_min": rate * 60,
        "sweep_s": len(snapshot[QUEUES]) / rate if rate else math.inf,
        "scrape_ms": percentile(renders, 0.5) * 1000,
    }


def print_outside(figures: Figures, targets: dict[str, float]) -> None:
    """Change-to-/metrics figures from the outside probe, per group, against their targets."""
    floor = figures.jobs.get("agents", (0.0, 0.0, None, math.nan))[3]
    limits = {
        "queues": targets.get("outside_queues"),
        "pushed": targets.get("outside_pushed"),
        "polled": targets.get("outside_polled_floor", math.nan) * floor if "outside_polled_floor" in targets else None,
        "today agents": targets.get("outside_today"),
        "today queues": targets.get("outside_today"),
    }
    names = {"queues": "queue data", "today agents": "agents' today", "today queues": "queues' today"}
    split = ", ".join(f"{k} {v:,}" for k, v in sorted(figures.split.items()))
    print(f"  from outside (a change in the org until /metrics shows it){'; ' + split if split else ''}")
    for group in ("queues", "pushed", "polled", "today agents", "today queues"):
        ages = figures.outside.get(group)
        if not ages:
            continue
        lost = sum(1 for a in ages if math.isinf(a))
        p50, p95 = percentile(ages, 0.5), percentile(ages, 0.95)
        limit = limits.get(group)
        verdict = (
            "" if limit is None or math.isnan(limit) else f"  p95 <= {limit:.1f} {'ok' if p95 <= limit else 'MISSED'}"
        )
        name = names.get(group, f"{group} agents")
        print(
            f"    {name:>14}: p50 {p50:.1f} s, p95 {p95:.1f} s, max {max(ages):.1f} s ({len(ages)} changes"
            f"{f', {lost} never shown' if lost else ''}){verdict}"
        )
    if figures.events:
        print(f"  notification events {figures.events / figures.measured_s:.0f}/s")


def print_figures(figures: Figures, rate_limit: int, targets: dict[str, float]) -> None:
    budget = math.floor(rate_limit * 0.9)
    print(
        f"\n{figures.queues:,} queues, {figures.agents:,} agents, {rate_limit}/min limit ({budget} with 10% headroom); "
        f"{figures.measured_s / 60:.1f} min measured after a {figures.warmup_s:.0f} s warm-up "
        f"(every job once); {os.cpu_count()} cores"
    )
    print(
        f"  agent scope {figures.scope}; queue data on the page {figures.first_queue_data_s:.1f} s after start, "
        f"the first agent states {figures.first_agent_data_s:.1f} s after start, every agent's "
        f"{figures.every_agent_s:.1f} s after start; a state shown and then gone: "
        f"{max(figures.states_lost, 0)} agents at most"
    )
    header = ("job", "configured s", "effective s", "req/cycle", "floor s", "age p50", "age p95", "age max", "target")
    widths = (12, 12, 11, 9, 8, 8, 8, 8, 16)
    print("  " + " ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for job, (configured, effective, cost, floor) in figures.jobs.items():
        ages = figures.ages.get(job, [])
        p50, p95 = weighted_percentile(ages, 0.5), weighted_percentile(ages, 0.95)
        worst = max((a for a, _ in ages), default=math.nan)
        target = targets.get(job)
        verdict = ""
        if target is not None:
            limit = target * floor if job == "agents" and target < 5 else target
            verdict = f"p95 <= {limit:.0f} {'ok' if p95 <= limit else 'MISSED'}"
        cells = (job, f"{configured:.0f}", f"{effective:.1f}", str(cost), f"{floor:.1f}", f"{p50:.1f}", f"{p95:.1f}")
        print("  " + " ".join(f"{c:>{w}}" for c, w in zip((*cells, f"{worst:.1f}", verdict), widths, strict=True)))
    print_outside(figures, targets)
    per_minute = figures.requests / (figures.measured_s / 60)
    print(
        f"  requests/min {per_minute:.0f} ({per_minute / rate_limit:.0%} of {rate_limit}); "
        f"429s {figures.rate_limited}; "
        f"exporter CPU {figures.cpu_s / (figures.measured_s / 60):.1f} s/min; "
        f"peak RSS {figures.peak_rss_mib:.0f} MiB ({figures.peak_rss_mib * 2**20 / 1e6:.0f} MB)"
    )
    if len(figures.by_client) > 1:
        print(
            "  per OAuth client: "
            + "; ".join(
                f"{label} {requests / (figures.measured_s / 60):.0f} requests/min, {limited} 429s"
                for label, (requests, limited) in figures.by_client.items()
            )
        )
    print(
        f"  /metrics {figures.plain_bytes / 1e6:.1f} MB plain, {figures.gzip_bytes / 1e6:.2f} MB gzip; "
        f"scrape p50 {percentile(figures.scrape_ms, 0.5):.1f} ms, p99 {percentile(figures.scrape_ms, 0.99):.1f} ms "
        f"({len(figures.scrape_ms)} scrapes); page segment builds (a worker thread) "
        + ", ".join(
            f"{name} p50 {percentile(times, 0.5):.2f} s max {max(times):.2f} s"
            for name, times in sorted(figures.render_s.items())
        )
    )
    lag = figures.loop_lag_ms
    print(
        f"  event loop lag p50 {percentile(lag, 0.5):.1f} ms, p99 {percentile(lag, 0.99):.1f} ms, "
        f"max {max(lag, default=math.nan):.0f} ms; full GC passes {len(figures.gc_pauses_ms)}, "
        f"longest {max(figures.gc_pauses_ms, default=0.0):.0f} ms"
    )


async def run(
    queues: int, agents: int, scope: str, minutes: float, rate_limit: int, naive_seconds: float, clients: int = 1
) -> None:
    async with simulator_process(queues, agents, rate_limit, clients) as org:
        url = org.url
        figures, snapshot = await measure(org, queues, agents, scope, minutes, rate_limit)
        large = agents >= 10_000
        targets = (
            {
                "performance": 30.0,
                "outside_queues": 3.0,
                "outside_pushed": 3.0,
                "outside_polled_floor": 1.25,
                "outside_today": 30.0,
            }
            if large
            else {"outside_queues": 2.0, "outside_pushed": 2.0, "outside_polled": 2.0, "outside_today": 30.0}
        )
        print_figures(figures, rate_limit * clients, targets)  # the clients' limits together
        if naive_seconds:
            cost = await naive(url, snapshot, naive_seconds)
            print(
                f"  naive design on the same org: {cost['requests_per_poll']:,.0f} requests per queue poll "
                f"(ours: {figures.jobs['queues'][2]}); in {naive_seconds:.0f} s it got {cost['answered_per_min']:.0f} "
                f"answers/min and {cost['rate_limited']:.0f} 429s, so one sweep of every queue takes "
                f"{cost['sweep_s']:.0f} s (ours: {figures.jobs['queues'][1]:.0f} s); a render per scrape makes "
                f"each scrape take {cost['scrape_ms']:.0f} ms (ours p50: {percentile(figures.scrape_ms, 0.5):.1f} ms)"
            )


def main(
    sizes: list[tuple[int, int]],
    minutes: float,
    rate_limit: int = 300,
    naive_seconds: float = 60.0,
    scope: str | None = None,
    clients: int = 1,
) -> None:
    print("genesys-exporter bench scale: the simulated org in its own process, 4 scrapers every 5 s", flush=True)
    for queues, agents in sizes:  # each size in a fresh process: memory one kept must not count in the next's peak
        args = (queues, agents, minutes, rate_limit, naive_seconds if agents >= 10_000 else 0, scope, clients)
        child = multiprocessing.get_context("spawn").Process(target=run_size, args=args)
        child.start()
        child.join()


def run_size(
    queues: int,
    agents: int,
    minutes: float,
    rate_limit: int,
    naive_seconds: float,
    scope: str | None,
    clients: int = 1,
) -> None:
    logs.configure("console", "error")  # a spawned process: the CLI's set-up is not inherited
    tune_process()
    scope = scope or Settings.model_fields["agent_scope"].default  # what users run unless told
    asyncio.run(run(queues, agents, scope, minutes, rate_limit, naive_seconds, clients))
    sys.stdout.flush()


if __name__ == "__main__":  # the scrapers' own process: python -m exporter.tools.scale URL SECONDS
    print(json.dumps(asyncio.run(scrape(sys.argv[1], float(sys.argv[2])))))
