"""The whole-chain bench sends the dashboards' queries as Grafana would: a wrong interpolation would
time a query Grafana never sends, or fail after a ten-minute run."""

from __future__ import annotations

import math

from exporter.tools.chain import dashboard_queries, regex_value, steady_rate_per_minute


def test_a_picked_value_is_escaped_for_a_regex_inside_a_promql_string():
    assert regex_value("Team 021") == "Team 021"  # a space is no regex character: PromQL has no "\ "
    assert regex_value("Sales (A).1") == r"Sales \\(A\\)\\.1"


def test_the_leaderboard_is_timed_again_with_one_team_picked():
    picked = [promql for _, panel, promql, _ in dashboard_queries(600, team="Team 021") if "(one team)" in panel]
    assert picked, "no leaderboard query was repeated with a team picked"
    assert all('team=~"Team 021"' in promql for promql in picked)
    assert not any("$" in promql for _, _, promql, _ in dashboard_queries(600, team="Team 021"))


def test_new_series_a_minute_count_the_steady_state_not_the_labels_settling_at_the_start():
    # Every 10 s: 100,000 series created in the first 20 s as the directory settles, then 50 a tick.
    settling = [(0.0, 0.0), (10.0, 60_000.0), (20.0, 100_000.0)]
    samples = settling + [(20.0 + 10 * i, 100_000.0 + 50 * i) for i in range(1, 60)]
    assert steady_rate_per_minute(samples) == 300.0
    assert math.isnan(steady_rate_per_minute([(0.0, 1.0)]))
