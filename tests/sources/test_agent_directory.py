"""Queue member pages and user pages in, the agents in scope out."""

from __future__ import annotations

from exporter.genesys.models import MemberListing, UserListing
from exporter.snapshot import Snapshot
from exporter.sources.agent_directory import (
    ACTIVE_QUEUES,
    AGENTS,
    Agent,
    joined_members,
    parse_member_pages,
    render_agent_info,
    shard_of,
)
from exporter.sources.settled import SETTLED
from exporter.sources.source import Selection
from exporter.sources.teams import LISTED_TEAM_OF, TEAM_MEMBERS_OF, TEAMS_BY_ID, Team
from exporter.sources.user_listing import parse_user_pages, parse_user_teams
from tests.harness.scraping import families_of

AGENTS_BY_ID = {
    "a": Agent("a", "Ann", "Home", "d-home"),
    "b": Agent("b", "Bo", "Europe", "d-eu"),
    "c": Agent("c", "Cy", "Home", "d-home"),
}
ORG = Snapshot().with_data(
    {
        AGENTS: AGENTS_BY_ID,
        TEAMS_BY_ID: {"t1": Team("t1", "Sales A", "Home"), "t2": Team("t2", "Care", "Europe")},
        TEAM_MEMBERS_OF: {"a": "t1"},
        LISTED_TEAM_OF: {"a": "t2", "b": "t2"},  # the member listings win where both say
        ACTIVE_QUEUES: {"a": ("q1", "q2")},
    }
)


def test_directories_from_users_and_members(fixture):
    agents = parse_user_pages([UserListing.model_validate(fixture("users_state_page.json"))])
    ann = agents["u-ann"]
    assert (ann.id, ann.name, ann.division) == ("u-ann", "Ann O'Neill", "Home")
    assert agents["u-cy"].division == ""
    members = parse_member_pages(
        MemberListing.model_validate(page)
        for page in [
            {
                "entities": [
                    {
                        "id": "u-1",
                        "name": "Ann",
                        "joined": True,
                        "user": {"id": "u-1", "division": {"id": "d", "name": "EU"}},
                    }
                ]
            },
            {"entities": [{"id": "u-2", "user": {"id": "u-2", "name": "Bo"}}, {"id": "u-1", "name": "Ann"}]},
        ]
    )
    assert set(members) == {"u-1", "u-2"}
    assert members["u-2"].name == "Bo"


def test_the_joined_members_are_the_agents_active_in_a_queue():
    page = MemberListing.model_validate(
        {"entities": [{"id": "u-1", "joined": True}, {"id": "u-2", "joined": False}, {"id": "u-3"}]}
    )
    assert joined_members([page]) == ["u-1"]  # an unsaid `joined` is not joined


def test_a_users_page_says_teams_only_when_some_user_on_it_has_one():
    with_teams = UserListing.model_validate({"entities": [{"id": "a", "team": {"id": "t1"}}, {"id": "b"}]})
    assert parse_user_teams(with_teams) == {"a": "t1", "b": ""}  # on a page with teams, b has none
    without = UserListing.model_validate({"entities": [{"id": "a"}, {"id": "b"}]})
    assert parse_user_teams(without) == {}  # the expand may have been left out: nothing is known


def info(selection: Selection) -> dict[str, dict[str, str]]:
    return info_of(ORG, selection)


def info_of(org: Snapshot, selection: Selection) -> dict[str, dict[str, str]]:
    text = "".join(text for _, text in render_agent_info(org, selection))
    family = families_of(text).get("genesys_agent_info")
    return {s.labels["user_id"]: s.labels for s in family.samples} if family else {}


def test_the_info_series_carries_the_names_the_team_and_the_queues_joined():
    labels = info(Selection())
    assert labels["a"] == {
        "user_id": "a",
        "agent_name": "Ann",
        "division": "Home",
        "team": "Sales A",
        "queue_ids": ",q1,q2,",
    }
    assert labels["b"]["team"] == "Care"  # the users listing's word, where no member listing says
    assert labels["c"]["team"] == "" and "queue_ids" not in labels["c"]


def test_the_operator_exports_the_agents_of_some_teams_or_divisions_by_name_or_id():
    assert set(info(Selection(teams=frozenset({"sales a"})))) == {"a"}
    assert set(info(Selection(teams=frozenset({"t2"})))) == {"b"}
    assert set(info(Selection(divisions=frozenset({"home"})))) == {"a", "c"}
    assert set(info(Selection(divisions=frozenset({"d-eu"})))) == {"b"}
    assert set(info(Selection(teams=frozenset({"care"}), divisions=frozenset({"home"})))) == set()


def test_shards_split_the_agents_stably_and_together_are_the_whole():
    ids = [f"user-{n}" for n in range(300)]
    assert [shard_of(uid, 3) for uid in ids] == [shard_of(uid, 3) for uid in ids]
    counts = [sum(shard_of(uid, 3) == k for uid in ids) for k in range(3)]
    assert all(70 <= n <= 130 for n in counts), counts  # about a third each
    pieces = list(render_agent_info(ORG, Selection(shards=2)))
    assert pieces[0][0] is None and pieces[0][1].startswith("# HELP genesys_agent_info ")  # the header: every shard's
    assert [shard for shard, _ in pieces[1:]] == [0, 1]
    whole = "".join(text for _, text in render_agent_info(ORG, Selection()))
    assert "".join(text for _, text in pieces) == pieces[0][1] + "".join(
        line for line in whole.splitlines(keepends=True)[2:] if shard_of(line.split('"')[1], 2) == 0
    ) + "".join(line for line in whole.splitlines(keepends=True)[2:] if shard_of(line.split('"')[1], 2) == 1)


def test_the_info_waits_until_every_label_source_it_waits_for_has_ended_a_pass():
    waits = Selection(info_waits_for=frozenset({"agent_directory", "teams"}))
    assert info(waits) == {}
    assert info(Selection()) != {}  # nothing to wait for
    org = ORG.with_data({SETTLED: {"agent_directory": True, "teams": True}})
    assert set(info_of(org, waits)) == {"a", "b", "c"}
    assert info_of(ORG.with_data({SETTLED: {"teams": True}}), waits) == {}
