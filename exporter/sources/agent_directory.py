"""The agents in scope in the `members` scope: the members of the queues in scope, and their names.

Each queue's members come from `GET /api/v2/routing/queues/{queueId}/members`, which pages by
`nextUri` without totals (https://developer.genesys.cloud/routing/routing/), one request per
100 members of each queue. In the `users` scope the directory is the users listing instead
(`exporter.sources.user_listing`). Either way the agents are what labels every agent series.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from exporter.config import Settings
from exporter.exposition import info, labels
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import QUEUE_MEMBERS
from exporter.genesys.models import MemberListing
from exporter.gzip_segments import Segment
from exporter.snapshot import Directory, Key, Snapshot
from exporter.sources.queue_directory import DIRECTORY_POLLER, QUEUES
from exporter.sources.source import Poll, Poller, Show, Source, Wiring


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent in scope: what labels their series."""

    id: str
    name: str
    division: str


AGENTS: Directory[Agent] = Directory("agents")


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


async def refresh_members(wiring: Wiring) -> None:
    """The members of the queues in scope, published queue by queue as they are listed."""
    store = wiring.store
    agents = await discover_members(wiring.client, store.snapshot[QUEUES], lambda found: store.add(AGENTS, found))
    store.set(AGENTS, agents)


class _Blocks:
    """Each agent's label block for the agent list last asked about: every per-agent family shares it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[Mapping[str, Agent], dict[str, str]] | None = None

    def __call__(self, agents: Mapping[str, Agent]) -> dict[str, str]:
        with self._lock:
            if self._last is None or self._last[0] is not agents:
                self._last = (
                    agents,
                    {uid: labels(user_id=uid, agent_name=a.name) for uid, a in sorted(agents.items())},
                )
            return self._last[1]


agent_label_blocks = _Blocks()  # one list of agents at a time: the snapshot's, the same object until it changes


def render_agent_info(snapshot: Snapshot) -> tuple[str, ...]:
    agents = sorted(snapshot[AGENTS].items())
    blocks = (labels(user_id=uid, agent_name=a.name, division=a.division) for uid, a in agents)
    return (info("genesys_agent_info", "Agent in scope (value 1), from queue members or the user list.", blocks),)


AGENT_DIRECTORY_POLLER = Poller(
    name="agent_directory",
    cadence=lambda s: s.directory_interval,
    # Its first pass goes before the agents' state polls (every agent's data waits for it), then it
    # stretches first, as a directory should.
    priority=4,
    first_priority=1,
)


def agent_segment(
    segment: str,
    families: Callable[[Snapshot], Iterable[str]],
    *reads: Key,
    compressor: Callable[[], Callable[[Snapshot], Segment]] | None = None,
) -> Show:
    """A per-agent segment: it reads the agent list besides its own `reads`, `collect[]=agents`
    serves it, and it is paced (each is as big as the org)."""
    return Show(
        segment=segment,
        collector="agents",
        reads=(AGENTS, *reads),
        families=families,
        compressor=compressor,
        paced=True,
    )


def members_scope(settings: Settings) -> bool:
    return settings.agent_scope == "members"


SOURCE = Source(
    name="agent_directory",
    keeps=AGENTS,
    polls=(Poll(AGENT_DIRECTORY_POLLER, refresh_members, after=DIRECTORY_POLLER, when=members_scope),),
    show=agent_segment("agent_info", render_agent_info),
)
