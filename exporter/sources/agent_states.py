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
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from exporter.config import Settings
from exporter.exposition import family_header, value_text
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import USERS
from exporter.genesys.models import PresencePart, RoutingStatusPart, UserListing
from exporter.gzip_segments import Runs, compress
from exporter.snapshot import Measurement, Owners, Part, PartKey, Snapshot
from exporter.sources.agent_directory import AGENT_DIRECTORY_POLLER, AGENTS, Row, agent_segment, exported_agents
from exporter.sources.batches import BatchesFailed, batches
from exporter.sources.source import Metric, Piece, Poll, Poller, Selection, Source, Tagged, Wiring

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
        # Each cycle's batches are parts of their own, not the last cycle's under the same numbers: as
        # push takes agents over, the polled ones shift between batches, and a batch replaced before
        # its agents' new batches have landed would take their states off the page meanwhile. The
        # store drops a cycle's parts once newer ones cover them.
        cycle = (round(wiring.clock.monotonic() * 1000),)
        await poll_agent_states(wiring.client, agent_ids, wiring.store.publisher(AGENT_STATES, "poll", cycle))


_NOBODY: frozenset[str] = frozenset()  # what push keeps with push off: one object, so the count is kept


class StatePollCost:
    """The by-id poll's requests once no listing is fresh: every agent in scope push does not keep.

    At a start the users listing has just given every state, so the first cycles ask for few agents,
    yet the listed states must be polled again before they are three cadences old: the cadence,
    and so their stale limit, is the one this cost allows, not the one of the cheap first cycles.
    The planner asks every second; the agents and push's share are replaced, never changed in place,
    so they are counted again only when one of them is another object.
    """

    def __init__(self) -> None:
        self._last: tuple[object, object, int] | None = None

    def __call__(self, wiring: Wiring) -> int:
        agents = wiring.store.snapshot[AGENTS]
        owned = wiring.push.data.owned("agents") if wiring.push is not None else _NOBODY
        if self._last is None or self._last[0] is not agents or self._last[1] is not owned:
            polled = sum(1 for uid in agents if uid not in owned)
            self._last = (agents, owned, -(-polled // USERS_PER_REQUEST))
        return self._last[2]


state_poll_cost = StatePollCost()


# ----- on the page ------------------------------------------------------------------------------
# A state is a value, not a label: an agent's series lives as long as the agent, however often their
# status changes (a label would end one series and start another at every change, churn a Prometheus
# pays for in memory for hours). The dashboards map the codes back to names; a state the API has that
# is not listed here is -1, "another", never a known state or 0.
ROUTING_CODES = {"off_queue": 0, "idle": 1, "interacting": 2, "communicating": 3, "not_responding": 4}
PRESENCE_CODES = {
    "offline": 0,
    "available": 1,
    "on_queue": 2,
    "away": 3,
    "busy": 4,
    "break": 5,
    "meal": 6,
    "meeting": 7,
    "training": 8,
    "idle": 9,
}
ANOTHER = -1


def legend(codes: Mapping[str, int]) -> str:
    return ", ".join(f"{code} {name}" for name, code in codes.items()) + f", {ANOTHER} another"


def _code(codes: Mapping[str, int], state: str | None) -> float | None:
    return None if state is None else codes.get(state, ANOTHER)


ROUTING = Metric("genesys_agent_routing_status_code")
PRESENCE = Metric("genesys_agent_presence_code", default=False)
SINCE = Metric("genesys_agent_status_since_timestamp_seconds", default=False)
# Each state family: its metric, help, and the value of a state (None: no line).
STATE_FAMILIES: tuple[tuple[Metric, str, Callable[[AgentState], float | None]], ...] = (
    (
        ROUTING,
        f"The agent's current routing status as a code ({legend(ROUTING_CODES)}), from GET /api/v2/users.",
        lambda s: _code(ROUTING_CODES, s.routing_status),
    ),
    (
        PRESENCE,
        f"The agent's current system presence as a code ({legend(PRESENCE_CODES)}).",
        lambda s: _code(PRESENCE_CODES, s.presence),
    ),
    (SINCE, "Unix time when the agent's current routing status began.", lambda s: s.status_since),
)
STATE_PARTS_PER_RUN = 25  # state parts compressed together: a new part recompresses one run, not every agent
Lines = tuple[tuple[str, ...], ...]  # one state part's lines: per chosen family, per shard


def chosen_families(selection: Selection) -> list[tuple[str, str, Callable[[AgentState], float | None]]]:
    return [
        (metric.name, help_text, value)
        for metric, help_text, value in STATE_FAMILIES
        if metric.name in selection.metrics
    ]


def shown_uids(part: Part[AgentState], shown: Collection[str] | None, rows: Mapping[str, Row]) -> list[str]:
    """The exported agents a part shows (`shown` from `Owners`; None: all its items), in page order."""
    return sorted(uid for uid in (part.items if shown is None else shown) if uid in rows)


def agent_state_lines(
    uids: list[str], states: Mapping[str, AgentState], rows: Mapping[str, Row], selection: Selection
) -> Lines:
    """One part's lines of the chosen state families, per shard, for the agents given."""
    out = []
    for name, _, value in chosen_families(selection):
        by_shard: list[list[str]] = [[] for _ in range(selection.shards)]
        for uid in uids:
            number = value(states[uid])
            if number is not None:
                row = rows[uid]
                by_shard[row.shard].append(f"{name}{{{row.block}}} {value_text(number)}\n")
        out.append(tuple("".join(lines) for lines in by_shard))
    return tuple(out)


def render_agent_states(snapshot: Snapshot, selection: Selection) -> Iterator[Piece]:
    """The chosen state families, each as its header and then, shard by shard, a piece per state part."""
    rows, parts = exported_agents(snapshot, selection).by_id, snapshot[AGENT_STATES]
    lines = [
        agent_state_lines(shown_uids(parts[key], shown, rows), parts[key].items, rows, selection)
        for key, shown in Owners()(parts).items()
    ]
    for index, (name, help_text, _) in enumerate(chosen_families(selection)):
        if any(text for part in lines for text in part[index]):
            yield None, family_header(name, "gauge", help_text)
            for shard in range(selection.shards):
                yield from ((shard, part[index][shard]) for part in lines)


class StateSegment:
    """Builds the state segment from what the last build left: each part's lines while the part is the
    same object (even re-stamped: a live channel's data, current without news), and each run of
    parts compressed while its lines are. New exported agents or a new selection start afresh. One
    thread at a time."""

    def __init__(self) -> None:
        self._scope: tuple[object, object] | None = None
        self._lines: dict[PartKey, tuple[Part[AgentState], Lines]] = {}
        self._owners = Owners()
        self.runs = Runs()  # keyed by (family, shard, first part)

    def __call__(self, snapshot: Snapshot, selection: Selection) -> tuple[Tagged, ...]:
        lines = self._state_lines(snapshot, selection)
        out: list[Tagged] = []
        for index, (name, help_text, _) in enumerate(chosen_families(selection)):
            if not any(text for part in lines for text in part[index]):
                continue
            out.append((None, compress([family_header(name, "gauge", help_text)])))
            for shard in range(selection.shards):
                pieces = [part[index][shard] for part in lines]
                out.extend((shard, run) for run in self.runs.chunked((index, shard), pieces, STATE_PARTS_PER_RUN))
        # Runs past the end (fewer parts now: the listing's first pass dropped) would keep their lines alive.
        self.runs.forget_unused()
        return tuple(out)

    def _state_lines(self, snapshot: Snapshot, selection: Selection) -> list[Lines]:
        exported = exported_agents(snapshot, selection)
        if self._scope is None or self._scope[0] is not exported or self._scope[1] != selection:
            self._scope, self._lines, self.runs = (exported, selection), {}, Runs()
        rows, parts = exported.by_id, snapshot[AGENT_STATES]
        kept: dict[PartKey, tuple[Part[AgentState], Lines]] = {}
        out = []
        for key, shown in self._owners(parts).items():  # keep the lines of parts that show all their items
            part, cached = parts[key], self._lines.get(key)
            if cached is not None and cached[0].items is part.items and shown is None:
                lines = cached[1]
            else:
                lines = agent_state_lines(shown_uids(part, shown, rows), part.items, rows, selection)
            if shown is None:
                kept[key] = (part, lines)
            out.append(lines)
        self._lines = kept
        return out


# Where push cannot carry every agent (one client at 50,000 agents), the polled agents' states stay
# within 1.25 times the floor the budget allows them, ahead of today's figures, which take the rest:
# a leaderboard's status column is its live part, its counts change with a closed conversation.
# (Only once the first passes whose labels `genesys_agent_info` waits for are done: the scheduler's.)
AGENTS_POLLER = Poller(
    name="agents", cadence=lambda s: s.agent_interval, priority=2, refreshes=(AGENT_STATES,), within_floor=1.25
)
SOURCE = Source(
    name="agent_states",
    keeps=(AGENT_STATES,),
    polls=(
        # A large org's directory takes minutes: the agents it has found by then are polled meanwhile.
        Poll(
            AGENTS_POLLER,
            poll_states_by_id,
            after=AGENT_DIRECTORY_POLLER,
            wait_at_most=FIRST_AGENTS_WITHIN_SECONDS,
            when=lambda s: not listing_is_state_poll(s),
            expected_cost=state_poll_cost,
        ),
    ),
    show=agent_segment(
        "agent_states",
        render_agent_states,
        AGENT_STATES,
        compressor=StateSegment,
        metrics=(ROUTING, PRESENCE, SINCE),
    ),
)
