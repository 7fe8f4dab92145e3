"""The exporter's picture of the contact centre: an immutable value, replaced whole on every change.

Sources never mutate shared state in place; they hand the store new data and the store swaps in a
new `Snapshot`. Readers (the page, the landing page, push's planner) take `store.snapshot` once
and see a consistent value without locks.

What the snapshot holds is named by typed keys that each source declares in its own module
(`exporter.sources`): a `Directory` is reference data (the queues and agents in scope, with their
names), replaced whole and never expired; a `Measurement` arrives in parts, one per request batch,
page or push group, each stamped with the monotonic time it was taken, so a slow or failed page
never holds back the others and a part older than its stale limit is dropped: unknown becomes
absent, never a stale number or a zero.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, TypeVar, cast, overload

from exporter.clock import Clock

T = TypeVar("T")

# Who took a part: a poll of ids in batches, a page of the users listing, a push group (channel
# slot, group of 100), or the poll of a dead channel's items (fallback number, batch).
Origin = Literal["poll", "listing", "push", "fallback"]


@dataclass(frozen=True, slots=True, order=True)
class PartKey:
    """Which part of a measurement: its origin and its batch there. A new part under a key replaces the old."""

    origin: Origin
    batch: tuple[int, ...] = ()

    @classmethod
    def polled(cls, index: int) -> PartKey:
        return cls("poll", (index,))


@dataclass(frozen=True, slots=True)
class Part(Generic[T]):
    """Items from one request batch, page or push group, and when they were taken (monotonic seconds)."""

    items: Mapping[str, T]
    taken_at: float


@dataclass(frozen=True, slots=True)
class Directory(Generic[T]):
    """The typed name of reference data in the snapshot: item id -> item, replaced whole, never expired."""

    name: str


@dataclass(frozen=True, slots=True)
class Measurement(Generic[T]):
    """The typed name of live data in the snapshot: parts of item id -> value, each expiring on its own."""

    name: str


Key = Directory[Any] | Measurement[Any]
Parts = Mapping[PartKey, Part[T]]

_NOTHING: Mapping[Any, Any] = {}  # what an absent key reads as: one object, so identity-keyed caches hold


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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every source's data by key name, the pollers' status, and a version that grows with each swap.

    Read it with a key: `snapshot[QUEUES]` is a `Mapping[str, Queue]`, `snapshot[AGENT_STATES]` a
    `Mapping[PartKey, Part[AgentState]]`. A value is the very object the store swapped in, so
    readers may cache what they made of it for as long as it `is` the same.
    """

    data: Mapping[str, Mapping[Any, Any]] = field(default_factory=dict)
    pollers: Mapping[str, PollerStatus] = field(default_factory=dict)
    version: int = 0

    @overload
    def __getitem__(self, key: Directory[T]) -> Mapping[str, T]: ...

    @overload
    def __getitem__(self, key: Measurement[T]) -> Parts[T]: ...

    def __getitem__(self, key: Key) -> Mapping[Any, Any]:
        return self.data.get(key.name, _NOTHING)

    def holding(self, shown: Snapshot, keys: Iterable[Key]) -> Snapshot:
        """This snapshot with the data of `keys` as `shown` has it: what a page that holds some data back
        shows. Itself when no key is held, so it stays the store's current snapshot."""
        held = {key.name: shown[key] for key in keys}
        return replace(self, data={**self.data, **held}) if held else self

    def with_data(self, values: Mapping[Key, Mapping[Any, Any]]) -> Snapshot:
        """A snapshot with these values set (for tests and tools that build one by hand)."""
        return replace(self, data={**self.data, **{key.name: value for key, value in values.items()}})


def merged(parts: Parts[T], scope: Mapping[str, Any]) -> dict[str, T]:
    """All items of all parts that are still in scope; where parts overlap, the newest wins."""
    out: dict[str, T] = {}
    for part in sorted(parts.values(), key=lambda p: p.taken_at):
        out.update((key, item) for key, item in part.items.items() if key in scope)
    return out


class Owners:
    """Which items each part shows, as `merged` decides (where parts overlap, the newest has the item),
    worked out from what changed since the last call rather than from every item: a large org's
    agent states are hundreds of parts, a few of which move between two builds of the page, and
    parts rarely overlap (a poll's part and a live channel's for the same agents, for a moment).
    One thread at a time; a fresh instance answers the same."""

    def __init__(self) -> None:
        self._held: dict[PartKey, Mapping[str, object]] = {}  # each part's items as last counted
        self._count: Counter[str] = Counter()  # item -> how many parts hold it
        self._shared: set[str] = set()  # the items more than one part holds

    def __call__(self, parts: Parts[Any]) -> dict[PartKey, Collection[str] | None]:
        """Each part's key in page order (sorted keys) -> the items it shows, or None when it shows all
        of them (its lines then change only with it)."""
        for key in self._held.keys() - parts.keys():
            self._uncount(self._held.pop(key))
        for key, part in parts.items():
            held = self._held.get(key)
            if held is not part.items:
                if held is not None:
                    self._uncount(held)
                self._held[key] = part.items
                self._counted(part.items)
        owner: dict[str, PartKey] = {}
        if self._shared:
            sharing = [(key, part) for key, part in parts.items() if not self._shared.isdisjoint(part.items)]
            for key, part in sorted(sharing, key=lambda kv: kv[1].taken_at):
                owner.update(dict.fromkeys(self._shared.intersection(part.items), key))
        return {key: self._shown(parts[key].items, key, owner) for key in sorted(parts)}

    def _shown(self, items: Mapping[str, object], key: PartKey, owner: Mapping[str, PartKey]) -> list[str] | None:
        if not owner or self._shared.isdisjoint(items):
            return None
        shown = [item for item in items if owner.get(item, key) == key]
        return None if len(shown) == len(items) else shown

    def _counted(self, items: Mapping[str, object]) -> None:
        self._count.update(items.keys())  # keys, not the mapping: Counter would add its values
        self._shared.update(item for item in items if self._count[item] > 1)

    def _uncount(self, items: Mapping[str, object]) -> None:
        count = self._count
        for item in items:
            left = count[item] - 1
            if left:
                count[item] = left
                if left == 1:
                    self._shared.discard(item)
            else:
                del count[item]


SUPERSEDED_CHECK_SECONDS = 10.0


def _uncovered(parts: Parts[T]) -> dict[PartKey, Part[T]]:
    """The parts with at least one item no newer part has: an older part newer ones cover whole shows
    nothing (the newest wins) and would only be held until its stale limit, every value twice."""
    seen: set[str] = set()
    kept: dict[PartKey, Part[T]] = {}
    for key, part in sorted(parts.items(), key=lambda kv: kv[1].taken_at, reverse=True):
        if not part.items.keys() <= seen:
            kept[key] = part
            seen.update(part.items)
    return kept


@dataclass(frozen=True, slots=True)
class _Grace:
    """A shortened stale limit counts from the moment it changed: the parts its poller took at the old,
    slower cadence keep the old limit until the new one has passed since, time for the faster cadence
    to refresh them one by one rather than see them all dropped at the change."""

    limit: float
    until: float  # monotonic


class Store:
    """Holds the current `Snapshot`, swaps in changes, and wakes whoever waits for one."""

    def __init__(self, clock: Clock, stale_after: Mapping[Measurement[Any], float] | None = None) -> None:
        self._clock = clock
        self._stale_after = {key.name: seconds for key, seconds in (stale_after or {}).items()}
        self._grace: dict[str, _Grace] = {}
        self._measured: set[str] = set()  # the names of the measurements put so far: what `expire` looks at
        self._snapshot = Snapshot()
        self._changed = asyncio.Event()
        self._superseded_checked = clock.monotonic()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def set(self, key: Directory[T], items: Mapping[str, T]) -> None:
        """A whole directory; an unchanged one keeps its identity, which the page's render caches key on."""
        if items != self._snapshot[key]:
            self._swap({key.name: dict(items)})

    def add(self, key: Directory[T], items: Mapping[str, T]) -> None:
        """Items found part-way through a listing; `set` at its end drops those who left."""
        known = self._snapshot[key]
        if any(known.get(item_id) != item for item_id, item in items.items()):
            self._swap({key.name: {**known, **items}})

    def put(self, key: Measurement[T], part: PartKey, items: Mapping[str, T]) -> None:
        """Swap in one batch or page of measurements, stamped now."""
        self.put_many(key, {part: items})

    def put_many(self, key: Measurement[T], parts: Mapping[PartKey, Mapping[str, T]]) -> None:
        """Several parts at once, one swap: a push flush lands as one change, not one per part."""
        if parts:
            now = self._clock.monotonic()
            new = {part: Part(dict(items), now) for part, items in parts.items()}
            self._measured.add(key.name)
            self._swap({key.name: {**self._snapshot[key], **new}})

    def publisher(
        self, key: Measurement[T], origin: Origin = "poll", prefix: tuple[int, ...] = ()
    ) -> Callable[[int, Mapping[str, T]], None]:
        """What a poll hands each batch to as it parses: the batch's part of `key`, numbered after `prefix`."""
        return lambda index, items: self.put(key, PartKey(origin, (*prefix, index)), items)

    def restamp(self, key: Measurement[Any], parts: Iterable[PartKey]) -> None:
        """Mark parts as current without new items: what a healthy notification channel says of its
        data (no event means no change). The items keep their identity, so the page reuses their lines."""
        now = self._clock.monotonic()
        current = self._snapshot[key]
        new = {part: Part(current[part].items, now) for part in parts if part in current}
        if new:
            self._swap({key.name: {**current, **new}})

    def set_status(self, poller: str, status: PollerStatus) -> None:
        self._snapshot = replace(
            self._snapshot, pollers={**self._snapshot.pollers, poller: status}, version=self._snapshot.version + 1
        )
        self._changed.set()

    def set_stale_after(self, key: Measurement[Any], seconds: float) -> None:
        """Measurements follow their poller's effective cadence: a stretched poller's data lives longer,
        and a quickened one's new limit counts from now (`_Grace`). Shrinks that follow one another
        within a grace neither lengthen it nor extend it."""
        now = self._clock.monotonic()
        name = key.name
        before = self._stale_after.get(name)
        grace = self._grace.pop(name, None)
        if grace is not None and grace.until <= now:
            grace = None
        if before is not None and seconds < before:
            grace = (
                _Grace(before, now + seconds)
                if grace is None
                else _Grace(max(grace.limit, before), min(grace.until, now + seconds))
            )
        if grace is not None:
            self._grace[name] = grace
        self._stale_after[name] = seconds

    def stale_after(self, key: Measurement[Any]) -> float | None:
        """Seconds a part of `key` lives, when a job has set it."""
        return self._stale_after.get(key.name)

    def status(self, poller: str) -> PollerStatus | None:
        return self._snapshot.pollers.get(poller)

    def expire(self) -> bool:
        """Drop parts older than their key's stale limit, and now and then those newer parts cover whole;
        True when something went."""
        now = self._clock.monotonic()
        superseded = now - self._superseded_checked >= SUPERSEDED_CHECK_SECONDS
        if superseded:
            self._superseded_checked = now
        changes: dict[str, Mapping[Any, Any]] = {}
        for name in self._measured:
            parts = cast(Parts[Any], self._snapshot.data.get(name, _NOTHING))
            limit = self._limit(name, now)
            kept = {k: p for k, p in parts.items() if limit is None or p.taken_at >= now - limit}
            if superseded:
                kept = _uncovered(kept)
            if len(kept) != len(parts):
                changes[name] = kept
        if changes:
            self._swap(changes)
        return bool(changes)

    def _limit(self, name: str, now: float) -> float | None:
        """The stale limit of `name` now: its own, or a grace's longer one while the grace lasts."""
        limit = self._stale_after.get(name)
        grace = self._grace.get(name)
        if grace is not None and now < grace.until and limit is not None:
            return max(limit, grace.limit)
        return limit

    async def wait_changed(self, seen_version: int) -> int:
        """Wait until the snapshot is newer than `seen_version`; return the new version."""
        while self._snapshot.version <= seen_version:
            self._changed.clear()
            await self._changed.wait()
        return self._snapshot.version

    def _swap(self, changes: Mapping[str, Mapping[Any, Any]]) -> None:
        snapshot = self._snapshot
        self._snapshot = replace(snapshot, data={**snapshot.data, **changes}, version=snapshot.version + 1)
        self._changed.set()
