"""The served `/metrics` page: the metric families compressed once per change, never per scrape.

`exporter.metrics` says what the page shows (snapshot -> exposition text); this module says when
and how it is built and kept: in segments compressed apart and joined (`exporter.gzip_segments`),
each compressed again only when its inputs changed, in one worker thread, with the agent segments
paced. Scrapes only read `MetricsPage.body` (or its text, for a client without gzip), so a hundred
scrapers cost a hundred memory reads and no API call. It is its own module because how often the
page changes is its own concern: the pollers change it every few seconds now, and push
notifications will change it many times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from exporter.gzip_segments import EMPTY, Segment, compress, gzip_pieces, join
from exporter.metrics import (
    StateLines,
    Telemetry,
    agent_label_blocks,
    agent_state_families,
    agent_state_lines,
    agent_state_parts,
    render_agent_info,
    render_agent_tallies,
    render_queue_performance,
    render_queues,
    render_self,
)
from exporter.snapshot import Agent, AgentState, Part, Snapshot, Store

Body = tuple[bytes, ...]  # a gzip page in pieces


@dataclass
class AgentCache:
    """What one render of the agent families can hand the next, so a page is not rebuilt from scratch.

    At 50,000 agents a state part (100 agents) lands every second or so and the rest of the page
    is unchanged: label blocks are kept while the agent list is the same object, and each state
    part's lines while the part is. Used by one thread at a time (the page's renders never overlap).
    """

    agents: Mapping[str, Agent] | None = None
    blocks: dict[str, str] = field(default_factory=dict)
    states: dict[Hashable, tuple[Part[AgentState], StateLines]] = field(default_factory=dict)
    # (family, first part) -> the lines it was compressed from, and the result
    compressed: dict[tuple[int, int], tuple[tuple[str, ...], Segment]] = field(default_factory=dict)

    def blocks_of(self, agents: Mapping[str, Agent]) -> dict[str, str]:
        """Each agent's label block; a new agent list starts the cache afresh."""
        if self.agents is not agents:
            self.agents, self.states, self.compressed = agents, {}, {}
            self.blocks = agent_label_blocks(agents)
        return self.blocks

    def state_lines(self, snapshot: Snapshot) -> list[StateLines]:
        """Every state part's lines in page order, a part's kept lines reused while the part is the same."""
        blocks = self.blocks_of(snapshot.agents)
        kept: dict[Hashable, tuple[Part[AgentState], StateLines]] = {}
        out = []
        for key, part, uids in agent_state_parts(snapshot.agent_states, blocks):
            whole = len(uids) == len(part.items)  # only whole parts are worth keeping
            cached = self.states.get(key)
            # The same items, even re-stamped (a live channel's data, current without news), keep their lines.
            if cached is not None and cached[0].items is part.items and whole:
                lines = cached[1]
            else:
                lines = agent_state_lines(uids, part.items, blocks)
            if whole:
                kept[key] = (part, lines)
            out.append(lines)
        self.states = kept
        return out


STATE_PARTS_PER_RUN = 25  # state parts compressed together: a new part recompresses 2,500 agents, not 50,000


def agent_state_segment(snapshot: Snapshot, cache: AgentCache) -> Segment:
    """The state families compressed in runs of parts, each run kept while its parts' lines are.

    A state page lands every second or so at 50,000 agents; compressing the three families whole
    (20 MB of text) each time cost the render thread ~0.1 s; now one run of 25 parts is compressed.
    """
    segments, used = [], set()
    for index, header, lines in agent_state_families(cache.state_lines(snapshot)):
        segments.append(compress([header]))
        for first in range(0, len(lines), STATE_PARTS_PER_RUN):
            run = tuple(lines[first : first + STATE_PARTS_PER_RUN])
            kept = cache.compressed.get((index, first))
            if kept is None or len(kept[0]) != len(run) or any(a is not b for a, b in zip(kept[0], run, strict=True)):
                kept = cache.compressed[(index, first)] = (run, compress(run))
            segments.append(kept[1])
            used.add((index, first))
    # Runs past the end (fewer parts now: the listing's first pass dropped) would keep their lines alive.
    for key in cache.compressed.keys() - used:
        del cache.compressed[key]
    return join(segments)


@dataclass(slots=True)
class PageBuilder:
    """Builds the page segment by segment, compressing again only the segments whose inputs changed.

    At 2,000 queues and 50,000 agents: the queue segment (a few MB of text) changes every queue
    poll, the agent states (20 MB) with every state page, the agent list (6 MB) with the directory,
    the agent tallies (23 MB) once a performance cycle, the exporter's own metrics with every
    request. The text of a segment is dropped once compressed: only the state lines stay, per part.
    Inputs are compared by identity: the snapshot's mappings are replaced, never changed in place.
    Used by one thread at a time.
    """

    agents: AgentCache = field(default_factory=AgentCache)
    built: dict[str, tuple[tuple[object, ...], Segment]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # how long each segment last took

    def build(self, snapshot: Snapshot, telemetry: Telemetry) -> tuple[Body, int, set[str]]:
        """The page gzip-compressed (in pieces), its plain size, and the segments compressed afresh for it."""
        segments, rebuilt = self.build_segments(snapshot, telemetry)
        return gzip_pieces(list(segments.values())), sum(s.size for s in segments.values()), rebuilt

    def build_segments(self, snapshot: Snapshot, telemetry: Telemetry) -> tuple[dict[str, Segment], set[str]]:
        """Each segment by name, in page order, and the names of those compressed afresh."""
        parts: tuple[tuple[str, tuple[object, ...], Callable[[], Segment]], ...] = (
            (
                "queues",
                (snapshot.queues, snapshot.queue_states, snapshot.queue_tallies),
                lambda: compress((*render_queues(snapshot), *render_queue_performance(snapshot))),
            ),
            ("agent_info", (snapshot.agents,), lambda: compress(render_agent_info(snapshot))),
            (
                "agent_states",
                (snapshot.agents, snapshot.agent_states),
                lambda: agent_state_segment(snapshot, self.agents),
            ),
            (
                "agent_tallies",
                (snapshot.agents, snapshot.agent_tallies),
                lambda: compress(render_agent_tallies(snapshot, self.agents.blocks_of(snapshot.agents))),
            ),
            ("self", (snapshot.pollers, telemetry), lambda: compress(render_self(snapshot, telemetry))),
        )
        segments, rebuilt = {}, set()
        for name, inputs, render in parts:
            kept = self.built.get(name)
            if kept is None or any(a is not b for a, b in zip(kept[0], inputs, strict=True)):
                started = time.perf_counter()
                kept = self.built[name] = (inputs, render())
                self.seconds[name] = time.perf_counter() - started
                rebuilt.add(name)
            segments[name] = kept[1]
        return segments, rebuilt


def build_page(snapshot: Snapshot, telemetry: Telemetry) -> tuple[bytes, int, float]:
    """The whole page from scratch, gzip-compressed, its plain size, and the seconds it took."""
    started = time.perf_counter()
    body, size, _ = PageBuilder().build(snapshot, telemetry)
    return b"".join(body), size, time.perf_counter() - started


AGENT_RENDER_SPACING = 3  # an agent segment waits this many times its last build between two builds
# Each agent segment and the snapshot fields it shows: a field moves on once every segment showing it is due.
AGENT_SEGMENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "agent_info": ("agents",),
    "agent_states": ("agents", "agent_states"),
    "agent_tallies": ("agents", "agent_tallies"),
}
AGENT_SEGMENTS = tuple(AGENT_SEGMENT_FIELDS)
AGENT_FIELDS = tuple(dict.fromkeys(f for fields in AGENT_SEGMENT_FIELDS.values() for f in fields))
# What `collect[]` may ask for (a public contract: README, the shipped scrape configs), each a run of
# segments, in page order. A selection is a join of compressed segments: nothing is rendered for it.
COLLECTORS: Mapping[str, tuple[str, ...]] = {
    "queues": ("queues",),  # the queue families and today's queue figures
    "agents": AGENT_SEGMENTS,  # agent info, states and tallies
    "exporter": ("self",),  # the exporter's own metrics
}


class MetricsPage:
    """The cached `/metrics` body, rebuilt when the snapshot changes; kept gzip-compressed only.

    At 50,000 agents a page is half a million samples (55 MB of text, 14 MB gzip). The rebuild
    runs in a worker thread (the snapshot is immutable: nothing to lock), segment by segment, so
    new queue data is on the page within a tenth of a second of landing, while each agent segment
    (a state page lands every second or so; the tallies take 0.4 s once a minute) is rebuilt at most
    once per three of its own build times: the render thread holds the GIL a quarter of the time at
    most for each, and pushed agent states (landing every quarter second) wait three state builds at
    most, not three of the tallies' as well (spaced together, the minute's tallies build held the
    states back 2-3 s and put the pushed agents' p95 over 3 s). A build that moves agent data on is
    shown in two steps, everything else first: new queue data waits for no agent segment (the queue
    data p95 was 2.0-2.9 s at 50,000 agents, against a 3 s target). The text is never held whole.
    Prometheus asks for gzip; a client that does not gets the text decompressed for it. A
    `collect[]` scrape gets the chosen collectors' segments joined (`body_of`), never a render.
    """

    def __init__(self, store: Store, telemetry: Callable[[], Telemetry], *, debounce: float = 0.05) -> None:
        self._store = store
        self._telemetry = telemetry
        self._debounce = debounce
        self.version = -1
        self.snapshot = Snapshot()  # the one the page shows
        self.body: Body = (gzip.compress(b""),)  # the gzip page in pieces, each written to a scraper in turn
        self.plain_bytes = 0
        # The page shown's segments and the collect[] bodies made from them when asked, swapped as one:
        # the server reads them from its own thread, and a selection must never outlive its page.
        self._shown: tuple[Mapping[str, Segment], dict[frozenset[str], Body]] = (
            dict.fromkeys((n for names in COLLECTORS.values() for n in names), EMPTY),
            {},
        )
        self._builder = PageBuilder()
        self._reads = itertools.count()  # the order the inputs of each build were read in
        self._shown_read = -1
        self._due = dict.fromkeys(AGENT_SEGMENTS, 0.0)  # perf_counter time from which each may be rebuilt
        # One thread for every render: big strings freed by many threads leave glibc a heap per thread.
        self._renderer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")

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
        """How long each segment's last build took, by segment (queues, agent_states, ...)."""
        return dict(self._builder.seconds)

    def body_of(self, collectors: Collection[str] = ()) -> Body:
        """The page shown, or only the segments of the named collectors (in page order), as one gzip member.

        Made once per page and selection from the compressed segments: their deflate runs end to end
        and their CRCs combined, so scraping the small urgent part often costs no render.
        """
        if not collectors:
            return self.body
        key = frozenset(collectors)
        segments, selections = self._shown
        body = selections.get(key)
        if body is None:
            chosen = [segments[name] for collector, names in COLLECTORS.items() if collector in key for name in names]
            body = selections[key] = gzip_pieces(chosen)
        return body

    def refresh(self) -> None:
        """Rebuild now, every segment up to date; the caller waits. The build runs on the render
        thread, after any render in progress there: the builder's caches are one thread's."""
        read = next(self._reads)
        snapshot = self._store.snapshot
        segments, _ = self._renderer.submit(self._builder.build_segments, snapshot, self._telemetry()).result()
        self._show(snapshot, segments, read)

    def _build(self, snapshot: Snapshot, telemetry: Telemetry) -> tuple[dict[str, Segment], dict[str, float]]:
        """Build the page's segments; the seconds each agent segment compressed afresh took."""
        segments, rebuilt = self._builder.build_segments(snapshot, telemetry)
        return segments, {name: self._builder.seconds[name] for name in rebuilt & set(AGENT_SEGMENTS)}

    def _show(self, snapshot: Snapshot, segments: dict[str, Segment], read: int) -> None:
        """Show a page built from inputs read in the `read`-th place; one read before the page shown
        (a render started just before a `refresh`) is dropped: the page never goes back in time."""
        if read < self._shown_read:
            return
        self._shown_read = read
        self.body = gzip_pieces(list(segments.values()))
        self.plain_bytes = sum(segment.size for segment in segments.values())
        self._shown = (segments, {})
        self.snapshot, self.version = snapshot, snapshot.version

    @property
    def current(self) -> bool:
        """The page shows all the store holds: the latest change, agent data included (which may wait its turn)."""
        return self.snapshot is self._store.snapshot

    @property
    def ready(self) -> bool:
        """Every poller has succeeded at least once in the snapshot this page shows."""
        pollers = self.snapshot.pollers.values()
        return bool(pollers) and all(s.last_success is not None for s in pollers)

    def _field_due(self, name: str) -> float:
        """When an agent field may move on: once every segment that shows it is due."""
        return max(self._due[segment] for segment, fields in AGENT_SEGMENT_FIELDS.items() if name in fields)

    def _agents_moved(self, snapshot: Snapshot) -> list[str]:
        """The agent fields in which `snapshot` is ahead of the page shown."""
        return [f for f in AGENT_FIELDS if getattr(snapshot, f) is not getattr(self.snapshot, f)]

    def _agents_as_shown(self, fields: Iterable[str]) -> dict[str, Any]:
        """These agent fields as the page shows them: what a build that holds them back replaces."""
        return {f: getattr(self.snapshot, f) for f in fields}

    def _next_due(self) -> float | None:
        """When the first agent field the page shows behind the store may move on (None: none is behind)."""
        return min((self._field_due(f) for f in self._agents_moved(self._store.snapshot)), default=None)

    async def run(self) -> None:
        """Re-render after every change, coalescing bursts (the batches of one poll land close together).

        The pauses are real time, not the injected clock: they pace CPU work, not the schedule.
        """
        self.refresh()
        loop = asyncio.get_running_loop()
        while True:
            changed = self._store.wait_changed(self.version)
            due = self._next_due()
            if due is not None:  # agent data held back: rebuild when due, or sooner on other news
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed, max(0.0, due - time.perf_counter()))
            else:
                await changed
            await asyncio.sleep(self._debounce)
            snapshot, telemetry = self._store.snapshot, self._telemetry()  # read on the loop's thread
            read = next(self._reads)
            now = time.perf_counter()
            held = [f for f in AGENT_FIELDS if now < self._field_due(f)]
            if held:  # these agent fields stay as the page already shows them
                snapshot = replace(snapshot, **self._agents_as_shown(held))
            moving = self._agents_moved(snapshot)
            if moving:  # agent segments take up to a second to build: the rest of the news is shown first
                first = replace(snapshot, **self._agents_as_shown(moving))
                segments, _ = await loop.run_in_executor(self._renderer, self._build, first, telemetry)
                self._show(first, segments, read)
            segments, agent_seconds = await loop.run_in_executor(self._renderer, self._build, snapshot, telemetry)
            self._show(snapshot, segments, read)
            built_at = time.perf_counter()
            for name, seconds in agent_seconds.items():
                self._due[name] = built_at + AGENT_RENDER_SPACING * seconds
