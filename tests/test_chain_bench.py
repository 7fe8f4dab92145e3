"""The whole-chain bench sends the dashboards' queries as Grafana would: a wrong interpolation would
time a query Grafana never sends, or fail after a ten-minute run."""

from __future__ import annotations

import math
from typing import Any

from exporter.tools.chain import steady_rate_per_minute
from exporter.tools.dashboards import dashboard_queries, formatted, regex_value
from tests.harness.leaderboard import EVERY_AGENT, INFO_JOIN

LEADERS = ["0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90ae7"]


class Prometheus:
    """Answers the `among` variable's query with the join it is given (what the engine answers is
    checked with promtool in tests/deploy/test_dashboards.py), the ranking variable's with two
    agents, and remembers what it was asked."""

    def __init__(self, among: str = EVERY_AGENT) -> None:
        self.among = among
        self.asked: list[str] = []

    async def __call__(self, promql: str) -> list[dict[str, Any]]:
        self.asked.append(promql)
        if '"among"' in promql:
            return [{"metric": {"among": self.among}, "value": [1_700_000_000.0, "1"]}]
        return [
            {"metric": {"job": "genesys-agents", "user_id": user_id}, "value": [1_700_000_000.0, "12"]}
            for user_id in LEADERS
        ]


def test_a_picked_value_is_escaped_for_a_regex_inside_a_promql_string():
    assert regex_value("Team 021") == "Team 021"  # a space is no regex character: PromQL has no "\ "
    assert regex_value("Sales (A).1") == r"Sales \\(A\\)\\.1"


async def test_the_leaderboard_reads_the_agents_its_ranking_variable_returned():
    prometheus = Prometheus()
    queries = await dashboard_queries(600, prometheus)
    ranking = [q for q in queries if q.panel in ("variable among", "variable leaders")]
    assert [q.promql for q in ranking] == prometheus.asked
    leaders = ranking[-1]
    assert 'and on () up{division=~".*", team=~".*"' in leaders.promql and "topk(50," in leaders.promql
    table = [q.promql for q in queries if q.panel.startswith("Leaderboard")]
    assert table and all(f'user_id=~"{LEADERS[0]}|{LEADERS[1]}"' in promql for promql in table)
    assert not any("$" in q.promql for q in queries)


async def test_a_picked_team_ranks_its_own_leaders():
    prometheus = Prometheus(among=INFO_JOIN)
    queries = await dashboard_queries(600, prometheus, {"team": regex_value("Team 021")})
    among = next(q.promql for q in queries if q.panel == "variable among")
    assert '".* Team 021 .*"' in among  # the filters, which the engine compares with all three at All
    leaders = next(q.promql for q in queries if q.panel == "variable leaders")
    assert f'and {INFO_JOIN}{{division=~".*", team=~"Team 021"' in leaders


def test_new_series_a_minute_count_the_steady_state_not_the_labels_settling_at_the_start():
    # Every 10 s: 100,000 series created in the first 20 s as the directory settles, then 50 a tick.
    settling = [(0.0, 0.0), (10.0, 60_000.0), (20.0, 100_000.0)]
    samples = settling + [(20.0 + 10 * i, 100_000.0 + 50 * i) for i in range(1, 60)]
    assert steady_rate_per_minute(samples) == 300.0
    assert math.isnan(steady_rate_per_minute([(0.0, 1.0)]))


def test_several_values_are_formatted_as_the_use_says():
    assert formatted(["a.b", "c"], "pipe") == "a.b|c"  # as they are: Prometheus looks them up as a set
    assert formatted(["a.b", "c"], "regex") == formatted(["a.b", "c"], None) == r"(a\\.b|c)"
    assert formatted(["a.b"], None) == r"a\\.b"
    assert formatted(".*", "pipe") == ".*"  # an all value is used as it is
