"""`make bench-chain`: the whole chain a user runs, measured from outside: org -> exporter -> Prometheus -> queries.

A simulated org in its own process, the exporter as `genesys-exporter run` in another (the shipped
defaults, every OAuth client of the org), and Debian's real `prometheus` with the shipped scrape
jobs and rule files, all on 127.0.0.1. While the org's agents change status at their own rhythm,
probes change the org through its scenario endpoint and time until a Prometheus query shows it
(a queue's waiting count; an idle agent sent on training, off queue: either encoding of the
routing status, so the same bench measures a build before and after a change of encoding). At the end it reads
Prometheus as an operator would (its own metrics, the scrape jobs' samples and durations, the rule
groups) and runs every query of the shipped dashboards as Grafana would send it: instant queries
three times (median), time series panels as range queries over the whole run. It stops everything
it started, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.tools.dashboards import STEP_SECONDS, Query, dashboard_queries, regex_value
from exporter.tools.harness import (
    SimulatorProcess,
    free_port,
    percentile,
    prometheus_process,
    rss_mib_of,
    simulator_process,
    stop,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
RULES = sorted((ROOT / "deploy/prometheus/rules").glob("*.yml"))
PROBE_EVERY = 4.0  # seconds between two changes of each kind
POLL_EVERY = 0.5  # how often a probe asks Prometheus whether the change shows
PAGE_EVERY = 1.0  # how often the queue probe reads the exporter's queue part (megabytes) for the same change
GIVE_UP_AFTER = 180.0
ADDED = 10  # interactions a queue probe adds: more than the few that may abandon before they show


@dataclass
class Chain:
    org: SimulatorProcess
    exporter: str  # base URL
    exporter_pid: int
    prometheus: str  # base URL
    prometheus_pid: int
    http: aiohttp.ClientSession

    async def query(self, promql: str, **params: str) -> tuple[list[dict[str, Any]], float]:
        """An instant query (or a range query, given start/end/step): its result and the seconds it took.
        An error answer raises, with Prometheus's reason."""
        path = "query_range" if "step" in params else "query"
        began = time.perf_counter()
        async with self.http.get(f"{self.prometheus}/api/v1/{path}", params={"query": promql, **params}) as response:
            body = await response.json()
        took = time.perf_counter() - began
        if body.get("status") != "success":
            raise RuntimeError(f"{promql}: {body.get('error')}")
        return list(body["data"]["result"]), took

    async def value(self, promql: str) -> float | None:
        result, _ = await self.query(promql)
        return float(result[0]["value"][1]) if result else None

    async def scenario(self, **body: Any) -> Any:
        async with self.http.post(f"{self.org.url}/__admin/scenario", json=body) as response:
            response.raise_for_status()
            return await response.json()

    def prometheus_rss_mib(self) -> float:
        return rss_mib_of(self.prometheus_pid)


@dataclass
class Figures:
    queues: int
    agents: int
    clients: int
    ready_s: float = math.nan
    measured_s: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)  # queues / agents -> seconds
    queues_on_page: list[float] = field(default_factory=list)  # the queue changes until /metrics showed them
    jobs: dict[str, dict[str, float]] = field(default_factory=dict)  # job -> samples, duration...
    head_series: float = math.nan
    head_series_peak: float = math.nan
    new_series_per_minute: float = math.nan
    series_created: list[tuple[float, float]] = field(default_factory=list)  # (monotonic s, created total)
    rss_mib: float = math.nan
    rss_peak_mib: float = math.nan
    heap_mib: float = math.nan  # Prometheus's Go heap in use at the end: what it holds, the rest of its RSS is slack
    rule_groups: dict[str, list[float]] = field(default_factory=dict)  # group -> its evaluations seen, seconds
    agents_part_bytes: int = 0
    # dashboard, panel, kind, seconds with the org and exporter running, seconds with Prometheus alone, rows
    queries: list[tuple[str, str, str, float, float, int]] = field(default_factory=list)
    agent_events_per_s: float = math.nan
    families: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # agent family -> series, bytes, new/min
    agent_metrics: str = "default"
    gogc: int = 100  # Prometheus's


# The shipped compose (deploy/compose.yml) runs Prometheus v2.53.0, whose runtime sets the Go
# collector's GOGC to 50 where Go's default is 100
# (https://github.com/prometheus/prometheus/releases/tag/v2.53.0); Debian's 2.42 keeps Go's. The
# bench runs Debian's binary with the shipped stack's setting unless told otherwise.
SHIPPED_PROMETHEUS_GOGC = 50


@contextlib.asynccontextmanager
async def exporter_process(
    org: SimulatorProcess, work: Path, agent_metrics: str | None = None
) -> AsyncIterator[tuple[str, int]]:
    """`genesys-exporter run` as an operator starts it (the shipped defaults, the org's OAuth clients):
    its base URL and process id."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "EXPORTER_"))}
    env |= {
        "GENESYS_CLIENT_ID": org.client_id,
        "GENESYS_CLIENT_SECRET": org.client_secret,
        "GENESYS_API_URL": org.url,
        "EXPORTER_LISTEN": f"127.0.0.1:{port}",
        "EXPORTER_LOG_FORMAT": "json",
        "EXPORTER_LOG_LEVEL": "warning",
    }
    if agent_metrics:
        env["GENESYS_AGENT_METRICS"] = agent_metrics
    with (work / "exporter.log").open("w") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "exporter", "run", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log
        )
    try:
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        await stop(process)


@contextlib.contextmanager
def paused(*pids: int) -> Iterator[None]:
    """The processes stopped (SIGSTOP) for the block, continued whatever happens: the machine's cores
    left to Prometheus, as a user's Prometheus has its own, away from the org and the exporter."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def prometheus_config(target: str) -> dict[str, Any]:
    """The shipped config and rule files, pointed at the exporter; no Alertmanager (alerts are not measured)."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config.pop("alerting", None)
    config["rule_files"] = [str(path) for path in RULES]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [target]
    return dict(config)


# ----- probes ---------------------------------------------------------------------------------------
async def probe_queues(chain: Chain, queues: list[str], until: float, into: list[float], on_page: list[float]) -> None:
    """A few more interactions waiting in an unstaffed queue; until the query shows most of them (its
    waiting ones may abandon meanwhile, so waiting for the org's exact new count could wait forever),
    and until the exporter's page does (`on_page`)."""
    for queue in queues:
        await chain.scenario(action="unstaff", queue=queue)
    turn = 0
    while time.monotonic() < until:
        queue = queues[turn % len(queues)]
        turn += 1
        began = time.monotonic()
        answer = await chain.scenario(action="wait", queue=queue, media="voice", count=ADDED)
        want = float(answer["waiting"]["voice"]) - ADDED // 2
        promql = f'genesys_queue_waiting_interactions{{queue_id="{queue}", media_type="voice"}}'
        queried, paged = await asyncio.gather(
            _shown(chain, promql, lambda value, want=want: value is not None and value >= want, began),
            _on_page(chain, queue, want, began),
        )
        into.append(queried)
        on_page.append(paged)
        await asyncio.sleep(max(0.0, PROBE_EVERY - (time.monotonic() - began)))


async def _on_page(chain: Chain, queue: str, want: float, began: float) -> float:
    """When the exporter's own queue part shows the change: what the scrape and the query add is the rest."""
    line = re.compile(
        rb'^genesys_queue_waiting_interactions\{queue_id="'
        + re.escape(queue.encode())
        + rb'",[^}]*media_type="voice"\} (\S+)$',
        re.MULTILINE,
    )
    while time.monotonic() - began < GIVE_UP_AFTER:
        async with chain.http.get(f"{chain.exporter}/metrics", params={"collect[]": "queues"}) as response:
            found = line.search(await response.read())
        if found and float(found[1]) >= want:
            return time.monotonic() - began
        await asyncio.sleep(PAGE_EVERY)
    return math.inf


async def idle_agents(chain: Chain) -> list[str]:
    """Agents on queue and idle now, as Prometheus shows them (either encoding of the routing status)."""
    result, _ = await chain.query(
        'genesys_agent_routing_status{routing_status="idle"} or genesys_agent_routing_status_code == 1'
    )
    return sorted({series["metric"]["user_id"] for series in result})


async def probe_agents(chain: Chain, until: float, into: list[float]) -> None:
    """An idle agent sent on training: until the query shows them off queue. An agent whose routing
    status did not change at once (a conversation came in meanwhile) is not counted."""
    rng = random.Random(11)
    used: set[str] = set()
    candidates: list[str] = []
    refreshed = -math.inf
    while time.monotonic() < until:
        began = time.monotonic()
        if began - refreshed > 60 or not candidates:
            candidates, refreshed = [a for a in await idle_agents(chain) if a not in used], began
        if candidates:
            agent = candidates.pop(rng.randrange(len(candidates)))
            used.add(agent)
            began = time.monotonic()
            answer = await chain.scenario(action="presence", agent=agent, presence="TRAINING")
            if answer["routing_status"] == "OFF_QUEUE":
                promql = (
                    f'genesys_agent_routing_status{{user_id="{agent}", routing_status="off_queue"}}'
                    f' or genesys_agent_routing_status_code{{user_id="{agent}"}} == 0'
                )
                into.append(await _shown(chain, promql, lambda value: value is not None, began))
        await asyncio.sleep(max(0.0, PROBE_EVERY - (time.monotonic() - began)))


async def _shown(chain: Chain, promql: str, shows: Any, began: float) -> float:
    while time.monotonic() - began < GIVE_UP_AFTER:
        if shows(await chain.value(promql)):
            return time.monotonic() - began
        await asyncio.sleep(POLL_EVERY)
    return math.inf


# ----- what Prometheus says of itself -----------------------------------------------------------
async def prometheus_metrics(chain: Chain) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with chain.http.get(f"{chain.prometheus}/metrics") as response:
        text = await response.text()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def steady_rate_per_minute(samples: list[tuple[float, float]]) -> float:
    """A counter's rate a minute over the run's second half: the first minutes still count the series
    of agents whose labels settle as the directory's first pass ends, which is a start, not churn."""
    if len(samples) < 2:
        return math.nan
    (t0, v0), (t1, v1) = samples[(len(samples) - 1) // 2], samples[-1]
    return (v1 - v0) / ((t1 - t0) / 60)


def total(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in metrics.get(name, []))


async def watch_prometheus(chain: Chain, until: float, figures: Figures) -> None:
    """Every 10 s: the head's series, the series created so far, the RSS, the rule groups' evaluation
    times; their peaks."""
    figures.head_series_peak = figures.rss_peak_mib = 0.0
    while time.monotonic() < until:
        metrics = await prometheus_metrics(chain)
        figures.series_created.append((time.monotonic(), total(metrics, "prometheus_tsdb_head_series_created_total")))
        figures.head_series_peak = max(figures.head_series_peak, total(metrics, "prometheus_tsdb_head_series"))
        figures.rss_peak_mib = max(figures.rss_peak_mib, chain.prometheus_rss_mib())
        for labels, seconds in metrics.get("prometheus_rule_group_last_duration_seconds", []):
            group = labels.get("rule_group", "?").rsplit(";", 1)[-1]
            figures.rule_groups.setdefault(group, []).append(seconds)
        await asyncio.sleep(10)


# ----- the dashboards, as Grafana sends them -----------------------------------------------------
# What any query that reads every agent's series costs at least: one family, no join.
FLOOR_QUERY = "topk(50, genesys_agent_handled_interactions)"


async def time_queries(chain: Chain, start: float, end: float, figures: Figures) -> None:
    """Every dashboard query at the end of the run, twice: with the org and the exporter running on the
    same cores, then with both paused so that Prometheus has the machine to itself. Both ask at `end`,
    so the scrapes that fail while the exporter is paused change nothing they read. A query that fails
    is a row that says so, not the end of the bench. The leaderboard's are timed again with one team
    picked, as its supervisor would (the title says so)."""

    async def ask(promql: str) -> list[dict[str, Any]]:
        return (await chain.query(promql, time=f"{end:.3f}"))[0]

    teams, _ = await chain.query('topk(1, genesys_team_member_agents{team!=""})')
    queries = await dashboard_queries(end - start, ask)
    if teams:
        default = {q.promql for q in queries}
        picked = {"team": regex_value(teams[0]["metric"]["team"])}
        queries += [
            replace(q, panel=f"{q.panel} (one team)")
            for q in await dashboard_queries(end - start, ask, picked)
            if not q.ranged and q.promql not in default
        ]
    queries.append(Query("reference", "topk of one agent family, no join", FLOOR_QUERY, False))
    loaded = [await time_query(chain, q.promql, q.ranged, start, end) for q in queries]
    with paused(chain.org.pid, chain.exporter_pid):
        alone = [await time_query(chain, q.promql, q.ranged, start, end) for q in queries]
    for q, (took, rows), (alone_took, _) in zip(queries, loaded, alone, strict=True):
        figures.queries.append((q.dashboard, q.panel, "range" if q.ranged else "instant", took, alone_took, rows))


async def time_query(chain: Chain, promql: str, ranged: bool, start: float, end: float) -> tuple[float, int]:
    """Seconds (instant: the median of 3) and rows; NaN seconds and -1 rows for a query that failed."""
    try:
        if ranged:
            result, took = await chain.query(promql, start=f"{start:.3f}", end=f"{end:.3f}", step=str(STEP_SECONDS))
            return took, len(result)
        runs = [await chain.query(promql, time=f"{end:.3f}") for _ in range(3)]
        return statistics.median(t for _, t in runs), len(runs[-1][0])
    except RuntimeError as error:
        print(f"  query failed: {error}", file=sys.stderr)
        return math.nan, -1


# ----- the run ------------------------------------------------------------------------------------
async def measure(
    queues: int,
    agents: int,
    clients: int,
    minutes: float,
    rate_limit: int,
    agent_metrics: str | None = None,
    gogc: int = SHIPPED_PROMETHEUS_GOGC,
) -> Figures:
    figures = Figures(queues, agents, clients, agent_metrics=agent_metrics or "default", gogc=gogc)
    with tempfile.TemporaryDirectory(prefix="genesys-chain-") as tmp:
        work = Path(tmp)
        async with (
            simulator_process(queues, agents, rate_limit, clients) as org,
            exporter_process(org, work, agent_metrics) as (exporter, exporter_pid),
            aiohttp.ClientSession() as http,
        ):
            await wait_for(http, f"{exporter}/healthz", 120, "the exporter")
            target = exporter.removeprefix("http://")
            config = prometheus_config(target)
            async with prometheus_process(config, work / "prometheus", gogc=gogc) as (prometheus, pid):
                chain = Chain(org, exporter, exporter_pid, prometheus, pid, http)
                await wait_for(http, f"{prometheus}/-/ready", 60, "Prometheus")
                figures.ready_s = await wait_for(http, f"{exporter}/readyz", 1800, "the exporter's first cycles")
                while not await idle_agents(chain):  # noqa: ASYNC110 (polling Prometheus: no event to wait on)
                    await asyncio.sleep(2)
                probe_queue_ids = random.Random(5).sample(sorted(await queue_ids(chain)), 4)
                started, wall_start = time.monotonic(), time.time()
                until = started + minutes * 60
                events_before = await agent_events(chain)
                figures.latencies = {"queues": [], "agents": []}
                await asyncio.gather(
                    probe_queues(chain, probe_queue_ids, until, figures.latencies["queues"], figures.queues_on_page),
                    probe_agents(chain, until, figures.latencies["agents"]),
                    watch_prometheus(chain, until, figures),
                )
                figures.measured_s = time.monotonic() - started
                figures.agent_events_per_s = (await agent_events(chain) - events_before) / figures.measured_s
                metrics = await prometheus_metrics(chain)
                figures.head_series = total(metrics, "prometheus_tsdb_head_series")
                figures.new_series_per_minute = steady_rate_per_minute(figures.series_created)
                figures.rss_mib = chain.prometheus_rss_mib()
                figures.heap_mib = total(metrics, "go_memstats_heap_inuse_bytes") / 2**20
                await scrape_jobs(chain, figures)
                async with http.get(f"{exporter}/metrics", params={"collect[]": "agents"}) as response:
                    part = await response.read()
                figures.agents_part_bytes = len(part)
                await agent_families(chain, part, figures)
                await time_queries(chain, wall_start, time.time(), figures)
    return figures


async def queue_ids(chain: Chain) -> set[str]:
    result, _ = await chain.query("genesys_queue_info")
    return {series["metric"]["queue_id"] for series in result}


async def agent_events(chain: Chain) -> float:
    return await chain.value('sum(genesys_exporter_push_events_total{kind="agents"})') or 0.0


async def agent_families(chain: Chain, part: bytes, figures: Figures) -> None:
    """Each agent family's series and bytes in the part, and the series it started a minute in Prometheus
    over the run (those it had at some time in the window, less those it has now)."""
    sizes: dict[str, tuple[int, int]] = {}
    for line in part.splitlines(keepends=True):
        if not line.startswith(b"#"):
            name = line.split(b"{", 1)[0].split(b" ", 1)[0].decode()
            series, size = sizes.get(name, (0, 0))
            sizes[name] = (series + 1, size + len(line))
    window = f"{max(1, int(figures.measured_s // 60))}m"
    for name, (series, size) in sorted(sizes.items()):
        ever = await chain.value(f"count(count_over_time({name}[{window}]))") or 0.0
        now = await chain.value(f"count({name})") or 0.0
        figures.families[name] = (series, size, max(0.0, ever - now) / (figures.measured_s / 60))


async def scrape_jobs(chain: Chain, figures: Figures) -> None:
    window = f"{max(1, int(figures.measured_s // 60))}m"
    for name, promql in (
        ("samples", f"max by (job) (max_over_time(scrape_samples_scraped[{window}]))"),
        ("duration_avg_s", f"avg by (job) (avg_over_time(scrape_duration_seconds[{window}]))"),
        ("duration_max_s", f"max by (job) (max_over_time(scrape_duration_seconds[{window}]))"),
        ("up_min", f"min by (job) (min_over_time(up[{window}]))"),
    ):
        result, _ = await chain.query(promql)
        for series in result:
            figures.jobs.setdefault(series["metric"].get("job", "?"), {})[name] = float(series["value"][1])


def print_figures(figures: Figures) -> None:
    def p95(values: list[float]) -> str:
        return f"{percentile(values, 0.95):.1f} s" if values else "n/a"

    print(
        f"\n{figures.queues:,} queues, {figures.agents:,} agents, {figures.clients} OAuth client(s); shipped "
        f"defaults; exporter ready after {figures.ready_s:.0f} s; measured {figures.measured_s / 60:.1f} min; "
        f"agent activity events {figures.agent_events_per_s:.0f}/s"
    )
    for kind, values in figures.latencies.items():
        finite = [v for v in values if math.isfinite(v)]
        lost = len(values) - len(finite)
        print(
            f"  change in the org -> Prometheus query, {kind}: p50 {percentile(finite, 0.5):.1f} s, "
            f"p95 {p95(finite)}, max {max(finite, default=math.nan):.1f} s over {len(values)} changes"
            + (f" ({lost} never shown)" if lost else "")
        )
    on_page = [v for v in figures.queues_on_page if math.isfinite(v)]
    print(
        f"  of which until the exporter's /metrics showed it (read every {PAGE_EVERY:.0f} s), queues: "
        f"p50 {percentile(on_page, 0.5):.1f} s, p95 {p95(on_page)}"
    )
    for job, stats in sorted(figures.jobs.items()):
        print(
            f"  job {job}: {stats.get('samples', math.nan):,.0f} samples a scrape, scrape "
            f"{stats.get('duration_avg_s', math.nan):.2f} s on average ({stats.get('duration_max_s', math.nan):.2f} "
            f"s at most), up min {stats.get('up_min', math.nan):.0f}"
        )
    print(f"  agents part ({figures.agent_metrics}): {figures.agents_part_bytes / 1e6:.1f} MB uncompressed")
    for name, (series, size, churn) in figures.families.items():
        print(f"    {name:<48} {series:>8,} series {size / 1e6:6.1f} MB {churn:>8,.0f} new series/min")
    print(
        f"  Prometheus: head series {figures.head_series:,.0f} at the end ({figures.head_series_peak:,.0f} at most), "
        f"{figures.new_series_per_minute:,.0f} new series a minute (the run's second half), "
        f"RSS (GOGC={figures.gogc}) {figures.rss_mib:,.0f} MiB at the end "
        f"({figures.rss_peak_mib:,.0f} MiB at most; Go heap in use {figures.heap_mib:,.0f} MiB)"
    )
    for group, evaluations in sorted(figures.rule_groups.items()):
        print(
            f"  rule group {group}: {statistics.median(evaluations) * 1000:.0f} ms median, "
            f"{percentile(evaluations, 0.95) * 1000:.0f} ms p95, {max(evaluations) * 1000:.0f} ms at most "
            f"over {len(evaluations)} readings"
        )
    print(
        "  dashboard queries (instant: median of 3; range: over the run, step 15 s), with the org and the "
        "exporter running, then with Prometheus alone:"
    )
    for dashboard, panel, kind, took, alone, rows in figures.queries:
        print(
            f"    {dashboard:<20} {panel[:48]:<48} {kind:<7} {took * 1000:7.0f} ms {alone * 1000:7.0f} ms "
            f"{rows:7,} rows"
        )


def main(
    sizes: list[tuple[int, int]],
    minutes: float,
    clients: int,
    rate_limit: int = 300,
    agent_metrics: str | None = None,
    gogc: int | None = None,
) -> None:
    for queues, agents in sizes:
        figures = measure(queues, agents, clients, minutes, rate_limit, agent_metrics, gogc or SHIPPED_PROMETHEUS_GOGC)
        print_figures(asyncio.run(figures))
