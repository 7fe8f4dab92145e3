"""The whole-chain bench sends the dashboards' queries as Grafana would: a wrong interpolation would
time a query Grafana never sends, or fail after a ten-minute run."""

from __future__ import annotations

from exporter.tools.chain import dashboard_queries, regex_value


def test_a_picked_value_is_escaped_for_a_regex_inside_a_promql_string():
    assert regex_value("Team 021") == "Team 021"  # a space is no regex character: PromQL has no "\ "
    assert regex_value("Sales (A).1") == r"Sales \\(A\\)\\.1"


def test_the_leaderboard_is_timed_again_with_one_team_picked():
    picked = [promql for _, panel, promql, _ in dashboard_queries(600, team="Team 021") if "(one team)" in panel]
    assert picked, "no leaderboard query was repeated with a team picked"
    assert all('team=~"Team 021"' in promql for promql in picked)
    assert not any("$" in promql for _, _, promql, _ in dashboard_queries(600, team="Team 021"))
