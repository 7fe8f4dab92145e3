"""The dashboards are code: conventions a Grafana operator relies on, checked on every panel."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.tools.dashboards import DASHBOARDS, ROOT, interpolate, load, values
from tests.harness.leaderboard import EVERY_AGENT, INFO_JOIN

UNITLESS_PANELS = {"text"}
LEADERBOARD = ROOT / "grafana/dashboards/genesys-leaderboard.json"


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, and the variables' queries."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query


def test_both_dashboards_exist_with_stable_uids():
    assert {p.name for p in DASHBOARDS} == {"genesys-leaderboard.json", "genesys-queues.json"}
    assert {load(p)["uid"] for p in DASHBOARDS} == {"genesys-leaderboard", "genesys-queues"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_conventions(path: Path):
    dashboard = load(path)
    text = path.read_text()
    assert "${DS_" not in text, "import-time data source inputs break provisioning"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"queue", "division"} <= set(variables)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel.get("title"), panel
        assert panel.get("description"), f"{panel['title']}: no description"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        if panel["type"] not in UNITLESS_PANELS:
            units = [panel["fieldConfig"]["defaults"].get("unit")] + [
                prop["value"]
                for o in panel["fieldConfig"]["overrides"]
                for prop in o["properties"]
                if prop["id"] == "unit"
            ]
            assert any(units), f"{panel['title']}: no unit"
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            if re.search(r"\brate\(|\birate\(", target["expr"]):
                assert "$__rate_interval" in target["expr"], f"{panel['title']}: use $__rate_interval"
    for title, expr in expressions(dashboard):
        names = set(re.findall(r"(?<![:\w])(genesys_[a-z_]+)", expr))
        assert names <= KNOWN_METRICS, f"{title}: unknown metric {names - KNOWN_METRICS}"
        recorded = set(re.findall(r"\b([a-z_]+:[a-z_]+:[a-z_]+)\b", expr))
        assert recorded <= RECORDED, f"{title}: no recording rule {recorded - RECORDED}"


def test_leaderboard_has_the_trust_panels():
    dashboard = load(LEADERBOARD)
    titles = {p["title"] for p in panels(dashboard)}
    assert {"Last updated", "Data delayed by up to", "Data freshness", "About these figures"} <= titles
    table = next(p for p in panels(dashboard) if p["title"].startswith("Leaderboard"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"team", "top", "show"} <= set(variables)
    assert variables["top"]["current"]["value"] == "50"
    assert max(int(option["value"]) for option in variables["top"]["options"]) <= 300
    assert variables["leaders"]["hide"] == 2 and "allValue" not in variables["leaders"]  # All is every leader
    assert "topk($top," in variables["leaders"]["query"]["query"]  # at most Top leaders
    for target in table["targets"]:
        assert target["instant"], target["refId"]
        families = re.findall(r"genesys_agent_\w+", target["expr"])
        ranked = re.findall(r'genesys_agent_\w+\{user_id=~"\$\{leaders:pipe\}"\}', target["expr"])
        assert families and len(ranked) == len(families), f"{target['refId']} reads agents the ranking left out"
    aht = next(o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "AHT")
    assert {"id": "noValue", "value": "N/A"} in aht["properties"]
    sort = next(t for t in table["transformations"] if t["id"] == "sortBy")
    assert sort["options"]["sort"] == [{"field": "Closed", "desc": True}, {"field": "AHT", "desc": False}]
    text = next(p for p in panels(dashboard) if p["type"] == "text")
    assert "end-of-day reports" in text["options"]["content"]


def test_only_the_ranking_reads_every_agent():
    """At 50,000 agents a query over every agent's series costs a Prometheus about a second: only the
    hidden ranking variable reads them; the table reads the agents it ranked, the team panels and the
    other variables read the team sums (a family named in a string literal is not read)."""
    dashboard = load(LEADERBOARD)
    for title, expr in expressions(dashboard):
        if title != "variable leaders" and not title.startswith("Leaderboard"):
            assert "genesys_agent_" not in re.sub(r'"[^"]*"', '""', expr), title


# (user_id, team, division, routing status code, closed conversations today)
AGENTS = [
    ("a", "Red", "Home", 1, 5),
    ("b", "Blue", "Home", 2, 9),
    ("c", "Red", "Home", 0, 12),
    ("d", "Blue", "Sales", -1, 3),
]


@pytest.mark.parametrize(
    ("picked", "among", "leaders"),
    [
        ({}, EVERY_AGENT, "ab"),
        ({"show": "-1"}, EVERY_AGENT, "abcd"),
        ({"team": "Red"}, INFO_JOIN, "a"),
        ({"team": "Red", "show": "-1"}, INFO_JOIN, "ac"),
        ({"division": "Sales", "show": "-1"}, INFO_JOIN, "d"),
    ],
    ids=["all", "all-everyone", "team", "team-everyone", "division-everyone"],
)
def test_the_ranking_reads_genesys_agent_info_only_once_a_filter_is_picked(
    promtool: str, tmp_path: Path, picked: dict[str, str], among: str, leaders: str
):
    """The hidden `among` variable turns the filters into the ranking's last join, and Debian's
    PromQL engine (promtool) checks both: at All the ranking skips the info family whose series it
    would read for every agent, and ranks the same agents as the join."""

    async def ask(promql: str) -> list[dict[str, Any]]:  # what the engine is then checked to answer
        if '"among"' in promql:
            return [{"metric": {"among": among}, "value": [60, "1"]}]
        return [{"metric": {"user_id": user}, "value": [60, "1"]} for user in leaders]

    filled, sent = asyncio.run(values(load(LEADERBOARD), 600, ask, picked))
    asked = {q.panel: q.promql for q in sent}
    assert ("genesys_agent_info" in asked["variable leaders"]) == (among == INFO_JOIN)
    filters = interpolate("$division $team ${queue}", filled)
    agent = 'job="genesys-agents", instance="x", user_id="{}"'
    series = [{"series": 'up{job="genesys-agents", instance="x"}', "values": "1x8"}]
    for user, team, division, status, closed in AGENTS:
        info = f'{agent.format(user)}, agent_name="{user}", team="{team}", division="{division}", queue_ids=",q1,"'
        series += [
            {"series": f"genesys_agent_info{{{info}}}", "values": "1x8"},
            {"series": f"genesys_agent_routing_status_code{{{agent.format(user)}}}", "values": f"{status}x8"},
            {"series": f"genesys_agent_handled_interactions{{{agent.format(user)}}}", "values": f"{closed}x8"},
        ]
    ranked = {user: closed for user, *_, closed in AGENTS if user in leaders}
    expected = [
        {
            "expr": asked["variable among"],
            "eval_time": "1m",
            "exp_samples": [{"labels": f'{{among="{among}", filters="{filters}"}}', "value": 1}],
        },
        {
            "expr": asked["variable leaders"],
            "eval_time": "1m",
            "exp_samples": [
                {"labels": f"genesys_agent_handled_interactions{{{agent.format(user)}}}", "value": closed}
                for user, closed in ranked.items()
            ],
        },
    ]
    test = tmp_path / "ranking.test.yml"
    cases = [{"interval": "15s", "input_series": series, "promql_expr_test": expected}]
    test.write_text(yaml.safe_dump({"tests": cases}))
    result = subprocess.run([promtool, "test", "rules", str(test)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_points_grafana_at_the_dashboards():
    datasources = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasources["datasources"][0]["type"] == "prometheus"
    providers = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/genesys.yml").read_text())
    assert providers["providers"][0]["type"] == "file"


KNOWN_METRICS = {
    line.split("`")[1] for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `genesys_")
}
RECORDED = {
    rule["record"]
    for group in yaml.safe_load((ROOT / "deploy/prometheus/rules/genesys.rules.yml").read_text())["groups"]
    for rule in group["rules"]
    if "record" in rule
}


SCHEMA_DIR = ROOT / ".venv/grafana-schema"
TS_PRELUDE = """import type { Dashboard } from "@grafana/schema";

/** The schema's enums, as the string literals a JSON file can hold. */
type Literal<T> = T extends string ? `${T}` : T extends object ? { [K in keyof T]: Literal<T[K]> } : T;

export const dashboard: Literal<Dashboard> = """


def test_dashboards_type_check_against_grafanas_schema():
    """Each dashboard as a typed object literal: tsc rejects unknown fields, missing ones and bad enum values."""
    tsc = SCHEMA_DIR / "node_modules/.bin/tsc"
    if not tsc.exists():
        pytest.fail("Grafana's schema is not installed: run `make grafana-tools` (needs npm)")
    work = SCHEMA_DIR / "check"
    work.mkdir(exist_ok=True)
    files = []
    for path in DASHBOARDS:
        target = work / f"{path.stem}.ts"
        target.write_text(TS_PRELUDE + path.read_text().strip() + ";\n")
        files.append(target.name)
    (work / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "strict": True,
                    "noEmit": True,
                    "moduleResolution": "bundler",
                    "module": "esnext",
                    "target": "es2022",
                    "skipLibCheck": True,
                },
                "files": files,
            }
        )
    )
    result = subprocess.run([str(tsc), "-p", str(work / "tsconfig.json")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
