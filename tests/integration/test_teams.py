"""Work teams against the simulated org: the team label of every agent, in each scope, and without the permission."""

from __future__ import annotations

from collections import Counter
from typing import Any

import structlog

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.simulator.faults import Fault
from exporter.sources.agent_states import ROUTING_CODES
from tests.harness.exporter_time import first_page, run_for
from tests.harness.scraping import by_labels, scrape
from tests.harness.simulated_org import settings_for
from tests.harness.waiting import eventually


def team_labels(families: dict[str, Any]) -> dict[str, str]:
    """Each exported agent's team label ("" for none)."""
    return dict(by_labels(families, "genesys_agent_info", "user_id", "team").keys())


def org_teams(org: SimulatedOrg) -> dict[str, str]:
    """Each agent's team name as the org has it ("" for an agent in no team)."""
    teams = org.model.teams
    return {a.id: teams[a.team].name if a.team else "" for a in org.model.agents.values()}


async def test_members_scope_labels_every_agent_with_the_team_the_member_listings_say(clock: FakeClock):
    async with (
        serve_simulator(queues=6, agents=60, seed=4, clock=clock) as org,
        Exporter(settings_for(org), clock=clock) as exporter,
    ):
        families = await first_page(exporter)
        assert team_labels(families) == org_teams(org)
        assert {team for team in org_teams(org).values() if team}, "an org without teams proves little"
        assert org.api_requests("team_members") >= len(org.model.teams)  # each team's members listed
        assert team_sums_agree_with_the_agents(families)


def summed(families: dict[str, Any], name: str, *keys: str) -> Counter[tuple[str, ...]]:
    """A family's samples summed by the given labels (agents in no team are a group per division)."""
    out: Counter[tuple[str, ...]] = Counter()
    for sample in families[name].samples:
        out[tuple(sample.labels[k] for k in keys)] += sample.value
    return out


def team_sums_agree_with_the_agents(families: dict[str, Any]) -> bool:
    """The exporter's team sums are the per-agent families summed by the info's team, on the same page."""
    teams = team_labels(families)
    codes = by_labels(families, "genesys_agent_routing_status_code", "user_id")
    handled = by_labels(families, "genesys_agent_handled_interactions", "user_id")
    names = {code: name for name, code in ROUTING_CODES.items()}
    by_status: Counter[tuple[str, str]] = Counter((teams[uid], names[int(code)]) for (uid,), code in codes.items())
    closed: Counter[str] = Counter()
    for (uid,), value in handled.items():
        closed[teams[uid]] += int(value)
    status_sums = summed(families, "genesys_team_agents", "team", "routing_status")
    handled_sums = summed(families, "genesys_team_handled_interactions", "team")
    assert {key: value for key, value in status_sums.items() if value} == dict(by_status)
    assert handled_sums == {(team,): float(value) for team, value in closed.items()}
    assert sum(status_sums.values()) == len(codes) and sum(closed.values()) > 0
    return True


async def test_users_scope_takes_the_teams_from_the_listing_at_no_request_per_agent(clock: FakeClock):
    async with (
        serve_simulator(queues=6, agents=60, seed=4, clock=clock) as org,
        Exporter(settings_for(org, agent_scope="users"), clock=clock) as exporter,
    ):
        families = await first_page(exporter)
        assert team_labels(families) == org_teams(org)
        assert org.api_requests("team_members") == 0  # the users listing carried them
        assert org.api_requests("teams") >= 1  # the names


async def test_a_team_filter_exports_that_team_alone_and_its_members_are_listed_in_the_users_scope(clock: FakeClock):
    async with serve_simulator(queues=6, agents=60, seed=4, clock=clock) as org:
        team = min(org.model.teams.values(), key=lambda t: t.name)
        settings = settings_for(org, agent_scope="users", agent_teams=team.name.upper())  # names in any case
        async with Exporter(settings, clock=clock) as exporter:
            await eventually(lambda: exporter.scheduler.ready)
            await run_for(exporter, clock, 30)
            _, families = await scrape(exporter.url)
            exported = {uid for (uid,) in by_labels(families, "genesys_agent_routing_status_code", "user_id")}
            assert exported == set(team.members)
            assert set(team_labels(families)) == set(team.members)
            assert org.api_requests("team_members") >= 1  # the chosen team's members, whatever the expand says


async def test_a_role_without_teams_loses_the_team_label_only_with_one_warning(clock: FakeClock):
    with structlog.testing.capture_logs() as logs:
        async with serve_simulator(queues=6, agents=60, seed=4, clock=clock) as org:
            org.faults.arm(Fault("forbid", route="teams"))
            async with Exporter(settings_for(org), clock=clock) as exporter:
                await eventually(lambda: exporter.scheduler.ready)
                await run_for(exporter, clock, 30)
                exporter.page.refresh()
                _, families = await scrape(exporter.url)
                assert set(team_labels(families).values()) == {""}
                assert len(team_labels(families)) == len(org.model.agents)  # the agents are all there
                assert all(status.up for status in exporter.store.snapshot.pollers.values())
    warnings = [entry for entry in logs if entry["log_level"] == "warning" and "work teams" in entry["event"]]
    assert len(warnings) == 1
    assert "groups:team:view" in warnings[0]["error"]
