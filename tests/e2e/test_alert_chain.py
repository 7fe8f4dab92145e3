"""The whole chain on 127.0.0.1 with Debian's real binaries: simulated org -> exporter -> Prometheus
-> rules -> Alertmanager -> a webhook receiver run by the test, and back when an agent comes on queue.

One Prometheus and one Alertmanager serve the module. Prometheus scrapes with the shipped jobs and
intervals (deploy/prometheus/prometheus.yml: the queues and the exporter's own part every 5 s, the
agents' every 15 s) and the exporter polls on its default cadences; only rule evaluation (1 s) and
the rule's `for: 1m` (2 s, in the test copy of the rules) are shortened. Everything else is the
shipped rule file and Alertmanager route.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shutil
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from exporter.app import Exporter
from exporter.config import Settings
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.tools.dashboards import DASHBOARDS, dashboard_queries, interpolate, load, static_values
from exporter.tools.harness import stop
from tests.harness.net import free_port
from tests.harness.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
RULES = ROOT / "deploy/prometheus/rules/genesys.rules.yml"
ALERTMANAGER = ROOT / "deploy/alertmanager/alertmanager.yml"
NO_AGENT = "GenesysQueueWaitingNoAgentAvailable"


@dataclass
class Receiver:
    """A webhook receiver, as a paging bridge would be: it records every notification."""

    notifications: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.notifications.append(await request.json())
        self.arrived.set()
        return web.Response(text="ok")

    async def wait_for(self, status: str, alertname: str, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            for note in self.notifications:
                for alert in note["alerts"]:
                    if alert["status"] == status and alert["labels"]["alertname"] == alertname:
                        return dict(alert)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {status} {alertname} within {within} s; got {self.notifications}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)


@dataclass
class Stack:
    org: SimulatedOrg
    exporter: Exporter
    receiver: Receiver
    prometheus: str
    alertmanager: str

    async def query(self, promql: str, at: float | None = None) -> dict[str, Any]:
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.prometheus}/api/v1/query", params=params) as response,
        ):
            return dict(await response.json())

    async def ask(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """The query's series now (or at `at`), as Grafana reads them to fill a variable."""
        answer = await self.query(promql, at)
        assert answer["status"] == "success", f"{promql}: {answer.get('error')}"
        return list(answer["data"]["result"])

    async def has(self, promql: str) -> bool:
        """The query returns some series now."""
        return bool((await self.query(promql))["data"]["result"])

    async def value(self, promql: str) -> float | None:
        """The query's one value now, or None while it has none."""
        result = (await self.query(promql))["data"]["result"]
        return float(result[0]["value"][1]) if result else None


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: `make tools` installs Debian's prometheus and prometheus-alertmanager")
    return path


def rules_for_test(tmp: Path) -> Path:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == NO_AGENT:
                rule["for"] = "2s"
    path = tmp / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


def prometheus_config(target: str, rules: Path, alertmanager: str) -> dict[str, Any]:
    """The shipped config, pointed at the test's exporter, rules and Alertmanager; rules evaluated every second."""
    config = yaml.safe_load(PROMETHEUS.read_text())
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(rules)]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [target]
    return dict(config)


async def answers(url: str) -> bool:
    """`url` answers 200 now (a server still starting refuses the connection or is not ready)."""
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def start(*argv: str, log: Path) -> asyncio.subprocess.Process:
    with log.open("w") as sink:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL, stderr=sink)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e")
    receiver = Receiver()
    hook = web.AppRunner(web.Application())
    hook.app.router.add_post("/alerts", receiver.handle)
    await hook.setup()
    hook_port = free_port()
    await web.TCPSite(hook, "127.0.0.1", hook_port).start()

    am_port, prom_port = free_port(), free_port()
    am_config = yaml.safe_load(ALERTMANAGER.read_text())
    for name in ("group_wait", "group_interval"):
        am_config["route"][name] = "1s"
    for route in am_config["route"].get("routes", []):
        route.update(group_wait="0s", group_interval="1s")
    for receiver_config in am_config["receivers"]:
        for hook_config in receiver_config.get("webhook_configs", []):
            hook_config["url"] = f"http://127.0.0.1:{hook_port}/alerts"
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(am_config))

    async with serve_simulator(queues=6, agents=40, seed=8) as org:
        settings = Settings(
            client_id=org.client_id,
            client_secret=org.client_secret,
            api_url=org.url,
            listen="127.0.0.1:0",
            log_format="json",
            log_level="warning",
            # The leaderboard's "In status for" column reads an opt-in family: on, so that every
            # dashboard query is checked for data.
            agent_metrics=("default", "genesys_agent_status_since_timestamp_seconds"),
        )
        async with Exporter(settings) as exporter:
            exporter_target = exporter.url.removeprefix("http://")
            config = prometheus_config(exporter_target, rules_for_test(tmp), f"127.0.0.1:{am_port}")
            (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
            am = await start(
                binary("prometheus-alertmanager"),
                f"--config.file={tmp / 'alertmanager.yml'}",
                f"--storage.path={tmp / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
                log=tmp / "alertmanager.log",
            )
            prom = await start(
                binary("prometheus"),
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--rules.alert.resend-delay=1s",
                log=tmp / "prometheus.log",
            )
            try:
                for ready in (f"http://127.0.0.1:{am_port}/-/ready", f"http://127.0.0.1:{prom_port}/-/ready"):
                    await eventually(lambda url=ready: answers(url), within=20, every=0.2, failing=f"{ready} answering")
                yield Stack(org, exporter, receiver, f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}")
            finally:
                for proc in (prom, am):
                    await stop(proc)
                await hook.cleanup()


async def test_no_agent_alert_pages_then_resolves_when_an_agent_comes_on_queue(stack: Stack):
    queue = min(stack.org.model.queues.values(), key=lambda q: q.name)
    # Prometheus must already see the queue staffed, so the alert below is the scenario's doing.
    staffed = f'genesys_queue_available_agents{{queue_name="{queue.name}"}}'
    await eventually(lambda: stack.has(staffed), within=30, every=0.5, failing="Prometheus having scraped the queue")

    async with aiohttp.ClientSession() as http:
        left = time.monotonic()
        async with http.post(f"{stack.org.url}/__admin/scenario", json={"action": "unstaff", "queue": queue.name}) as r:
            members = (await r.json())["agents"]
        async with http.post(
            f"{stack.org.url}/__admin/scenario",
            json={"action": "wait", "queue": queue.name, "media": "voice", "count": 1},
        ) as r:
            assert r.status == 200

        fired = await stack.receiver.wait_for("firing", NO_AGENT, within=60)
        paged_after = time.monotonic() - left
        assert fired["labels"]["queue_name"] == queue.name
        assert fired["labels"]["queue_id"] == queue.id
        assert fired["labels"]["severity"] == "page"
        assert fired["annotations"]["summary"].startswith(f"{queue.name}: ")

        idle_member = next(a for a in members if stack.org.model.agents[a].conversation is None)
        back = time.monotonic()
        async with http.post(f"{stack.org.url}/__admin/scenario", json={"action": "staff", "agent": idle_member}) as r:
            assert r.status == 200
        resolved = await stack.receiver.wait_for("resolved", NO_AGENT, within=60)
        assert resolved["labels"]["queue_name"] == queue.name
    print(
        f"\nagent leaves -> webhook has the alert: {paged_after:.1f} s; "
        f"agent back -> resolved at the webhook: {time.monotonic() - back:.1f} s"
    )


EVERYONE = {"show": "-1"}  # the leaderboard's Show: everyone, so that its queries have data in a small org


def variable_label_values() -> list[tuple[str, str]]:
    """(series selector, label) of every `label_values` variable of the dashboards, variables substituted."""
    found = []
    for path in DASHBOARDS:
        dashboard = load(path)
        filled = {**static_values(dashboard, 600), **EVERYONE}
        for variable in dashboard["templating"]["list"]:
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            if matched := re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text):
                found.append((interpolate(matched.group(1), filled), matched.group(2)))
    assert found, "no label_values variable found: the check below would check nothing"
    return found


async def test_every_dashboard_query_runs_and_returns_data(stack: Stack):
    # Leave one queue unstaffed with a caller waiting, so the alert and oldest-wait panels have data.
    queue = sorted(stack.org.model.queues.values(), key=lambda q: q.name)[1]
    async with aiohttp.ClientSession() as http:
        for body in ({"action": "unstaff", "queue": queue.name}, {"action": "wait", "queue": queue.name}):
            async with http.post(f"{stack.org.url}/__admin/scenario", json=body) as r:
                assert r.status == 200
    firing = 'ALERTS{alertstate="firing", alertname=~"Genesys.*"}'
    await eventually(lambda: stack.has(firing), within=60, every=0.5, failing="an alert for the unstaffed queue")

    # Every query has data once each scrape job has scraped twice since the data came (the `increase`s
    # need two samples; the agents' part is scraped every 15 s): wait for that, not for a number of seconds.
    deadline = time.monotonic() + 90
    while True:
        checked, empty = [], []
        for query in await dashboard_queries(600, stack.ask, EVERYONE):
            answer = await stack.query(query.promql)
            said = f"{query.dashboard} / {query.panel}: {query.promql}"
            assert answer["status"] == "success", f"{said}: {answer.get('error')}"
            (checked if answer["data"]["result"] else empty).append(said)
        if not empty or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert not empty, "queries with no data:\n" + "\n".join(empty)
    async with aiohttp.ClientSession() as http:
        for match, label in variable_label_values():
            async with http.get(f"{stack.prometheus}/api/v1/label/{label}/values", params={"match[]": match}) as r:
                values = (await r.json())["data"]
            assert values, f"template variable label_values({match}, {label}) would be empty"
    print(f"\n{len(checked)} dashboard queries checked:\n" + "\n".join(checked))


async def test_the_leaderboard_table_shows_the_agents_prometheus_ranks_first(stack: Stack):
    """The table's columns read only the agents the hidden ranking variable returned: asked at one
    instant, its closed counts are the top 50 of every agent's, each with its name."""
    closed = "genesys_agent_handled_interactions > 0"
    await eventually(lambda: stack.has(closed), within=60, every=0.5, failing="a closed conversation")
    at = time.time()

    async def ask(promql: str) -> list[dict[str, Any]]:
        return await stack.ask(promql, at)

    queries = await dashboard_queries(600, ask, EVERYONE)
    table = next(q for q in queries if q.panel.startswith("Leaderboard") and q.promql.startswith("genesys_agent_info"))
    shown = await ask(table.promql)
    ranked = await ask("topk(50, genesys_agent_handled_interactions)")
    assert shown and len(shown) == min(50, len(await ask("genesys_agent_handled_interactions")))
    assert sorted(float(s["value"][1]) for s in shown) == sorted(float(s["value"][1]) for s in ranked)
    assert all(s["metric"].get("agent_name") for s in shown), "the Agent column would be empty"


def panel_query(dashboard: str, title: str, queue: str) -> str:
    """A panel's first query, for one queue and every division."""
    panel = next(p for p in load(ROOT / "grafana/dashboards" / dashboard)["panels"] if p["title"] == title)
    assert re.fullmatch(r"[\w ]+", queue), f"{queue!r} would need regex escaping"
    return str(panel["targets"][0]["expr"]).replace("$queue", queue).replace("$division", ".*")


CHANGES = 4  # changes measured; each waits a random part of a queue cadence first
ADDED = 50  # interactions each change adds, so the org's own small moves cannot pass for it


async def test_a_change_in_the_org_reaches_the_wallboard_query(stack: Stack):
    """From a change in the org to the moment the wallboard's "Waiting now" query shows it, as shipped."""
    queue = sorted(stack.org.model.queues.values(), key=lambda q: q.name)[2]
    waiting = panel_query("genesys-queues.json", "Waiting now", queue.name)
    async with aiohttp.ClientSession() as http:
        # Unstaffed: nothing arrives and nobody answers, so only abandons (a few) lower the count.
        async with http.post(f"{stack.org.url}/__admin/scenario", json={"action": "unstaff", "queue": queue.name}) as r:
            assert r.status == 200
        seen: list[float] = []
        for _ in range(CHANGES):
            await asyncio.sleep(random.uniform(0, stack.exporter.settings.queue_interval))
            before = await stack.value(waiting)
            while before is None:
                await asyncio.sleep(0.5)
                before = await stack.value(waiting)
            changed = time.monotonic()
            body = {"action": "wait", "queue": queue.name, "media": "voice", "count": ADDED}
            async with http.post(f"{stack.org.url}/__admin/scenario", json=body) as r:
                assert r.status == 200
            while ((await stack.value(waiting)) or 0) < before + ADDED / 2:
                assert time.monotonic() - changed < 120, "the change never reached the query"
                await asyncio.sleep(0.1)
            seen.append(time.monotonic() - changed)
    print(
        f"\norg change -> wallboard 'Waiting now' query shows it: {', '.join(f'{s:.1f}' for s in seen)} s "
        f"(median {statistics.median(seen):.1f} s; queue cadence {stack.exporter.settings.queue_interval:g} s, "
        f"push {stack.exporter.settings.push}, shipped scrape intervals)"
    )
    assert max(seen) < 60  # generous: a figure to read, not a timed test
