"""The agents in scope in the `members` scope: the members of the queues in scope, and their names.

Each queue's members come from `GET /api/v2/routing/queues/{queueId}/members`, which pages by
`nextUri` without totals (https://developer.genesys.cloud/routing/routing/), one request per
100 members of each queue; a member that has joined the queue is active in it, which is what a
leaderboard's queue filter asks. In the `users` scope the directory is the users listing instead
(`exporter.sources.user_listing`).

The agents are also what every per-agent family is about: which of them are exported (the
operator's team and division choice), in which shard of `collect[]=agents`, and their descriptive
labels, which only `genesys_agent_info` carries: the other families have `user_id` and join to it.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from exporter.config import Settings
from exporter.exposition import family_header, labels, value_text
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import QUEUE_MEMBERS
from exporter.genesys.models import MemberListing
from exporter.snapshot import Directory, Key, Snapshot
from exporter.sources.queue_directory import DIRECTORY_POLLER, QUEUES
from exporter.sources.settled import SETTLED, labels_settled, mark_settled
from exporter.sources.source import Metric, Piece, Poll, Poller, Selection, Show, Source, Tagged, Wiring
from exporter.sources.teams import LISTED_TEAM_OF, TEAM_MEMBERS_OF, TEAMS_BY_ID, team_of


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent in scope: what describes their series."""

    id: str
    name: str
    division: str  # division name ("" when the API gave none)
    division_id: str = ""


AGENTS: Directory[Agent] = Directory("agents")
# User id -> the ids of the queues in scope the agent has joined, sorted (members scope only).
ACTIVE_QUEUES: Directory[tuple[str, ...]] = Directory("active_queues")


def parse_member_pages(pages: Iterable[MemberListing]) -> dict[str, Agent]:
    """Pure: queue member pages (any queues) in, the distinct agents out."""
    agents: dict[str, Agent] = {}
    for page in pages:
        for member in page.entities:
            user = member.user
            name = member.name or (user.name if user else None) or member.id
            division = user.division if user and user.division else None
            agents[member.id] = Agent(
                member.id, name, (division.name or "") if division else "", division.id if division else ""
            )
    return agents


def joined_members(pages: Iterable[MemberListing]) -> list[str]:
    """Pure: the members of one queue's pages who have joined it (an unsaid `joined` counts as not)."""
    return [member.id for page in pages for member in page.entities if member.joined]


async def discover_members(
    client: GenesysClient,
    queue_ids: Iterable[str],
    found: Callable[[str, dict[str, Agent], list[str]], None] = lambda *_: None,
) -> None:
    """Members of every queue, queues fetched concurrently (each page through the shared budget).

    Each queue's agents and joined members are handed to `found` as soon as its pages are listed: at
    thousands of queues the whole directory takes minutes, and the first agents' states need not
    wait for the last queue. A page is read as it arrives: a queue's next page waits behind the
    other queues' pages, and its first page's models would be held meanwhile, thousands of them.
    """

    async def members(queue_id: str) -> None:
        agents: dict[str, Agent] = {}
        joined: list[str] = []
        async for page in client.pages_by_next_uri(QUEUE_MEMBERS, page_size=100, queueId=queue_id):
            listing = client.validate(QUEUE_MEMBERS, page, MemberListing)
            agents.update(parse_member_pages([listing]))
            joined += joined_members([listing])
            del page, listing  # not held while the next page waits its turn
        found(queue_id, agents, joined)

    await asyncio.gather(*(members(q) for q in sorted(queue_ids)))


async def refresh_members(wiring: Wiring) -> None:
    """The members of the queues in scope, published queue by queue (their states need not wait for the
    last queue), and the queues each is active in, published whole at the end of the pass: an agent's
    queues half listed are a label value `genesys_agent_info` must not show (`exporter.sources.settled`).

    An agent listed as the directory has them is kept as the directory's own object: a pass over
    every queue lists each agent once per queue, and would otherwise hold a second directory until
    its end."""
    store = wiring.store
    agents: dict[str, Agent] = {}
    active: dict[str, list[str]] = {}

    def found(queue_id: str, listed: dict[str, Agent], joined: list[str]) -> None:
        known = store.snapshot[AGENTS]
        listed = {uid: known[uid] if known.get(uid) == agent else agent for uid, agent in listed.items()}
        agents.update(listed)
        for uid in joined:
            active.setdefault(uid, []).append(queue_id)
        store.add(AGENTS, listed)

    try:
        await discover_members(wiring.client, store.snapshot[QUEUES], found)
        store.set(AGENTS, agents)
        store.set(ACTIVE_QUEUES, {uid: tuple(sorted(queues)) for uid, queues in active.items()})
    finally:
        mark_settled(store, AGENT_DIRECTORY_POLLER.name)


# ----- the agents as the page shows them -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Row:
    """An exported agent: the label block every per-agent family starts its lines with, and its shard."""

    id: str
    block: str
    shard: int


def shard_of(user_id: str, shards: int) -> int:
    """A stable share of the agents by their id, the same in every process and every run (not `hash`)."""
    return zlib.crc32(user_id.encode()) % shards if shards > 1 else 0


def selected(agent: Agent, team_name: str, team_id: str, selection: Selection) -> bool:
    """Whether the operator's team and division choice (names in any case, or ids) exports the agent."""
    if selection.divisions and not ({agent.division.casefold(), agent.division_id.casefold()} & selection.divisions):
        return False
    return not selection.teams or bool(({team_name.casefold(), team_id.casefold()} - {""}) & selection.teams)


@dataclass(frozen=True, slots=True)
class Exported:
    """The exported agents in id order, and by id."""

    rows: tuple[Row, ...]
    by_id: Mapping[str, Row]


class ExportedAgents:
    """The exported agents, kept while the agent list, the teams and the selection are the same objects:
    every per-agent family of a page build reads them, from one thread or another."""

    reads: tuple[Key, ...] = (AGENTS, TEAMS_BY_ID, TEAM_MEMBERS_OF, LISTED_TEAM_OF)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[tuple[object, ...], Exported] | None = None

    def __call__(self, snapshot: Snapshot, selection: Selection) -> Exported:
        inputs = (*(snapshot[key] for key in self.reads), selection)
        with self._lock:
            if self._last is None or any(a is not b for a, b in zip(self._last[0], inputs, strict=True)):
                self._last = (inputs, self._rows(snapshot, selection))
            return self._last[1]

    @staticmethod
    def _rows(snapshot: Snapshot, selection: Selection) -> Exported:
        members, listed, teams = snapshot[TEAM_MEMBERS_OF], snapshot[LISTED_TEAM_OF], snapshot[TEAMS_BY_ID]
        rows = []
        for uid, agent in sorted(snapshot[AGENTS].items()):
            if selection.teams or selection.divisions:
                team = team_of(uid, members, listed, teams)
                if not selected(agent, team.name if team else "", team.id if team else "", selection):
                    continue
            rows.append(Row(uid, labels(user_id=uid), shard_of(uid, selection.shards)))
        return Exported(tuple(rows), {row.id: row for row in rows})


exported_agents = ExportedAgents()


def agent_family(
    name: str, help_text: str, rows: Iterable[Row], line: Callable[[Row], str | None], shards: int
) -> Iterator[Piece]:
    """One per-agent family: its header for every shard, then each shard's lines (`line` gives the text
    after the family name, or None for an agent without a value); nothing at all when no agent has one."""
    by_shard: list[list[str]] = [[] for _ in range(shards)]
    for row in rows:
        text = line(row)
        if text is not None:
            by_shard[row.shard].append(f"{name}{text}\n")
    if any(by_shard):
        yield None, family_header(name, "gauge", help_text)
        for shard, lines in enumerate(by_shard):
            yield shard, "".join(lines)


def render_agent_info(snapshot: Snapshot, selection: Selection) -> Iterator[Piece]:
    if not labels_settled(snapshot, selection.info_waits_for):
        return
    agents, active = snapshot[AGENTS], snapshot[ACTIVE_QUEUES]
    members, listed, teams = snapshot[TEAM_MEMBERS_OF], snapshot[LISTED_TEAM_OF], snapshot[TEAMS_BY_ID]

    def line(row: Row) -> str:
        agent, team = agents[row.id], team_of(row.id, members, listed, teams)
        described = labels(agent_name=agent.name, division=agent.division, team=team.name if team else "")
        queues = active.get(row.id)
        if queues:  # joined in a regex-friendly way: queue_ids=~".*,<id>,.*" finds an agent of that queue
            described += "," + labels(queue_ids="," + ",".join(queues) + ",")
        return f"{{{row.block},{described}}} 1"

    yield from agent_family(
        "genesys_agent_info",
        "Agent in scope (value 1), with the labels the other agent families join to by user_id: name, "
        "division, work team, and the ids of the queues they have joined (members scope).",
        exported_agents(snapshot, selection).rows,
        line,
        selection.shards,
    )


def value_line(row: Row, value: float | None) -> str | None:
    """A per-agent line after the family name: the agent's label block and the value, or no line at all."""
    return None if value is None else f"{{{row.block}}} {value_text(value)}"


def agent_segment(
    segment: str,
    render: Callable[[Snapshot, Selection], Iterable[Piece]],
    *reads: Key,
    compressor: Callable[[], Callable[[Snapshot, Selection], tuple[Tagged, ...]]] | None = None,
    metrics: tuple[Metric, ...] = (),
) -> Show:
    """A per-agent segment: it reads the exported agents besides its own `reads`, `collect[]=agents`
    serves it (in shards), and it is paced (each is as big as the org)."""
    return Show(
        segment=segment,
        collector="agents",
        reads=(*ExportedAgents.reads, *reads),
        render=render,
        compressor=compressor,
        paced=True,
        metrics=metrics,
    )


AGENT_DIRECTORY_POLLER = Poller(
    name="agent_directory",
    cadence=lambda s: s.directory_interval,
    # Its first pass goes before the agents' state polls (every agent's data waits for it), then it
    # stretches first, as a directory should.
    priority=4,
    first_priority=1,
)


def members_scope(settings: Settings) -> bool:
    return settings.agent_scope == "members"


def lists_users_first(settings: Settings) -> bool:
    """The members scope over every queue: a start lists the users before their queues' members
    (`exporter.sources.user_listing`). Where the operator narrowed the queues, most users may be no
    member of them, and a few queues' members are listed soon anyway."""
    return members_scope(settings) and not (settings.queue_ids or settings.queue_name or settings.division_ids)


def members_listed_alone(settings: Settings) -> bool:
    return members_scope(settings) and not lists_users_first(settings)


SOURCE = Source(
    name="agent_directory",
    keeps=(AGENTS, ACTIVE_QUEUES, SETTLED),
    polls=(Poll(AGENT_DIRECTORY_POLLER, refresh_members, after=DIRECTORY_POLLER, when=members_listed_alone),),
    show=agent_segment("agent_info", render_agent_info, ACTIVE_QUEUES, SETTLED),
)
