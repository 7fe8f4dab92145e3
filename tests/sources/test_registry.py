"""The registry is the one table of the house: the jobs, the page's segments and collect[] derive from it."""

from __future__ import annotations

import pytest

from exporter import sources
from exporter.config import ConfigError, Settings
from exporter.page import collectors_of
from exporter.sources.source import Poll


def settings(scope: str, push: str, **more: str) -> Settings:
    return Settings(
        client_id="cid",
        client_secret="not-a-secret",
        api_url="http://127.0.0.1:8089",
        agent_scope=scope,
        push=push,
        **more,
    )


def table(polls: list[Poll], of: Settings) -> list[tuple[str, int, int | None, str | None, float | None]]:
    """Each job as the scheduler gets it: name, priority, first-cycle priority, what it waits for, how long."""
    return [(p.poller.name, p.poller.priority, p.poller.first_priority, p.waits_for(of), p.wait_at_most) for p in polls]


DIRECTORY = ("directory", 3, None, None, None)
QUEUES = ("queues", 0, None, "directory", None)
AGENTS_BY_ID = ("agents", 2, None, "agent_directory", 10.0)
SWEEP = ("push_sweep", 3, None, "directory", None)
TEAMS = ("teams", 4, 2, "agent_directory", 10.0)


@pytest.mark.parametrize(
    ("scope", "push", "jobs"),
    [
        (
            "members",
            "auto",
            [
                DIRECTORY,
                QUEUES,
                ("agent_directory", 4, 1, "directory", None),
                AGENTS_BY_ID,
                SWEEP,
                TEAMS,
                ("performance", 1, None, "agent_directory", 60.0),  # the start lists the users first
            ],
        ),
        (
            "members",
            "off",
            [
                DIRECTORY,
                QUEUES,
                ("agent_directory", 4, 1, "directory", None),
                AGENTS_BY_ID,
                TEAMS,
                ("performance", 1, None, "agent_directory", 60.0),  # the start lists the users first
            ],
        ),
        (
            "users",
            "auto",
            [
                DIRECTORY,
                QUEUES,
                ("agent_directory", 4, 1, "directory", None),  # the users listing, its first pass with states
                AGENTS_BY_ID,
                SWEEP,
                TEAMS,
                ("performance", 1, None, "directory", 60.0),
            ],
        ),
        (
            "users",
            "off",
            [
                DIRECTORY,
                QUEUES,
                ("agents", 2, None, "directory", None),  # the listing carries the states: one job does both
                ("teams", 4, 2, "agents", 10.0),
                ("performance", 1, None, "directory", 60.0),
            ],
        ),
    ],
)
def test_each_setting_runs_each_poller_once_in_a_fixed_order(scope: str, push: str, jobs: list[tuple[object, ...]]):
    chosen = settings(scope, push)
    assert table(sources.polls(chosen), chosen) == jobs


def test_the_page_and_collect_come_from_the_shows_in_page_order():
    shows = sources.shows(settings("members", "auto"))
    assert [show.segment for show in shows] == [
        "queue_info",
        "queue_states",
        "queue_tallies",
        "agent_info",
        "agent_states",
        "agent_tallies",
        "team_states",
        "team_tallies",
    ]
    assert collectors_of(shows) == {
        "queues": ("queue_info", "queue_states", "queue_tallies"),
        "agents": ("agent_info", "agent_states", "agent_tallies"),
        "teams": ("team_states", "team_tallies"),
        "exporter": ("self",),
    }
    assert [show.segment for show in shows if show.paced] == [
        "agent_info",
        "agent_states",
        "agent_tallies",
        "team_states",
        "team_tallies",
    ]


def test_every_key_is_kept_by_one_source_and_every_shown_key_is_kept():
    kept = [key for source in sources.SOURCES for key in source.keeps]
    assert len({key.name for key in kept}) == len(kept)
    assert {key for show in sources.SHOWS for key in show.reads} <= set(kept)
    refreshed = {key for source in sources.SOURCES for poll in source.polls for key in poll.poller.refreshes}
    assert refreshed <= set(kept)


def test_the_default_agent_families_are_the_leaderboards_and_the_others_are_opt_in():
    assert sources.selection(settings("members", "auto")).metrics == {
        "genesys_agent_routing_status_code",
        "genesys_agent_handled_interactions",
        "genesys_agent_handle_seconds",
        "genesys_team_member_agents",
        "genesys_team_agents",
        "genesys_team_handled_interactions",
        "genesys_team_handle_seconds",
    }
    chosen = settings("members", "auto", agent_metrics="default,genesys_agent_presence_code")
    assert "genesys_agent_presence_code" in sources.selection(chosen).metrics
    every = sources.selection(settings("members", "auto", agent_metrics="all")).metrics
    assert every == set(sources.METRICS) and "genesys_agent_average_handle_seconds" in every


def test_an_agent_family_no_source_offers_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="no agent family 'genesys_agent_mood'; known: default, all, ") as caught:
        sources.selection(settings("members", "auto", agent_metrics="genesys_agent_mood"))
    assert "\n" not in str(caught.value)
