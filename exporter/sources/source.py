"""What a data source declares: the snapshot data it keeps, the job that fetches it, the part of the page that shows it.

Every kind of data the exporter serves is one module of `exporter.sources` ending in such a
declaration, and the registry (`exporter.sources.SOURCES`) is the list of them in page order. The
scheduler's jobs, the store's stale limits, the page's segments and `collect[]` are all derived
from it, so a new source is one new module and a line in the registry, never a tour of the house.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from exporter.clock import Clock
from exporter.config import Settings
from exporter.genesys.client import GenesysClient
from exporter.gzip_segments import Segment
from exporter.snapshot import Key, Measurement, Snapshot, Store

if TYPE_CHECKING:  # push polls through the sources' own functions: it is wired in, not imported here
    from exporter.genesys.notifications import TopicKind
    from exporter.push.source import PushSource


def always(_: Settings) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Wiring:
    """What a source's job may use: the operator's selection tells it what not to ask for; push is
    None when it is off."""

    settings: Settings
    client: GenesysClient
    store: Store
    clock: Clock
    selection: Selection
    push: PushSource | None = None
    said: set[str] = field(default_factory=set)  # what a job has told the operator already

    def first_time(self, what: str) -> bool:
        """Whether `what` is new to this exporter (a warning worth one line, not one a cycle)."""
        new = what not in self.said
        self.said.add(what)
        return new

    def polled(self, kind: TopicKind, ids: Collection[str]) -> list[str]:
        """The items a poll must ask for: with push on, those no live channel keeps current."""
        return self.push.polled(kind, ids) if self.push is not None else list(ids)

    def listing_first_states(self) -> AbstractContextManager[None]:
        """Around a listing that gives every agent a first state: push polls no agent meanwhile."""
        return self.push.listing_first_states() if self.push is not None else contextlib.nullcontext()


@dataclass(frozen=True, kw_only=True)
class Poller:
    """A scheduler job as the planner and the self-metrics know it, whichever source runs it.

    `priority` 0 is served first (live queue data); the planner stretches the highest numbers first.
    A job's data expires after three of its effective cadences, so the measurements it `refreshes`
    live as long as its cadence says, stretched or not.
    """

    name: str  # the `poller` label of the self-metrics: public, in the README and the dashboards
    cadence: Callable[[Settings], float]
    priority: int
    first_priority: int | None = None  # the priority of its first cycle, when that one matters more
    refreshes: tuple[Measurement[Any], ...] = ()
    within_floor: float | None = None  # its cadence at most this many times its floor, ahead of priority


@dataclass(frozen=True, slots=True)
class Poll:
    """How a source runs a poller under the settings it is `when` for: what each cycle does, the job
    whose first success it waits for (at most `wait_at_most` seconds, then it starts with what there
    is), and, where it can tell, the requests its next cycle will send (`expected_cost`): a cost
    learned only after the cycle would leave the data it refreshes the stale limit of a cheaper one."""

    poller: Poller
    run: Callable[[Wiring], Awaitable[None]]
    after: Poller | Callable[[Settings], Poller] | None = None
    wait_at_most: float | None = None
    when: Callable[[Settings], bool] = always
    expected_cost: Callable[[Wiring], int] | None = None

    def waits_for(self, settings: Settings) -> str | None:
        after = self.after(settings) if callable(self.after) else self.after
        return after.name if after is not None else None


Piece = tuple[int | None, str]  # text and the shard of the agents it is about (None: every shard's, a header)
Tagged = tuple[int | None, Segment]  # the same, compressed


@dataclass(frozen=True, slots=True)
class Metric:
    """A family an operator may switch on or off (GENESYS_AGENT_METRICS), and whether it is on by default."""

    name: str
    default: bool = True


@dataclass(frozen=True, slots=True)
class Selection:
    """What the operator chose to export of the agents: which families, which agents (by team and by
    division, names or ids; none: every agent in scope), and in how many shards `collect[]=agents` is
    split (`&shard=K/N`, each a stable share of the agents by the hash of their id); and the label
    sources whose first pass `genesys_agent_info` waits for (`exporter.sources.settled`)."""

    metrics: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    divisions: frozenset[str] = frozenset()
    shards: int = 1
    info_waits_for: frozenset[str] = frozenset()


def unsharded(families: Callable[[Snapshot], Iterable[str]]) -> Callable[[Snapshot, Selection], Iterator[Piece]]:
    """A segment whose families are not about agents: whole in every shard, whatever the selection."""
    return lambda snapshot, _: ((None, text) for text in families(snapshot))


@dataclass(frozen=True, kw_only=True)
class Show:
    """A segment of the page: the families of one source, compressed apart from the others.

    `render` is the text (a pure read of the snapshot and the operator's selection), in pieces
    tagged with the shard they belong to; `compressor`, for a segment too big to compress whole at
    every change, makes a builder that keeps what it can between builds and must give the same
    text. A `paced` segment (the per-agent ones) is rebuilt at most once per few of its own build
    times, and what it reads is held back meanwhile; the others follow every change. `metrics` are
    the families of it an operator may switch off or on.
    """

    segment: str
    collector: str  # the `collect[]` name that serves it: public, in the README and the scrape configs
    reads: tuple[Key, ...]  # rebuilt when one of these is another object than at the last build
    render: Callable[[Snapshot, Selection], Iterable[Piece]]
    compressor: Callable[[], Callable[[Snapshot, Selection], tuple[Tagged, ...]]] | None = None
    paced: bool = False
    metrics: tuple[Metric, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Source:
    """One kind of data: the keys it keeps in the snapshot, the jobs that fetch it, the segment that shows it."""

    name: str
    keeps: tuple[Key, ...] = ()
    polls: tuple[Poll, ...] = ()
    show: Show | None = None
    when: Callable[[Settings], bool] = always
