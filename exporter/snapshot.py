"""The exporter's picture of the contact centre: an immutable value, replaced whole on every change.

Pollers never mutate shared state in place; they hand the store new parts and the store swaps in a
new `Snapshot`. Readers (the renderer, the landing page) take `store.snapshot` once and see a
consistent value without locks.

Measurements arrive in parts, one per request batch or page, each stamped with the monotonic time
it was taken: a slow or failed page never holds back the others, and the store drops a part once it
is older than its kind's stale limit, so unknown becomes absent, never a stale number or a zero.
Directories (queues and agents in scope, with their names) are reference data and do not expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Generic, Literal, TypeVar

from exporter.clock import Clock

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue in scope, from the routing queue list: what labels its series."""

    id: str
    name: str
    division: str  # division name ("" when the API gave none)


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent in scope: what labels their series."""

    id: str
    name: str
    division: str


@dataclass(frozen=True, slots=True)
class QueueState:
    """One queue's live observation. Per-media mappings hold every media type the queue serves."""

    waiting: Mapping[str, int]
    interacting: Mapping[str, int]
    alerting: Mapping[str, int]
    oldest_waiting_seconds: Mapping[str, float]  # only media types with something waiting
    available_agents: int  # on queue and idle
    agents_by_status: Mapping[str, int]  # lower-case routing status -> joined members in it
    member_agents: int
    joined_agents: int


@dataclass(frozen=True, slots=True)
class AgentState:
    """An agent's live state; a field the API left out (best-effort expand) is None, not a guess."""

    routing_status: str | None  # lower-case: idle, interacting, communicating, not_responding, off_queue
    presence: str | None  # lower-case system presence: available, away, on_queue, ...
    status_since: float | None  # epoch seconds when the routing status began
    presence_since: float | None = None  # epoch seconds the presence was set: orders pushed and polled news


@dataclass(frozen=True, slots=True)
class Tally:
    """Today's figures for one agent, or one queue and media type, from conversation aggregates.

    `handled` and `handle_seconds` come from tHandle, which counts a conversation only once its
    handling (talk, hold, wrap-up) has ended, so an interaction in progress never skews the average.
    """

    connected: int = 0
    handled: int = 0
    handle_seconds: float = 0.0
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    service_level: float | None = None  # oServiceLevel ratio, when the API had one

    @property
    def average_handle_seconds(self) -> float | None:
        return self.handle_seconds / self.handled if self.handled else None


@dataclass(frozen=True, slots=True)
class Part(Generic[T]):
    """Items from one request batch or page, and when they were taken (monotonic seconds)."""

    items: Mapping[str, T]
    taken_at: float


@dataclass(frozen=True, slots=True)
class PollerStatus:
    """What `/`, `/readyz` and the self-metrics say about one poller."""

    interval: float  # effective cadence: the configured one, or longer when the budget cannot fit it
    configured_interval: float | None = None
    cost: int | None = None  # requests its last successful cycle sent
    up: bool | None = None  # None until the first cycle ends
    last_success: float | None = None  # wall-clock epoch seconds of the last fully good cycle
    last_duration: float | None = None  # seconds the last cycle took
    last_error: str | None = None
    consecutive_failures: int = 0


Kind = Literal["queue_states", "agent_states", "agent_tallies", "queue_tallies"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    queues: Mapping[str, Queue] = field(default_factory=dict)
    agents: Mapping[str, Agent] = field(default_factory=dict)
    queue_states: Mapping[Hashable, Part[QueueState]] = field(default_factory=dict)
    agent_states: Mapping[Hashable, Part[AgentState]] = field(default_factory=dict)
    agent_tallies: Mapping[Hashable, Part[Tally]] = field(default_factory=dict)
    queue_tallies: Mapping[Hashable, Part[Mapping[str, Tally]]] = field(default_factory=dict)  # queue -> media -> Tally
    pollers: Mapping[str, PollerStatus] = field(default_factory=dict)
    version: int = 0


MEASUREMENTS: tuple[Kind, ...] = ("queue_states", "agent_states", "agent_tallies", "queue_tallies")


def merged(parts: Mapping[Hashable, Part[T]], scope: Mapping[str, Any]) -> dict[str, T]:
    """All items of all parts that are still in scope; where parts overlap, the newest wins."""
    out: dict[str, T] = {}
    for part in sorted(parts.values(), key=lambda p: p.taken_at):
        out.update((key, item) for key, item in part.items.items() if key in scope)
    return out


SUPERSEDED_CHECK_SECONDS = 10.0


def _uncovered(parts: Mapping[Hashable, Part[T]]) -> dict[Hashable, Part[T]]:
    """The parts with at least one item no newer part has: an older part newer ones cover whole shows
    nothing (the newest wins) and would only be held until its stale limit. At 50,000 agents the
    users listing's first pass and the state polls held every state twice for minutes."""
    seen: set[str] = set()
    kept: dict[Hashable, Part[T]] = {}
    for key, part in sorted(parts.items(), key=lambda kv: kv[1].taken_at, reverse=True):
        if not part.items.keys() <= seen:
            kept[key] = part
            seen.update(part.items)
    return kept


class Store:
    """Holds the current `Snapshot`, swaps in changes, and wakes whoever waits for one."""

    def __init__(self, clock: Clock, stale_after: Mapping[Kind, float] | None = None) -> None:
        self._clock = clock
        self._stale_after = dict(stale_after or {})
        self._snapshot = Snapshot()
        self._changed = asyncio.Event()
        self._superseded_checked = clock.monotonic()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def set_queues(self, queues: Mapping[str, Queue]) -> None:
        self._swap(queues=dict(queues))

    def set_agents(self, agents: Mapping[str, Agent]) -> None:
        """The whole agent list; an unchanged one keeps its identity, which the page's render cache keys on."""
        if agents != self._snapshot.agents:
            self._swap(agents=dict(agents))

    def add_agents(self, agents: Mapping[str, Agent]) -> None:
        """Agents found part-way through a listing; `set_agents` at its end drops those who left."""
        known = self._snapshot.agents
        if any(known.get(uid) != agent for uid, agent in agents.items()):
            self._swap(agents={**known, **agents})

    def put(self, kind: Kind, key: Hashable, items: Mapping[str, Any]) -> None:
        """Swap in one batch or page of measurements, stamped now."""
        parts = {**getattr(self._snapshot, kind), key: Part(dict(items), self._clock.monotonic())}
        self._swap(**{kind: parts})

    def put_many(self, kind: Kind, parts: Mapping[Hashable, Mapping[str, Any]]) -> None:
        """Several parts at once, one swap: a push flush lands as one change, not one per part."""
        if parts:
            now = self._clock.monotonic()
            new = {key: Part(dict(items), now) for key, items in parts.items()}
            self._swap(**{kind: {**getattr(self._snapshot, kind), **new}})

    def restamp(self, kind: Kind, keys: Iterable[Hashable]) -> None:
        """Mark parts as current without new items: what a healthy notification channel says of its
        data (no event means no change). The items keep their identity, so the page reuses their lines."""
        now = self._clock.monotonic()
        current: Mapping[Hashable, Part[Any]] = getattr(self._snapshot, kind)
        new = {key: Part(current[key].items, now) for key in keys if key in current}
        if new:
            self._swap(**{kind: {**current, **new}})

    def set_status(self, poller: str, status: PollerStatus) -> None:
        self._swap(pollers={**self._snapshot.pollers, poller: status})

    def set_stale_after(self, kind: Kind, seconds: float) -> None:
        """Measurements follow their poller's effective cadence: a stretched poller's data lives longer."""
        self._stale_after[kind] = seconds

    def status(self, poller: str) -> PollerStatus | None:
        return self._snapshot.pollers.get(poller)

    def expire(self) -> bool:
        """Drop parts older than their kind's stale limit, and now and then those newer parts cover whole;
        True when something went."""
        now = self._clock.monotonic()
        superseded = now - self._superseded_checked >= SUPERSEDED_CHECK_SECONDS
        if superseded:
            self._superseded_checked = now
        changes: dict[str, object] = {}
        for kind in MEASUREMENTS:
            limit = self._stale_after.get(kind)
            parts: Mapping[Hashable, Part[Any]] = getattr(self._snapshot, kind)
            kept = {k: p for k, p in parts.items() if limit is None or p.taken_at >= now - limit}
            if superseded:
                kept = _uncovered(kept)
            if len(kept) != len(parts):
                changes[kind] = kept
        if changes:
            self._swap(**changes)
        return bool(changes)

    async def wait_changed(self, seen_version: int) -> int:
        """Wait until the snapshot is newer than `seen_version`; return the new version."""
        while self._snapshot.version <= seen_version:
            self._changed.clear()
            await self._changed.wait()
        return self._snapshot.version

    def _swap(self, **changes: Any) -> None:
        assert set(changes) <= {f.name for f in fields(Snapshot)}
        self._snapshot = replace(self._snapshot, version=self._snapshot.version + 1, **changes)
        self._changed.set()
