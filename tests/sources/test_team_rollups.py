"""The exporter's team sums: agents by routing status and today's closed conversations per work team."""

from __future__ import annotations

from exporter.snapshot import Part, PartKey, Snapshot
from exporter.sources import DEFAULT_SELECTION
from exporter.sources.agent_directory import AGENTS, Agent
from exporter.sources.agent_states import AGENT_STATES, AgentState
from exporter.sources.performance import AGENT_TALLIES, Tally
from exporter.sources.settled import SETTLED
from exporter.sources.source import Selection
from exporter.sources.team_rollups import render_team_states, render_team_tallies
from exporter.sources.teams import TEAM_MEMBERS_OF, TEAMS_BY_ID, Team
from tests.harness.scraping import families_of

AGENTS_BY_ID = {
    "a": Agent("a", "Ann", "Home", "d-home"),
    "b": Agent("b", "Bo", "Home", "d-home"),
    "c": Agent("c", "Cy", "Home", "d-home"),
    "d": Agent("d", "Di", "Europe", "d-eu"),
    "e": Agent("e", "Ed", "Home", "d-home"),
}


def state(routing: str | None) -> AgentState:
    return AgentState(routing, None, None)


ORG = Snapshot().with_data(
    {
        AGENTS: AGENTS_BY_ID,
        TEAMS_BY_ID: {"t1": Team("t1", "Sales A", "Home"), "t2": Team("t2", "Care", "Europe")},
        TEAM_MEMBERS_OF: {"a": "t1", "b": "t1", "c": "t1", "d": "t2"},  # e is in no team
        AGENT_STATES: {
            PartKey.polled(0): Part({"a": state("idle"), "b": state("interacting"), "c": state(None)}, 1.0),
            PartKey.polled(1): Part({"a": state("off_queue"), "e": state("idle")}, 2.0),  # newer: a is off queue
        },
        AGENT_TALLIES: {
            PartKey.polled(0): Part(
                {"a": Tally(handled=3, handle_seconds=600), "b": Tally(handled=1, handle_seconds=200.5)}, 1.0
            )
        },
    }
)


def sums(org: Snapshot = ORG, selection: Selection = DEFAULT_SELECTION) -> dict[str, dict[tuple[str, ...], float]]:
    text = "".join(text for render in (render_team_states, render_team_tallies) for _, text in render(org, selection))
    return {
        name: {
            tuple(sample.labels.get(k, "") for k in ("team", "division", "routing_status")): sample.value
            for sample in family.samples
        }
        for name, family in families_of(text).items()
    }


def test_each_team_counts_its_agents_by_their_newest_known_status_and_zero_for_the_others():
    by_status = sums()["genesys_team_agents"]
    assert by_status[("Sales A", "Home", "off_queue")] == 1  # a, by the newer part
    assert by_status[("Sales A", "Home", "interacting")] == 1
    assert by_status[("Sales A", "Home", "idle")] == 0
    assert sum(v for k, v in by_status.items() if k[0] == "Sales A") == 2  # c's status is unknown: not counted
    assert by_status[("", "Home", "idle")] == 1  # agents in no team are a group of their own
    assert not any(k[0] == "Care" for k in by_status)  # nobody in Care has a known status: no series, not zeros


def test_members_and_todays_sums_per_team_with_no_sum_where_no_agent_has_figures():
    figures = sums()
    assert figures["genesys_team_member_agents"] == {
        ("Sales A", "Home", ""): 3,
        ("Care", "Europe", ""): 1,
        ("", "Home", ""): 1,
    }
    assert figures["genesys_team_handled_interactions"] == {("Sales A", "Home", ""): 4}
    assert figures["genesys_team_handle_seconds"] == {("Sales A", "Home", ""): 800.5}


def test_the_sums_are_of_the_exported_agents_and_wait_for_the_labels_to_settle():
    only_home = Selection(DEFAULT_SELECTION.metrics, divisions=frozenset({"home"}))
    assert set(sums(selection=only_home)["genesys_team_member_agents"]) == {("Sales A", "Home", ""), ("", "Home", "")}
    waiting = Selection(DEFAULT_SELECTION.metrics, info_waits_for=frozenset({"teams"}))
    assert sums(selection=waiting) == {}
    assert sums(ORG.with_data({SETTLED: {"teams": True}}), waiting) == sums()
    assert sums(selection=Selection(frozenset({"genesys_team_agents"}))).keys() == {"genesys_team_agents"}
