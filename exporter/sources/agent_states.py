"""Agents' live routing status and presence, 100 agents a request, and the page's largest segment.

`GET /api/v2/users?id=...&expand=routingStatus,presence` answers 100 agents a request however many
queues each belongs to (https://developer.genesys.cloud/useragentman/users/); the routing activity
query would repeat an agent in every queue they are a member of (the README compares them). Each
batch is published as soon as it parses, so a slow or failed batch never holds back the others.
With push on, the agents a live channel keeps current are left to it (`exporter.push`), and in
the `users` scope the listing's first pass has already given every agent a state
(`exporter.sources.user_listing`).

In a large org the three state families are megabytes of text and a state part (100 agents) lands
every second or so: the segment keeps each part's lines while the part is the same object and
compresses them in runs of parts, so a new part recompresses one run, not every agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from exporter.config import Settings
from exporter.exposition import escape, family_header, value_text
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import USERS
from exporter.genesys.models import PresencePart, RoutingStatusPart, UserListing
from exporter.gzip_segments import Segment, compress, join
from exporter.snapshot import Measurement, Part, PartKey, Parts, Snapshot
from exporter.sources.agent_directory import AGENT_DIRECTORY_POLLER, AGENTS, agent_label_blocks, agent_segment
from exporter.sources.batches import BatchesFailed, batches
from exporter.sources.source import Poll, Poller, Source, Wiring

USERS_PER_REQUEST = 100
STATE_EXPAND = "routingStatus,presence"
FIRST_AGENTS_WITHIN_SECONDS = 10.0  # the first agent states are polled by then, whatever the directory's progress


@dataclass(frozen=True, slots=True)
class AgentState:
    """An agent's live state; a field the API left out (best-effort expand) is None, not a guess."""

    routing_status: str | None  # lower-case: idle, interacting, communicating, not_responding, off_queue
    presence: str | None  # lower-case system presence: available, away, on_queue, ...
    status_since: float | None  # epoch seconds when the routing status began
    presence_since: float | None = None  # epoch seconds the presence was set: orders pushed and polled news


AGENT_STATES: Measurement[AgentState] = Measurement("agent_states")


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


def state_params(user_ids: Sequence[str]) -> dict[str, str | int | Sequence[str]]:
    return {"id": list(user_ids), "pageSize": USERS_PER_REQUEST, "expand": STATE_EXPAND}


async def poll_agent_states(
    client: GenesysClient,
    agent_ids: Iterable[str],
    publish: Callable[[int, Mapping[str, AgentState]], None],
) -> None:
    """Fetch every batch concurrently; publish each as it arrives; raise `BatchesFailed` after all
    batches ended when any failed."""

    async def one(index: int, batch: list[str]) -> None:
        publish(index, parse_agent_states(await client.get_as(USERS, UserListing, params=state_params(batch))))

    todo = batches(agent_ids, USERS_PER_REQUEST)
    outcomes = await asyncio.gather(*(one(i, b) for i, b in enumerate(todo)), return_exceptions=True)
    BatchesFailed.raise_for(outcomes)


def listing_is_state_poll(settings: Settings) -> bool:
    """Users scope with push off: the users listing carries every state, so it runs on the agents'
    cadence as their one job (`exporter.sources.user_listing`), and no poll by id is needed."""
    return settings.agent_scope == "users" and settings.push == "off"


def freshly_listed(snapshot: Snapshot, since: float) -> set[str]:
    """Agents whose state the users listing gave since `since` (monotonic): polling them by id as well
    would cost a request per 100 of them and hold every state twice."""
    return {
        uid
        for key, part in snapshot[AGENT_STATES].items()
        if key.origin == "listing" and part.taken_at >= since
        for uid in part.items
    }


async def poll_states_by_id(wiring: Wiring) -> None:
    """The agents in scope that neither push nor the listing's last pass keeps current."""
    snapshot = wiring.store.snapshot
    status = snapshot.pollers.get("agents")
    cadence = status.interval if status else wiring.settings.agent_interval
    listed = freshly_listed(snapshot, wiring.clock.monotonic() - cadence)
    agent_ids = [uid for uid in wiring.polled("agents", snapshot[AGENTS]) if uid not in listed]
    if agent_ids:
        await poll_agent_states(wiring.client, agent_ids, wiring.store.publisher(AGENT_STATES))


# ----- on the page ------------------------------------------------------------------------------
StateLines = tuple[str, str, str]  # one state part's lines of the three state families

STATE_FAMILIES = (
    (
        "genesys_agent_routing_status",
        "The agent's current routing status (value 1; one series per agent), from GET /api/v2/users.",
    ),
    ("genesys_agent_presence", "The agent's current system presence (value 1; one series per agent)."),
    ("genesys_agent_status_since_timestamp_seconds", "Unix time when the agent's current routing status began."),
)
STATE_PARTS_PER_RUN = 25  # state parts compressed together: a new part recompresses one run, not every agent


def agent_state_parts(
    parts: Parts[AgentState], blocks: Mapping[str, str]
) -> Iterator[tuple[PartKey, Part[AgentState], list[str]]]:
    """Each state part in page order with the agents it shows: where parts overlap, the newest part
    has the agent, and an agent out of scope (no label block) is left out."""
    owner: dict[str, PartKey] = {}
    for key, part in sorted(parts.items(), key=lambda kv: kv[1].taken_at):
        owner.update(dict.fromkeys(part.items, key))
    for key in sorted(parts):
        part = parts[key]
        yield key, part, sorted(uid for uid in part.items if owner[uid] == key and uid in blocks)


def agent_state_lines(uids: list[str], states: Mapping[str, AgentState], blocks: Mapping[str, str]) -> StateLines:
    """One part's lines of the three state families, for the agents given."""
    routing, presence, since = (name for name, _ in STATE_FAMILIES)
    pairs = [(blocks[uid], states[uid]) for uid in uids]
    return (
        "".join(
            f'{routing}{{{b},routing_status="{escape(s.routing_status)}"}} 1\n' for b, s in pairs if s.routing_status
        ),
        "".join(f'{presence}{{{b},presence="{escape(s.presence)}"}} 1\n' for b, s in pairs if s.presence),
        "".join(f"{since}{{{b}}} {value_text(s.status_since)}\n" for b, s in pairs if s.status_since is not None),
    )


def agent_state_families(parts: Sequence[StateLines]) -> Iterator[tuple[int, str, list[str]]]:
    """Each state family with lines: its index, its HELP/TYPE header, and a piece of lines per part.

    Pieces, not one joined text: a large family joined (then encoded) would hold two more copies
    of what the compressor reads piece by piece anyway.
    """
    by_family: tuple[list[str], list[str], list[str]] = ([], [], [])
    for lines in parts:
        for pieces, text in zip(by_family, lines, strict=True):
            pieces.append(text)
    for index, ((name, help_text), pieces) in enumerate(zip(STATE_FAMILIES, by_family, strict=True)):
        if any(pieces):
            yield index, family_header(name, "gauge", help_text), pieces


def render_agent_states(snapshot: Snapshot) -> tuple[str, ...]:
    """The three state families, each as its header and then one piece of lines per state part."""
    blocks = agent_label_blocks(snapshot[AGENTS])
    lines = [
        agent_state_lines(uids, part.items, blocks)
        for _, part, uids in agent_state_parts(snapshot[AGENT_STATES], blocks)
    ]
    return tuple(text for _, header, pieces in agent_state_families(lines) for text in (header, *pieces))


class StateSegment:
    """Builds the state segment from what the last build left: each part's lines while the part is the
    same object (even re-stamped: a live channel's data, current without news), and each run of
    parts compressed while its lines are. A new agent list starts afresh. One thread at a time."""

    def __init__(self) -> None:
        self._agents: Mapping[str, object] | None = None
        self._lines: dict[PartKey, tuple[Part[AgentState], StateLines]] = {}
        self.runs: dict[tuple[int, int], tuple[tuple[str, ...], Segment]] = {}  # (family, first part) -> run

    def __call__(self, snapshot: Snapshot) -> Segment:
        segments, used = [], set()
        for index, header, lines in agent_state_families(self._state_lines(snapshot)):
            segments.append(compress([header]))
            for first in range(0, len(lines), STATE_PARTS_PER_RUN):
                run = tuple(lines[first : first + STATE_PARTS_PER_RUN])
                kept = self.runs.get((index, first))
                if (
                    kept is None
                    or len(kept[0]) != len(run)
                    or any(a is not b for a, b in zip(kept[0], run, strict=True))
                ):
                    kept = self.runs[(index, first)] = (run, compress(run))
                segments.append(kept[1])
                used.add((index, first))
        # Runs past the end (fewer parts now: the listing's first pass dropped) would keep their lines alive.
        for key in self.runs.keys() - used:
            del self.runs[key]
        return join(segments)

    def _state_lines(self, snapshot: Snapshot) -> list[StateLines]:
        agents = snapshot[AGENTS]
        if self._agents is not agents:
            self._agents, self._lines, self.runs = agents, {}, {}
        blocks = agent_label_blocks(agents)
        kept: dict[PartKey, tuple[Part[AgentState], StateLines]] = {}
        out = []
        for key, part, uids in agent_state_parts(snapshot[AGENT_STATES], blocks):
            whole = len(uids) == len(part.items)  # only whole parts are worth keeping
            cached = self._lines.get(key)
            if cached is not None and cached[0].items is part.items and whole:
                lines = cached[1]
            else:
                lines = agent_state_lines(uids, part.items, blocks)
            if whole:
                kept[key] = (part, lines)
            out.append(lines)
        self._lines = kept
        return out


AGENTS_POLLER = Poller(name="agents", cadence=lambda s: s.agent_interval, priority=2, refreshes=(AGENT_STATES,))
SOURCE = Source(
    name="agent_states",
    keeps=AGENT_STATES,
    polls=(
        # A large org's directory takes minutes: the agents it has found by then are polled meanwhile.
        Poll(
            AGENTS_POLLER,
            poll_states_by_id,
            after=AGENT_DIRECTORY_POLLER,
            wait_at_most=FIRST_AGENTS_WITHIN_SECONDS,
            when=lambda s: not listing_is_state_poll(s),
        ),
    ),
    show=agent_segment("agent_states", render_agent_states, AGENT_STATES, compressor=StateSegment),
)
