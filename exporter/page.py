"""The served `/metrics` page: the metric families compressed once per change, never per scrape.

Each source's families (`exporter.sources`) are one segment of the page, compressed apart and
joined (`exporter.gzip_segments`); a segment is compressed again only when what it reads changed.
The big agent segments are paced and built in a worker thread of their own, so the queue data the
alerts read is never held behind them. Scrapes only read `MetricsPage.body`
(or its text, for a client without gzip), so a hundred scrapers cost a hundred memory reads and
no API call. How often the page changes is its own concern: push changes it many times a second.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from exporter.gzip_segments import compress, gzip_pieces
from exporter.metrics import PartSize, Telemetry, render_self
from exporter.snapshot import Key, Snapshot, Store
from exporter.sources import DEFAULT_SELECTION, SHOWS
from exporter.sources.source import Piece, Selection, Show, Tagged
from exporter.tasks import first_of

Body = tuple[bytes, ...]  # a gzip page in pieces
Lane = Literal["urgent", "paced"]
Built = tuple[Tagged, ...]  # a segment compressed: its pieces, each tagged with its shard (None: every shard's)
SELF = "self"  # the segment of the exporter's own metrics, last on the page
SELF_COLLECTOR = "exporter"


def collectors_of(shows: Iterable[Show]) -> dict[str, tuple[str, ...]]:
    """What `collect[]` may ask for, each a run of segments in page order (a public contract: README,
    the shipped scrape configs). A selection is a join of compressed segments: nothing is rendered for it."""
    out: dict[str, tuple[str, ...]] = {}
    for show in shows:
        out[show.collector] = (*out.get(show.collector, ()), show.segment)
    out[SELF_COLLECTOR] = (SELF,)
    return out


class PageBuilder:
    """Builds the page segment by segment, compressing again only the segments whose inputs changed.

    Inputs are compared by identity: the snapshot's mappings are replaced, never changed in place.
    The text of a segment is dropped once compressed. A segment is built by one thread at a time:
    two threads may build at once only segments that are not each other's (`only`).
    """

    def __init__(self, shows: Sequence[Show] = SHOWS, selection: Selection = DEFAULT_SELECTION) -> None:
        self.shows = tuple(shows)
        self.selection = selection
        self.collectors = collectors_of(shows)
        self.compressors: dict[str, Callable[[Snapshot, Selection], Built]] = {
            show.segment: show.compressor() if show.compressor else _compressing(show.render) for show in shows
        }
        self.built: dict[str, tuple[tuple[object, ...], Built]] = {}
        self.seconds: dict[str, float] = {}  # how long each segment last took

    def build(self, snapshot: Snapshot, telemetry: Telemetry) -> tuple[Body, int, set[str]]:
        """The page gzip-compressed (in pieces), its plain size, and the segments compressed afresh for it."""
        segments, rebuilt = self.build_segments(snapshot, telemetry)
        whole = [segment for built in segments.values() for _, segment in built]
        return gzip_pieces(whole), sum(s.size for s in whole), rebuilt

    def build_segments(
        self,
        snapshot: Snapshot,
        telemetry: Telemetry,
        only: Collection[str] | None = None,
        others: Mapping[str, Built] | None = None,
    ) -> tuple[dict[str, Built], set[str]]:
        """Each segment by name, in page order, and the names of those compressed afresh. With `only`,
        just those segments are built (the exporter's own, `SELF`, among them or not), and the
        others are taken from `others` (the page shown) where it has them."""
        segments: dict[str, Built] = {}
        rebuilt: set[str] = set()
        for show in self.shows:
            if only is not None and show.segment not in only and others and show.segment in others:
                segments[show.segment] = others[show.segment]
                continue
            inputs = tuple(snapshot[key] for key in show.reads)
            compressor = self.compressors[show.segment]
            segments[show.segment] = self._segment(show.segment, inputs, rebuilt, compressor, snapshot)
        if only is not None and SELF not in only and others and SELF in others:
            segments[SELF] = others[SELF]
            return segments, rebuilt
        sizes = self.sizes(segments)

        def own(snapshot: Snapshot, _: Selection) -> Built:
            return ((None, compress(render_self(snapshot, telemetry, sizes))),)

        segments[SELF] = self._segment(SELF, (snapshot.pollers, telemetry, sizes), rebuilt, own, snapshot)
        return segments, rebuilt

    def sizes(self, segments: Mapping[str, Built]) -> dict[str, PartSize]:
        """What each collector's part of the page holds, series and plain bytes (but the exporter's own
        part, which holds these figures)."""
        sizes = {}
        for collector, names in self.collectors.items():
            if collector != SELF_COLLECTOR:
                parts = [segment for name in names for _, segment in segments[name]]
                sizes[collector] = PartSize(sum(s.samples for s in parts), sum(s.size for s in parts))
        return sizes

    def _segment(
        self,
        name: str,
        inputs: tuple[object, ...],
        rebuilt: set[str],
        compressor: Callable[[Snapshot, Selection], Built],
        snapshot: Snapshot,
    ) -> Built:
        kept = self.built.get(name)
        if kept is None or any(a is not b for a, b in zip(kept[0], inputs, strict=True)):
            started = time.perf_counter()
            kept = self.built[name] = (inputs, compressor(snapshot, self.selection))
            self.seconds[name] = time.perf_counter() - started
            rebuilt.add(name)
        return kept[1]


def _compressing(render: Callable[[Snapshot, Selection], Iterable[Piece]]) -> Callable[[Snapshot, Selection], Built]:
    """Compress a segment's text in runs of the same shard: a shard's body is its runs and the shared ones."""

    def compressor(snapshot: Snapshot, selection: Selection) -> Built:
        return tuple(
            (shard, compress(text for _, text in pieces))
            for shard, pieces in itertools.groupby(render(snapshot, selection), key=lambda piece: piece[0])
        )

    return compressor


def build_page(snapshot: Snapshot, telemetry: Telemetry) -> tuple[bytes, int, float]:
    """The whole page from scratch, gzip-compressed, its plain size, and the seconds it took."""
    started = time.perf_counter()
    body, size, _ = PageBuilder().build(snapshot, telemetry)
    return b"".join(body), size, time.perf_counter() - started


PACED_SPACING = 3  # a paced segment waits this many times its last build between two builds


@dataclass
class Pacing:
    """When each paced segment may be rebuilt, and so when the data it reads may move on.

    A paced segment of a large org takes long to build; rebuilt at most once per three of its own
    build times, each holds the render thread a quarter of the time at most. Each is
    spaced by its own build time, so a slow segment (the tallies) never holds back a quick one (the
    states). Times are `time.perf_counter()` seconds: this paces CPU work, not the schedule.
    """

    reads: Mapping[str, tuple[Key, ...]]  # paced segment -> the keys it reads
    due: dict[str, float] = field(default_factory=dict)  # segment -> when it may be rebuilt
    took: dict[str, float] = field(default_factory=dict)  # segment -> its last build's seconds

    @classmethod
    def of(cls, shows: Iterable[Show]) -> Pacing:
        return cls({show.segment: show.reads for show in shows if show.paced})

    @property
    def keys(self) -> tuple[Key, ...]:
        """Every key a paced segment reads, once each."""
        return tuple(dict.fromkeys(key for reads in self.reads.values() for key in reads))

    def key_due(self, key: Key) -> float:
        """When a key may move on: once every paced segment that reads it is due."""
        return max(self.due.get(segment, 0.0) for segment, reads in self.reads.items() if key in reads)

    def held(self, now: float) -> list[Key]:
        """The keys that must stay as the page shows them at `now`."""
        return [key for key in self.keys if now < self.key_due(key)]

    def later(self, moved: Collection[Key], now: float) -> list[Key]:
        """The moved keys left for the next round, so that the quickest due segment whose data moved is
        shown before a slower one is built: one thread builds them in turn, and a state change would
        otherwise wait for the tallies or the directory's info segment, which take several times as
        long."""
        held = self.held(now)
        free = [key for key in moved if key not in held]
        ready = [segment for segment, reads in self.reads.items() if any(key in free for key in reads)]
        if len(ready) < 2:
            return []
        going = {min(ready, key=lambda segment: self.took.get(segment, 0.0))}
        while True:  # a segment rebuilt anyway (it reads what moves) takes all its news with it
            moving = {key for segment in going for key in self.reads[segment] if key in free}
            rebuilt = {segment for segment in ready if any(key in moving for key in self.reads[segment])}
            if rebuilt <= going:
                return [key for key in free if key not in moving]
            going |= rebuilt

    def next_due(self, moved: Iterable[Key]) -> float | None:
        """When the first of the `moved` keys may move on (None: none moved)."""
        return min((self.key_due(key) for key in moved), default=None)

    def built(self, seconds: Mapping[str, float], at: float) -> None:
        """The segments just compressed afresh, and how long each took: each waits its spacing from `at`."""
        for segment, took in seconds.items():
            if segment in self.reads:
                self.due[segment] = at + PACED_SPACING * took
                self.took[segment] = took


class MetricsPage:
    """The cached `/metrics` body, rebuilt when the snapshot changes; kept gzip-compressed only.

    Two lanes rebuild it, each in a worker thread of its own (the snapshot is immutable: nothing to
    lock). The urgent lane builds the segments that are not paced (the queues, the exporter's own)
    after every change, so new queue data is on the page within a tenth of a second of landing; the
    paced lane builds the agent segments when their pacing lets them (`Pacing`). The lanes build
    segments that are not each other's and each shows what it built next to what the other last
    showed, so queue data never waits for an agent build, not even one in progress. Prometheus asks
    for gzip; a client that does not gets the text decompressed for it. A `collect[]` scrape gets
    the chosen collectors' segments joined (`body_of`), never a render.
    """

    def __init__(
        self,
        store: Store,
        telemetry: Callable[[], Telemetry],
        *,
        debounce: float = 0.05,
        shows: Sequence[Show] = SHOWS,
        selection: Selection = DEFAULT_SELECTION,
    ) -> None:
        self._store = store
        self._telemetry = telemetry
        self._debounce = debounce
        self.collectors = collectors_of(shows)
        self.shards = selection.shards
        self.pacing = Pacing.of(shows)
        self.version = -1
        self.snapshot = Snapshot()  # the one the page shows
        self._paced_from = Snapshot()  # the one the paced lane last built the agent segments from
        self.body: Body = (gzip.compress(b""),)  # the gzip page in pieces, each written to a scraper in turn
        self.plain_bytes = 0
        # The page shown's segments and the collect[] bodies made from them when asked, swapped as one:
        # the server reads them from its own thread, and a selection must never outlive its page.
        self._shown: tuple[Mapping[str, Built], dict[tuple[frozenset[str], int | None], Body]] = (
            dict.fromkeys((name for names in self.collectors.values() for name in names), ()),
            {},
        )
        self.builder = PageBuilder(shows, selection)
        self.lanes: dict[Lane, frozenset[str]] = {
            "urgent": frozenset(show.segment for show in shows if not show.paced) | {SELF},
            "paced": frozenset(show.segment for show in shows if show.paced),
        }
        self._reads = itertools.count()  # the order the inputs of each build were read in
        self._shown_reads: dict[Lane, int] = dict.fromkeys(self.lanes, -1)
        # A thread a lane, no more: big strings freed by many threads leave glibc a heap per thread.
        self._threads = {
            lane: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"render-{lane}") for lane in self.lanes
        }
        self._paced_shown = asyncio.Event()  # the urgent lane then re-counts the parts' sizes
        self._paced_builds = self._sizes_counted = 0  # paced builds shown; of them, those the sizes count

    @property
    def gzipped(self) -> bytes:
        return b"".join(self.body)

    @property
    def gzip_bytes(self) -> int:
        return sum(len(piece) for piece in self.body)

    @property
    def plain(self) -> bytes:
        return gzip.decompress(self.gzipped)

    @property
    def segment_seconds(self) -> dict[str, float]:
        """How long each segment's last build took, by segment (queue_states, agent_states, ...)."""
        return dict(self.builder.seconds)

    def body_of(self, collectors: Collection[str] = (), shard: int | None = None) -> Body:
        """The page shown, or only the segments of the named collectors (in page order), and of the
        agents only those of one shard (0-based), as one gzip member.

        Made once per page and selection from the compressed segments: their deflate runs end to end
        and their CRCs combined, so scraping the small urgent part often costs no render.
        """
        if not collectors and shard is None:
            return self.body
        key = (frozenset(collectors or self.collectors), shard)
        segments, selections = self._shown
        body = selections.get(key)
        if body is None:
            chosen = [
                segment
                for collector, names in self.collectors.items()
                if collector in key[0]
                for name in names
                for tag, segment in segments[name]
                if shard is None or tag is None or tag == shard
            ]
            body = selections[key] = gzip_pieces(chosen)
        return body

    def refresh(self) -> None:
        """Rebuild now, every segment up to date; the caller waits. Each lane's segments are built on
        its own thread, after any build in progress there (a segment's caches are one thread's), the
        paced ones first, so that the exporter's own segment counts the parts as shown."""
        read = next(self._reads)
        snapshot, telemetry = self._store.snapshot, self._telemetry()
        paced = self._threads["paced"].submit(self._build, snapshot, telemetry, "paced", self._shown[0])
        segments, _ = paced.result()
        segments, _ = self._threads["urgent"].submit(self._build, snapshot, telemetry, "urgent", segments).result()
        self._show(snapshot, segments, read, "urgent", "paced")

    def _build(
        self, snapshot: Snapshot, telemetry: Telemetry, lane: Lane, others: Mapping[str, Built]
    ) -> tuple[dict[str, Built], dict[str, float]]:
        """Build a lane's segments, the others' taken as given; the seconds each segment compressed afresh took."""
        segments, rebuilt = self.builder.build_segments(snapshot, telemetry, self.lanes[lane], others)
        return segments, {name: self.builder.seconds[name] for name in rebuilt}

    def _show(self, snapshot: Snapshot, segments: dict[str, Built], read: int, *lanes: Lane) -> None:
        """Show what `lanes` built from inputs read in the `read`-th place, the other lane's segments
        as it last showed them; a build read before the one a lane shows (one started just before a
        `refresh`) is dropped: the page never goes back in time. `self.snapshot` is what the page
        shows: the paced keys as the paced lane built them, the rest as the urgent lane did."""
        if any(read < self._shown_reads[lane] for lane in lanes):
            return
        self._shown_reads.update(dict.fromkeys(lanes, read))
        if "paced" in lanes:
            self._paced_from = snapshot
        if len(lanes) == 1:
            own, shown = self.lanes[lanes[0]], self._shown[0]
            segments = {name: built if name in own else shown.get(name, built) for name, built in segments.items()}
            paced_keys = self.pacing.keys
            if lanes[0] == "paced":
                snapshot = self.snapshot.holding(snapshot, paced_keys)
            elif any(snapshot[key] is not self.snapshot[key] for key in paced_keys):
                snapshot = snapshot.holding(self.snapshot, paced_keys)
        whole = [segment for built in segments.values() for _, segment in built]
        self.body = gzip_pieces(whole)
        self.plain_bytes = sum(segment.size for segment in whole)
        self._shown = (segments, {})
        self.snapshot, self.version = snapshot, snapshot.version

    @property
    def current(self) -> bool:
        """The page shows all the store holds: the latest change, paced data included (which may wait its
        turn), and the exporter's own part counts the agent segments shown."""
        return self.snapshot is self._store.snapshot and self._sizes_counted == self._paced_builds

    @property
    def ready(self) -> bool:
        """Every poller has succeeded at least once in what the page shows, the agent segments included:
        the paced lane built them from a snapshot in which every poller had, or they are as the store
        has them now."""
        return _all_succeeded(self.snapshot) and (
            _all_succeeded(self._paced_from) or not self._moved(self._store.snapshot)
        )

    def _moved(self, snapshot: Snapshot) -> list[Key]:
        """The paced keys in which `snapshot` is ahead of the page shown."""
        return [key for key in self.pacing.keys if snapshot[key] is not self.snapshot[key]]

    async def run(self) -> None:
        """Re-render after every change, each lane on its own: the urgent lane coalesces bursts (the
        batches of one poll land close together), the paced lane waits for its segments' turn."""
        self.refresh()
        async with asyncio.TaskGroup() as lanes:
            lanes.create_task(self._urgent_lane(), name="page-urgent")
            lanes.create_task(self._paced_lane(), name="page-paced")

    async def _urgent_lane(self) -> None:
        loop = asyncio.get_running_loop()
        built = self.version
        while True:
            await first_of({"changed": self._store.wait_changed(built), "paced": self._paced_shown.wait()})
            self._paced_shown.clear()
            await asyncio.sleep(self._debounce)
            snapshot, telemetry = self._store.snapshot, self._telemetry()  # read on the loop's thread
            read, built, counted = next(self._reads), snapshot.version, self._paced_builds
            segments, _ = await loop.run_in_executor(
                self._threads["urgent"], self._build, snapshot, telemetry, "urgent", self._shown[0]
            )
            self._show(snapshot, segments, read, "urgent")
            self._sizes_counted = counted

    async def _paced_lane(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            snapshot = self._store.snapshot
            due = self.pacing.next_due(self._moved(snapshot))
            if due is None or due > time.perf_counter():  # nothing moved, or held back: until due or other news
                waits: dict[str, Awaitable[object]] = {"changed": self._store.wait_changed(snapshot.version)}
                if due is not None:
                    waits["due"] = asyncio.sleep(due - time.perf_counter())
                await first_of(waits)
                continue
            await asyncio.sleep(self._debounce)
            snapshot, telemetry = self._store.snapshot, self._telemetry()
            read = next(self._reads)
            now, moved = time.perf_counter(), self._moved(snapshot)
            snapshot = snapshot.holding(self.snapshot, [*self.pacing.held(now), *self.pacing.later(moved, now)])
            segments, seconds = await loop.run_in_executor(
                self._threads["paced"], self._build, snapshot, telemetry, "paced", self._shown[0]
            )
            self._show(snapshot, segments, read, "paced")
            self.pacing.built(seconds, time.perf_counter())
            self._paced_builds += 1
            self._paced_shown.set()


def _all_succeeded(snapshot: Snapshot) -> bool:
    pollers = snapshot.pollers.values()
    return bool(pollers) and all(s.last_success is not None for s in pollers)
