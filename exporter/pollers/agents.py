"""Agents in scope and their live routing status and presence.

Scope: the members of the queues in scope (`GET /routing/queues/{id}/members`, `nextUri` paging
without totals) or every active user (`GET /users`, numbered paging, which in that scope carries
the state too). Live state comes from `GET /users?id=...&expand=routingStatus,presence`, 100
agents a request: one request per 100 agents
however many queues each belongs to, where the routing activity query returns a row per agent *and
queue* (see the README for the comparison). Each batch is published as soon as it parses, so a slow
or failed batch never holds back the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import QUEUE_MEMBERS, USERS
from exporter.genesys.models import MemberListing, PresencePart, RoutingStatusPart, UserListing
from exporter.pollers.batching import BatchesFailed, batches
from exporter.snapshot import Agent, AgentState

USERS_PER_REQUEST = 100
STATE_EXPAND = "routingStatus,presence"


def parse_member_pages(pages: Iterable[MemberListing]) -> dict[str, Agent]:
    """Pure: queue member pages (any queues) in, the distinct agents out."""
    agents: dict[str, Agent] = {}
    for page in pages:
        for member in page.entities:
            user = member.user
            name = member.name or (user.name if user else None) or member.id
            division = user.division.name if user and user.division and user.division.name else ""
            agents[member.id] = Agent(member.id, name, division or "")
    return agents


def parse_user_pages(pages: Iterable[UserListing]) -> dict[str, Agent]:
    """Pure: `GET /users` pages in, the active users out."""
    agents: dict[str, Agent] = {}
    for page in pages:
        for user in page.entities:
            if user.state in (None, "active"):
                division = user.division.name if user.division and user.division.name else ""
                agents[user.id] = Agent(user.id, user.name or user.id, division)
    return agents


def _epoch(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None


def agent_state(routing: RoutingStatusPart | None, presence: PresencePart | None) -> AgentState:
    """Pure: the routing status and presence parts of a user (or of an activity notification) in, a state out.

    A part left out (the expand is best effort) gives None there, which the metrics leave out; it
    is never read as off queue or offline.
    """
    definition = presence.presence_definition if presence else None
    return AgentState(
        routing_status=routing.status.lower() if routing and routing.status else None,
        presence=definition.system_presence.lower().replace(" ", "_")
        if definition and definition.system_presence
        else None,
        status_since=_epoch(routing.start_time) if routing else None,
        presence_since=_epoch(presence.modified_date) if presence else None,
    )


def parse_agent_states(page: UserListing) -> dict[str, AgentState]:
    """Pure: one `GET /users?expand=routingStatus,presence` page in, a state per user out."""
    return {user.id: agent_state(user.routing_status, user.presence) for user in page.entities}


async def discover_members(
    client: GenesysClient,
    queue_ids: Iterable[str],
    found: Callable[[Mapping[str, Agent]], None] = lambda _: None,
) -> dict[str, Agent]:
    """Members of every queue, queues fetched concurrently (each page through the shared budget).

    Each queue's members are handed to `found` as soon as they are listed: at 2,000 queues the
    whole directory takes minutes, and the first agents' states need not wait for the last queue.
    """

    async def members(queue_id: str) -> list[MemberListing]:
        pages = client.pages_by_next_uri(QUEUE_MEMBERS, page_size=100, queueId=queue_id)
        listed = [client.validate(QUEUE_MEMBERS, page, MemberListing) async for page in pages]
        found(parse_member_pages(listed))
        return listed

    pages = await asyncio.gather(*(members(q) for q in sorted(queue_ids)))
    return parse_member_pages(page for queue_pages in pages for page in queue_pages)


async def poll_users_with_state(
    client: GenesysClient, publish: Callable[[int, Mapping[str, Agent], Mapping[str, AgentState]], None]
) -> dict[str, Agent]:
    """Users scope: one pass of the active-user listing with routing status and presence expanded.

    Each page names 100 agents and carries their state, so in this scope the listing is the state
    poll too: one request per 100 agents a cycle, where listing first and then asking by id would
    cost two, and the first agents show up with the first page instead of after the whole directory.
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


def state_params(user_ids: Sequence[str]) -> dict[str, str | int | Sequence[str]]:
    return {"id": list(user_ids), "pageSize": USERS_PER_REQUEST, "expand": STATE_EXPAND}


async def poll_agent_states(
    client: GenesysClient,
    agent_ids: Iterable[str],
    publish: Callable[[int, Mapping[str, AgentState]], None],
) -> int:
    """Fetch every batch concurrently; publish each as it arrives. Returns the requests sent."""

    async def one(index: int, batch: list[str]) -> None:
        publish(index, parse_agent_states(await client.get_as(USERS, UserListing, params=state_params(batch))))

    todo = batches(agent_ids, USERS_PER_REQUEST)
    outcomes = await asyncio.gather(*(one(i, b) for i, b in enumerate(todo)), return_exceptions=True)
    BatchesFailed.raise_for(outcomes)
    return len(todo)
