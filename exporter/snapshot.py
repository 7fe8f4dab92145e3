"""The exporter's picture of the contact centre: an immutable value, replaced whole on every change.

Pollers never mutate shared state in place; they hand the store new parts and the store swaps in a
new `Snapshot`. Readers (the renderer, the landing page) take `store.snapshot` once and see a
consistent value without locks. Measurements carry the monotonic time they were taken, so the store
can drop what is older than its stale limit: unknown is absent, never a stale number or a zero.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from exporter.clock import Clock


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue in scope, from the routing queue list: what labels its series."""

    id: str
    name: str
    division: str  # division name ("" when the API gave none)


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
    taken_at: float  # monotonic seconds


@dataclass(frozen=True, slots=True)
class PollerStatus:
    """What `/`, `/readyz` and the self-metrics say about one poller."""

    interval: float
    up: bool | None = None  # None until the first cycle ends
    last_success: float | None = None  # wall-clock epoch seconds of the last fully good cycle
    last_duration: float | None = None  # seconds the last cycle took
    last_error: str | None = None
    consecutive_failures: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    queues: Mapping[str, Queue] = field(default_factory=dict)  # queue id -> Queue; None-free, names current
    queue_states: Mapping[str, QueueState] = field(default_factory=dict)
    pollers: Mapping[str, PollerStatus] = field(default_factory=dict)
    version: int = 0


T = TypeVar("T")


def _fresh(parts: Mapping[str, T], taken_at: Callable[[T], float], oldest: float) -> Mapping[str, T] | None:
    """`parts` without those taken before `oldest`, or None when nothing had to go (no copy)."""
    if all(taken_at(p) >= oldest for p in parts.values()):
        return None
    return {k: p for k, p in parts.items() if taken_at(p) >= oldest}


class Store:
    """Holds the current `Snapshot`, swaps in changes, and wakes whoever waits for one."""

    def __init__(self, clock: Clock, *, queue_stale_after: float) -> None:
        self._clock = clock
        self._queue_stale_after = queue_stale_after
        self._snapshot = Snapshot()
        self._changed = asyncio.Event()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def set_queues(self, queues: Mapping[str, Queue]) -> None:
        """A new queue list: states of queues that left scope go with it."""
        states = {qid: s for qid, s in self._snapshot.queue_states.items() if qid in queues}
        self._swap(queues=dict(queues), queue_states=states)

    def put_queue_states(self, states: Mapping[str, QueueState]) -> None:
        """Merge one batch of observations; queues outside the current list are ignored."""
        merged = dict(self._snapshot.queue_states)
        merged.update((qid, s) for qid, s in states.items() if qid in self._snapshot.queues)
        self._swap(queue_states=merged)

    def set_status(self, poller: str, status: PollerStatus) -> None:
        self._swap(pollers={**self._snapshot.pollers, poller: status})

    def status(self, poller: str) -> PollerStatus | None:
        return self._snapshot.pollers.get(poller)

    def expire(self) -> bool:
        """Drop measurements older than their stale limit; True when something went."""
        oldest = self._clock.monotonic() - self._queue_stale_after
        states = _fresh(self._snapshot.queue_states, lambda s: s.taken_at, oldest)
        if states is None:
            return False
        self._swap(queue_states=states)
        return True

    async def wait_changed(self, seen_version: int) -> int:
        """Wait until the snapshot is newer than `seen_version`; return the new version."""
        while self._snapshot.version <= seen_version:
            self._changed.clear()
            await self._changed.wait()
        return self._snapshot.version

    def _swap(self, **changes: object) -> None:
        self._snapshot = replace(self._snapshot, version=self._snapshot.version + 1, **changes)  # type: ignore[arg-type]
        self._changed.set()
