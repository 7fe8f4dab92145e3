"""The shipped dashboards' queries as Grafana sends them, for the benches and the end-to-end tests.

Grafana fills each template variable before it sends a panel's query: a custom variable with its
current value, a query variable at "All" with its custom all value, and a query variable at "All"
without one with every option its query returns (what the variable's regex captures from each
series), joined into a regex. The leaderboard ranks its agents once in such a variable and its
table's columns select those agents, so a faithful bench must run the variable's query first, time
it as the dashboard query it is, and put its answer into the panels' queries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana/dashboards").glob("*.json"))
STEP_SECONDS = 15  # a range query's step: what Grafana asks at the agents' scrape interval

# An instant query's result, as Prometheus's HTTP API returns it under data.result.
Ask = Callable[[str], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class Query:
    dashboard: str
    panel: str  # the panel's title, or "variable NAME" for a query variable Grafana runs first
    promql: str
    ranged: bool  # a time series panel's query, sent as a range query


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def static_values(dashboard: dict[str, Any], run_seconds: float) -> dict[str, str]:
    """The variables Grafana fills without asking the data source: Grafana's own interval variables
    for this run, the data source, a custom variable's current value, an "All" with its all value."""
    values = {
        "__rate_interval": "1m",
        "__interval": f"{STEP_SECONDS}s",
        "__range": f"{max(60, int(run_seconds))}s",
    }
    for variable in dashboard.get("templating", {}).get("list", []):
        name, kind = variable["name"], variable.get("type")
        current = variable.get("current", {}).get("value")
        if kind == "datasource":
            values[name] = "prometheus"
        elif kind == "query" or current in (None, "$__all", ["$__all"]):
            if variable.get("allValue"):
                values[name] = variable["allValue"]
        else:
            values[name] = "|".join(current) if isinstance(current, list) else str(current)
    return values


# A variable's value: one string (a custom value, an all value, a picked value already escaped), or
# the options of a query variable at All, which each use formats as it says (`${name:pipe}`).
Value = str | list[str]


async def values(
    dashboard: dict[str, Any], run_seconds: float, ask: Ask, picked: Mapping[str, str] | None = None
) -> tuple[dict[str, Value], list[Query]]:
    """Every variable's value, with `picked` ones as a user chose them (regex-escaped already), and
    the queries Grafana sent to fill the others, in the dashboard's order (a variable may use the
    ones before it). A query variable without an All option takes its first option, as Grafana does
    when the value it had is not among them."""
    filled: dict[str, Value] = {**static_values(dashboard, run_seconds), **(picked or {})}
    sent = []
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable.get("type") != "query" or name in filled:
            continue
        promql = interpolate(_query_result(variable), filled)
        sent.append(Query(dashboard.get("uid", "?"), f"variable {name}", promql, False))
        found = options(variable, await ask(promql))
        filled[name] = found if variable.get("includeAll") else next(iter(found), "")
    return filled, sent


def options(variable: dict[str, Any], result: list[dict[str, Any]]) -> list[str]:
    """What a `query_result` variable offers: its regex's `value` group (or first group) matched
    against each series as Grafana prints it, `name{label="value", ...} value timestamp`."""
    javascript = variable.get("regex", "").strip("/") or ".*"
    pattern = re.compile(re.sub(r"\(\?<(?![=!])", "(?P<", javascript))  # JavaScript's named groups
    found: list[str] = []
    for series in result:
        labels = dict(series["metric"])
        name = labels.pop("__name__", "")
        inner = ", ".join(f'{key}="{value}"' for key, value in labels.items())
        stamp, sample = series["value"]
        matched = pattern.search(f"{name}{{{inner}}} {sample} {int(float(stamp) * 1000)}")
        if matched:
            option = matched.groupdict().get("value") or (matched.group(1) if pattern.groups else matched.group(0))
            if option not in found:
                found.append(option)
    return found


def _query_result(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    text = str(query.get("query", "")) if isinstance(query, dict) else str(query or "")
    matched = re.fullmatch(r"query_result\((.+)\)", text.strip(), re.DOTALL)
    if matched is None:
        raise ValueError(f"variable {variable['name']}: All without an all value needs a query_result query")
    return matched.group(1)


def formatted(value: Value, form: str | None) -> str:
    """Several values as Grafana formats them: `pipe` joins them as they are; `regex`, the Prometheus
    data source's default, escapes each and joins them as a group of alternatives."""
    if isinstance(value, str):
        return value
    if form == "pipe":
        return "|".join(value)
    escaped = [regex_value(one) for one in value]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(expr: str, filled: Mapping[str, Value]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3) or match.group(4)
        return formatted(filled[name], match.group(2)) if name in filled else match.group(0)

    return re.sub(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)", one, expr)


def regex_value(value: str) -> str:
    """One picked value as Grafana puts it into a Prometheus regex: its regex characters escaped, with
    the backslash doubled for the PromQL string around it (a space, say, stays as it is)."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value)


def panel_queries(dashboard: dict[str, Any], filled: Mapping[str, Value]) -> Iterator[Query]:
    """Every panel query with the variables filled; a time series panel's as the range query it is."""
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if "expr" in target:
                ranged = panel.get("type") == "timeseries" and not target.get("instant", False)
                yield Query(
                    dashboard.get("uid", "?"), panel.get("title", "?"), interpolate(target["expr"], filled), ranged
                )


async def dashboard_queries(run_seconds: float, ask: Ask, picked: Mapping[str, str] | None = None) -> list[Query]:
    """Every query the shipped dashboards send on one refresh, variables' queries first."""
    queries: list[Query] = []
    for path in DASHBOARDS:
        dashboard = load(path)
        filled, sent = await values(dashboard, run_seconds, ask, picked)
        queries += sent
        queries += panel_queries(dashboard, filled)
    return queries
