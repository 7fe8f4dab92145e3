"""The `users` scope: every active user, listed 100 a page with their routing status and presence.

`GET /api/v2/users?state=active&expand=routingStatus,presence` pages with totals
(https://developer.genesys.cloud/useragentman/users/), so all pages after the first go at once,
and each page both names 100 agents and carries their states. One pass is therefore the agent
directory and a state poll in one: with push off it is the agents' job on their cadence; with push
on it is the directory, whose first pass gives every agent a state before any channel is live,
and whose later passes leave the states to push and the polls by id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping

from exporter.config import Settings
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import USERS
from exporter.genesys.models import UserListing
from exporter.snapshot import PartKey
from exporter.sources.agent_directory import AGENT_DIRECTORY_POLLER, AGENTS, Agent
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


def parse_user_pages(pages: Iterable[UserListing]) -> dict[str, Agent]:
    """Pure: `GET /users` pages in, the active users out."""
    agents: dict[str, Agent] = {}
    for page in pages:
        for user in page.entities:
            if user.state in (None, "active"):
                division = user.division.name if user.division and user.division.name else ""
                agents[user.id] = Agent(user.id, user.name or user.id, division)
    return agents


async def poll_users_with_state(
    client: GenesysClient, publish: Callable[[int, Mapping[str, Agent], Mapping[str, AgentState]], None]
) -> dict[str, Agent]:
    """One pass of the active-user listing with routing status and presence expanded.

    Pages are published as they arrive (keyed by arrival order); returns every agent listed.
    """
    agents: dict[str, Agent] = {}
    params = {"state": "active", "expand": STATE_EXPAND}
    async with contextlib.aclosing(client.pages(USERS, params=params, page_size=USERS_PER_REQUEST)) as pages:
        index = 0  # a cancelled cycle closes the listing at once: its page requests stop with it
        async for page in pages:
            listing = client.validate(USERS, page, UserListing)
            page_agents = parse_user_pages([listing])
            states = {uid: state for uid, state in parse_agent_states(listing).items() if uid in page_agents}
            publish(index, page_agents, states)
            agents.update(page_agents)
            index += 1
    return agents


async def list_users(wiring: Wiring) -> None:
    """One pass of the listing. With push on, its states are kept on its first pass only (no agent has
    any state yet), not held twice in the store ever after; a pushed agent's state is push's to tell."""
    store = wiring.store
    directory = store.status("agent_directory")
    with_states = directory is None or directory.last_success is None

    def publish(index: int, agents: Mapping[str, Agent], states: Mapping[str, AgentState]) -> None:
        store.add(AGENTS, agents)
        if with_states:
            polled = wiring.polled("agents", states)
            store.put(AGENT_STATES, PartKey("listing", (index,)), {uid: states[uid] for uid in polled})

    store.set(AGENTS, await poll_users_with_state(wiring.client, publish))


def listed_with_push(settings: Settings) -> bool:
    return settings.agent_scope == "users" and not listing_is_state_poll(settings)


SOURCE = Source(
    name="user_listing",
    polls=(
        Poll(AGENT_DIRECTORY_POLLER, list_users, after=DIRECTORY_POLLER, when=listed_with_push),
        Poll(AGENTS_POLLER, list_users, after=DIRECTORY_POLLER, when=listing_is_state_poll),
    ),
)
