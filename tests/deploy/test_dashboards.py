"""The dashboards are code: conventions a Grafana operator relies on, checked on every panel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana/dashboards").glob("*.json"))
UNITLESS_PANELS = {"text"}


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, and the variables' queries."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


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
        names = set(re.findall(r"\b(genesys_[a-z_]+)", expr))
        assert names <= KNOWN_METRICS, f"{title}: unknown metric {names - KNOWN_METRICS}"


def test_leaderboard_has_the_trust_panels():
    dashboard = load(ROOT / "grafana/dashboards/genesys-leaderboard.json")
    titles = {p["title"] for p in panels(dashboard)}
    assert {"Last updated", "Data delayed by up to", "Data freshness", "About these figures"} <= titles
    table = next(p for p in panels(dashboard) if p["title"].startswith("Leaderboard"))
    aht = next(o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "AHT")
    assert {"id": "noValue", "value": "N/A"} in aht["properties"]
    sort = next(t for t in table["transformations"] if t["id"] == "sortBy")
    assert sort["options"]["sort"] == [{"field": "Rank score", "desc": True}]
    text = next(p for p in panels(dashboard) if p["type"] == "text")
    assert "end-of-day reports" in text["options"]["content"]


def test_provisioning_points_grafana_at_the_dashboards():
    datasources = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasources["datasources"][0]["type"] == "prometheus"
    providers = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/genesys.yml").read_text())
    assert providers["providers"][0]["type"] == "file"


KNOWN_METRICS = {
    line.split("`")[1] for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `genesys_")
}
