"""The users listing: every active user, 100 a page with their routing status and presence.

`GET /api/v2/users?state=active&expand=routingStatus,presence` pages with totals
(https://developer.genesys.cloud/useragentman/users/), so all pages after the first go at once,
and each page both names 100 agents and carries their states. One pass is therefore the agent
directory and a state poll in one.

In the `users` scope it is the directory: with push off it is the agents' job on their cadence; with
push on its first pass gives every agent a state before any channel is live, and its later passes
leave the states to push and the polls by id.

In the `members` scope over the whole org it is the start's first sight of the agents: the member
listing takes a request per queue and minutes at thousands of queues, the users listing a request
per 100 users. So a start lists the users first, every one of them shown with their state at once,
and the member listing that follows narrows them to the members of the queues in scope when it
ends: a user who is no queue's member shows for that one pass, a member is never missing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping

from exporter.config import Settings
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import USERS
from exporter.genesys.models import UserListing
from exporter.scheduling.budget import Caller, as_caller, current_caller
from exporter.snapshot import PartKey
from exporter.sources.agent_directory import (
    AGENT_DIRECTORY_POLLER,
    AGENTS,
    Agent,
    lists_users_first,
    refresh_members,
)
from exporter.sources.agent_states import (
    AGENT_STATES,
    AGENTS_POLLER,
    STATE_EXPAND,
    USERS_PER_REQUEST,
    AgentState,
    listing_is_state_poll,
    parse_agent_states,
)
from exporter.sources.queue_directory import DIRECTORY_POLLER
from exporter.sources.source import Poll, Source, Wiring
from exporter.sources.teams import LISTED_TEAM_OF

LISTING_EXPAND = STATE_EXPAND + ",team"  # the team too, at no extra request (best effort, like the states)


def parse_user_pages(pages: Iterable[UserListing]) -> dict[str, Agent]:
    """Pure: `GET /users` pages in, the active users out."""
    agents: dict[str, Agent] = {}
    for page in pages:
        for user in page.entities:
            if user.state in (None, "active"):
                division = user.division
                name = (division.name or "") if division else ""
                agents[user.id] = Agent(user.id, user.name or user.id, name, division.id if division else "")
    return agents


def parse_user_teams(page: UserListing) -> dict[str, str]:
    """Pure: the team of each user of a page (`expand=team`): its id, or "" for a user in none.

    The expand is best effort: a page on which no user has a team says nothing (maybe the expand was
    left out), so nothing is read from it; on a page where some have one, the others have none.
    """
    if not any(user.team for user in page.entities):
        return {}
    return {user.id: user.team.id if user.team else "" for user in page.entities}


async def poll_users_with_state(
    client: GenesysClient,
    publish: Callable[[int, Mapping[str, Agent], Mapping[str, AgentState], Mapping[str, str]], None],
    expand: str = LISTING_EXPAND,
) -> dict[str, Agent]:
    """One pass of the active-user listing with routing status and presence expanded (and the team,
    unless `expand` leaves it out).

    Pages are published as they arrive (keyed by arrival order); returns every agent listed.
    """
    agents: dict[str, Agent] = {}
    params = {"state": "active", "expand": expand}
    async with contextlib.aclosing(client.pages(USERS, params=params, page_size=USERS_PER_REQUEST)) as pages:
        index = 0  # a cancelled cycle closes the listing at once: its page requests stop with it
        async for page in pages:
            listing = client.validate(USERS, page, UserListing)
            page_agents = parse_user_pages([listing])
            states = {uid: state for uid, state in parse_agent_states(listing).items() if uid in page_agents}
            teams = {uid: team for uid, team in parse_user_teams(listing).items() if uid in page_agents}
            publish(index, page_agents, states, teams)
            agents.update(page_agents)
            index += 1
    return agents


# The start's listing with push on sends for the agents' first states, not for its job: a job's
# first cycle of unknown cost may take at most part of the minute's window (`RateBudget._job_cap`)
# so that the agents' first state polls find room, and these pages are those polls. They go ahead
# of every job but the urgent ones: in a large org on one client the listing takes the whole budget
# for minutes, and every agent on the page waits for it.
FIRST_STATES = Caller("user_listing", priority=1, ahead=True)


@contextlib.contextmanager
def _as_first_states(wiring: Wiring) -> Iterator[None]:
    """With push on, a pass that gives every agent a first state goes as `FIRST_STATES`, push polling
    no agent meanwhile; with push off it is the agents' own job, paced like one."""
    if wiring.push is None:
        yield
        return
    with wiring.listing_first_states(), as_caller(FIRST_STATES):
        yield


async def list_users(wiring: Wiring, *, keep_teams: bool = True) -> None:
    """One pass of the listing. With push on, its states are kept on its first pass only (no agent has
    any state yet), not held twice in the store ever after; a pushed agent's state is push's to tell.
    `keep_teams` False leaves the teams to their member listings (the members scope, which lists the
    users once: a team the listing said at the start would outlive the agent's move to another)."""
    store = wiring.store
    directory = store.status("agent_directory")
    with_states = directory is None or directory.last_success is None

    teams: dict[str, str] = {}

    def publish(
        index: int, agents: Mapping[str, Agent], states: Mapping[str, AgentState], page_teams: Mapping[str, str]
    ) -> None:
        store.add(AGENTS, agents)
        if keep_teams:
            store.add(LISTED_TEAM_OF, page_teams)
            teams.update(page_teams)
        if with_states:
            polled = wiring.polled("agents", states)
            store.put(AGENT_STATES, PartKey("listing", (index,)), {uid: states[uid] for uid in polled})

    expand = LISTING_EXPAND if keep_teams else STATE_EXPAND
    with _as_first_states(wiring) if with_states else contextlib.nullcontext():
        agents = await poll_users_with_state(wiring.client, publish, expand)
    store.set(AGENTS, agents)
    if not keep_teams:
        return
    # What this pass said of each agent's team; what an earlier one said of those it said nothing of.
    known = store.snapshot[LISTED_TEAM_OF]
    store.set(
        LISTED_TEAM_OF,
        {uid: teams[uid] if uid in teams else known[uid] for uid in agents if uid in teams or uid in known},
    )


async def list_users_then_members(wiring: Wiring) -> None:
    """The members scope's directory over the whole org: the users listed while it knows nobody (a
    start, or a start whose listing failed), then the member listing, which keeps only the members.

    Once the users are listed no agent's data waits for the member listing any more, while their
    listed states must be polled again before they expire: the rest of the pass goes at the agents'
    priority, not ahead of their polls (and behind push's reconciliation of what it subscribed).
    """
    if wiring.store.snapshot[AGENTS]:
        await refresh_members(wiring)
        return
    await list_users(wiring, keep_teams=False)
    with as_caller(Caller(current_caller.get().name, AGENTS_POLLER.priority)):
        await refresh_members(wiring)


def listed_with_push(settings: Settings) -> bool:
    return settings.agent_scope == "users" and not listing_is_state_poll(settings)


SOURCE = Source(
    name="user_listing",
    keeps=(LISTED_TEAM_OF,),  # besides the agents and their first states, which the directory and states keep
    polls=(
        Poll(AGENT_DIRECTORY_POLLER, list_users, after=DIRECTORY_POLLER, when=listed_with_push),
        Poll(AGENTS_POLLER, list_users, after=DIRECTORY_POLLER, when=listing_is_state_poll),
        Poll(AGENT_DIRECTORY_POLLER, list_users_then_members, after=DIRECTORY_POLLER, when=lists_users_first),
    ),
)
