"""Work teams: how supervisors group their agents, the `team` label of `genesys_agent_info`.

A user belongs to at most one team and a team's members share its division
(https://help.mypurecloud.com/articles/work-teams-overview/). `GET /api/v2/teams` names the teams;
who is in which comes from `GET /api/v2/teams/{teamId}/members`, a page per 100 members, or, in the
`users` scope, from the users listing the exporter pages anyway (`expand=team`, best effort:
`exporter.sources.user_listing` keeps what it says), at no extra request. There the member listing
is asked only for the teams the operator exports (GENESYS_AGENT_TEAMS), whose agents must not go
missing when the expand does. Both cursor-page with `nextUri`
(https://developer.genesys.cloud/useragentman/users/teams).

A role without `groups:team:view` loses teams only: one warning, no team label, and the job counts
as done, so it neither blocks readiness nor pages as stale data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog

from exporter.config import Settings
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import TEAM_MEMBERS, TEAMS
from exporter.genesys.errors import PermissionDenied
from exporter.genesys.models import TeamListing, TeamMemberListing
from exporter.snapshot import Directory
from exporter.sources.settled import mark_settled
from exporter.sources.source import Poll, Poller, Source, Wiring

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    division: str  # division name ("" when the API gave none)


TEAMS_BY_ID: Directory[Team] = Directory("teams")
TEAM_MEMBERS_OF: Directory[str] = Directory("team_members")  # user id -> team id, from the member listings
# User id -> team id ("" for none) as the users listing's best-effort `expand=team` says: kept by
# `exporter.sources.user_listing`, which pages the users anyway; the member listings win over it.
LISTED_TEAM_OF: Directory[str] = Directory("listed_teams")


def team_of(
    user_id: str, members: Mapping[str, str], listed: Mapping[str, str], teams: Mapping[str, Team]
) -> Team | None:
    """A user's team: from the team's member listing, else from the users listing; None when unknown or none."""
    team_id = members.get(user_id) or listed.get(user_id)
    return teams.get(team_id) if team_id else None


def parse_team_pages(pages: Iterable[TeamListing]) -> dict[str, Team]:
    """Pure: `GET /teams` pages in, the teams out."""
    teams: dict[str, Team] = {}
    for page in pages:
        for team in page.entities:
            division = team.division.name if team.division and team.division.name else ""
            teams[team.id] = Team(team.id, team.name or team.id, division)
    return teams


def chosen(teams: dict[str, Team], names_or_ids: Iterable[str]) -> list[str]:
    """The ids of the teams the operator named (by id, or by name in any case)."""
    wanted = {item.casefold() for item in names_or_ids}
    return [tid for tid, team in teams.items() if tid.casefold() in wanted or team.name.casefold() in wanted]


async def list_teams(client: GenesysClient) -> dict[str, Team]:
    pages = client.pages_by_next_uri(TEAMS, page_size=100)
    return parse_team_pages([client.validate(TEAMS, page, TeamListing) async for page in pages])


async def list_members(client: GenesysClient, team_ids: Iterable[str]) -> dict[str, str]:
    """User id -> team id for the teams given, all at once (each page through the shared budget)."""

    async def members(team_id: str) -> list[str]:
        users: list[str] = []
        async for page in client.pages_by_next_uri(TEAM_MEMBERS, page_size=100, teamId=team_id):
            users += [user.id for user in client.validate(TEAM_MEMBERS, page, TeamMemberListing).entities]
            del page  # not held while the next page waits its turn behind the other teams'
        return users

    ordered = sorted(team_ids)
    found = await asyncio.gather(*(members(team_id) for team_id in ordered))
    return {user: team_id for team_id, users in zip(ordered, found, strict=True) for user in users}


async def refresh_teams(wiring: Wiring) -> None:
    settings, store = wiring.settings, wiring.store
    try:
        teams = await list_teams(wiring.client)
        listed = teams if settings.agent_scope == "members" else chosen(teams, settings.agent_teams)
        members = await list_members(wiring.client, listed)
    except PermissionDenied as error:
        if wiring.first_time("teams forbidden"):
            log.warning("no work teams: agents get no team label and cannot be chosen by team", error=str(error))
        return
    else:
        store.set(TEAMS_BY_ID, teams)
        store.set(TEAM_MEMBERS_OF, members)
    finally:
        mark_settled(store, TEAMS_POLLER.name)


def _after_the_agent_listing(settings: Settings) -> Poller:
    """The job that lists the agents goes first (for 10 s at most): started with it, a first cycle
    of hundreds of team member listings takes the minute's window before the users listing, which
    every agent's first state comes from, has sent its pages. (Imported here: those jobs' sources
    read the teams.)"""
    from exporter.sources.agent_directory import AGENT_DIRECTORY_POLLER
    from exporter.sources.agent_states import AGENTS_POLLER, listing_is_state_poll

    return AGENTS_POLLER if listing_is_state_poll(settings) else AGENT_DIRECTORY_POLLER


TEAMS_FIRST_WAIT_SECONDS = 10.0
# Its first pass goes at the agents' priority, beside the member listing: `genesys_agent_info` waits for
# both (`exporter.sources.settled`), and behind the by-id polls and the member listing it would only begin
# once they are done.
TEAMS_POLLER = Poller(name="teams", cadence=lambda s: s.directory_interval, priority=4, first_priority=2)
SOURCE = Source(
    name="teams",
    keeps=(TEAMS_BY_ID, TEAM_MEMBERS_OF),
    polls=(Poll(TEAMS_POLLER, refresh_teams, after=_after_the_agent_listing, wait_at_most=TEAMS_FIRST_WAIT_SECONDS),),
)
