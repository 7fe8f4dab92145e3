"""What the simulated org's analytics pipeline knows: every offer, answer, abandon and handle time of
today and yesterday, written when each thing ends, as Genesys does, and looked up the way the
aggregate queries ask (by queue or user, metric and media type, over an interval).

A queue's or a user's entries of one metric and media type form a run in time order, and each full
block of a run keeps what its entries add up to: a query over a whole day of a busy queue then adds
a few dozen blocks instead of thousands of entries, as the real service answers from its own
pre-aggregated store whatever the hour.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

BLOCK_ENTRIES = 16
TRIM_EVERY_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One thing that happened, at the time Genesys would record it (t-metrics when they end)."""

    at: float
    queue_id: str
    media: str
    user_id: str | None
    metric: str
    value_ms: float | None  # None for n-metrics


@dataclass(slots=True)
class Summary:
    """What some entries of one metric add up to, in the aggregates' own terms: a count, the sum,
    the least and the greatest of the values rounded to milliseconds, and the service level's hits."""

    count: int = 0
    total: int = 0
    low: int | None = None
    high: int | None = None
    hits: int = 0

    def add(self, entry: LedgerEntry) -> None:
        self.count += 1
        if entry.metric == "oServiceLevelHit":
            self.hits += 1
        if entry.value_ms is not None:
            value = round(entry.value_ms)
            self.total += value
            self.low = value if self.low is None else min(self.low, value)
            self.high = value if self.high is None else max(self.high, value)

    def merge(self, other: Summary) -> None:
        self.count += other.count
        self.total += other.total
        self.hits += other.hits
        if other.low is not None:
            self.low = other.low if self.low is None else min(self.low, other.low)
        if other.high is not None:
            self.high = other.high if self.high is None else max(self.high, other.high)


def _at(entry: LedgerEntry) -> float:
    return entry.at


@dataclass(slots=True)
class Run:
    """One queue's or user's entries of one metric and media type, in time order, with each full
    block's summary."""

    entries: list[LedgerEntry] = field(default_factory=list)
    blocks: list[Summary] = field(default_factory=list)

    def append(self, entry: LedgerEntry) -> None:
        self.entries.append(entry)
        if len(self.entries) % BLOCK_ENTRIES == 0:
            block = Summary()
            for done in self.entries[-BLOCK_ENTRIES:]:
                block.add(done)
            self.blocks.append(block)

    def span(self, start: float, end: float) -> tuple[int, int]:
        """The indexes of the entries with start <= at < end."""
        return self.index(start), self.index(end)

    def index(self, moment: float) -> int:
        """How many entries came before `moment`."""
        return bisect.bisect_left(self.entries, moment, key=_at)

    def summary(self, start: float, end: float) -> Summary | None:
        """What the entries with start <= at < end add up to; None when there are none."""
        first, last = self.span(start, end)
        if first >= last:
            return None
        out = Summary()
        first_block, last_block = -(-first // BLOCK_ENTRIES), last // BLOCK_ENTRIES
        if first_block >= last_block:
            for entry in self.entries[first:last]:
                out.add(entry)
            return out
        for entry in self.entries[first : first_block * BLOCK_ENTRIES]:
            out.add(entry)
        for block in self.blocks[first_block:last_block]:
            out.merge(block)
        for entry in self.entries[last_block * BLOCK_ENTRIES : last]:
            out.add(entry)
        return out


class Ledger:
    """Today's and yesterday's entries in time order, with their runs by queue and by user."""

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []
        self._runs: dict[tuple[str, str, str], dict[str, Run]] = {}  # (dimension, id, metric) -> media -> run

    def __iter__(self) -> Iterator[LedgerEntry]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, entry: LedgerEntry) -> None:
        self._entries.append(entry)
        self._index(entry)

    def _index(self, entry: LedgerEntry) -> None:
        self._run("queueId", entry.queue_id, entry.metric, entry.media).append(entry)
        if entry.user_id is not None:
            self._run("userId", entry.user_id, entry.metric, entry.media).append(entry)

    def _run(self, dimension: str, item: str, metric: str, media: str) -> Run:
        by_media = self._runs.get((dimension, item, metric))
        if by_media is None:
            by_media = self._runs[dimension, item, metric] = defaultdict(Run)
        return by_media[media]

    def keep_since(self, cutoff: float) -> None:
        """Forget what happened before `cutoff`, in batches an hour apart rather than at every call."""
        if self._entries and self._entries[0].at < cutoff - TRIM_EVERY_SECONDS:
            self._entries = self._entries[bisect.bisect_left(self._entries, cutoff, key=_at) :]
            self._runs.clear()
            for entry in self._entries:
                self._index(entry)

    def runs(self, dimension: str, item: str, metric: str) -> dict[str, Run]:
        """The runs of one queue or user ("queueId" or "userId") and metric, by media type."""
        return self._runs.get((dimension, item, metric), {})

    def between(
        self, start: float, end: float, metrics: Collection[str], among: tuple[str, Collection[str]] | None
    ) -> Iterator[LedgerEntry]:
        """Entries of `metrics` with start <= at < end, of the queues or users `among` names
        (("queueId", ids) or ("userId", ids)), or of everyone."""
        if among is None:
            first = bisect.bisect_left(self._entries, start, key=_at)
            last = bisect.bisect_left(self._entries, end, key=_at)
            yield from (e for e in self._entries[first:last] if e.metric in metrics)
            return
        dimension, ids = among
        for item in ids:
            for metric in metrics:
                for run in self.runs(dimension, item, metric).values():
                    first, last = run.span(start, end)
                    yield from run.entries[first:last]

    def closed_since(self, since: float, day_start: float, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` conversations an agent closed (tHandle) after `since`, each with how many
        the agent and the queue (in its media type) had closed since `day_start` once it was: the
        handled counts a dashboard must show from then on."""
        first = bisect.bisect_right(self._entries, since, key=_at)
        closes = [e for e in self._entries[first:] if e.metric == "tHandle" and e.user_id is not None][-limit:]

        def count(dimension: str, item: str, until: LedgerEntry, media: str | None = None) -> int:
            runs = self.runs(dimension, item, "tHandle")
            chosen = runs.values() if media is None else [runs[media]] if media in runs else []
            return sum(bisect.bisect_right(run.entries, until.at, key=_at) - run.index(day_start) for run in chosen)

        return [
            {
                "user": e.user_id,
                "queue": e.queue_id,
                "media": e.media,
                "at": e.at,
                "user_closed": count("userId", str(e.user_id), e),
                "queue_closed": count("queueId", e.queue_id, e, e.media),
            }
            for e in closes
        ]
