"""Snapshot -> metric families -> cached exposition bytes, rendered once per change.

Scrapes only read `MetricsPage.body` (or its text, for a client without gzip); the page is
rebuilt in the background when the snapshot changes, so a hundred scrapers cost a hundred memory
reads and no API call. Metric names
here are the public contract (README, dashboards, alert rules depend on them).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import platform
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal

import structlog

from exporter import __version__
from exporter.exposition import escape, family, family_header, labels, value_text
from exporter.gzip_segments import Segment, compress, gzip_pieces, join
from exporter.snapshot import Agent, AgentState, Part, Queue, QueueState, Snapshot, Store, Tally, merged

log = structlog.get_logger(__name__)

ROUTING_STATUSES = ("idle", "interacting", "communicating", "not_responding", "off_queue")


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The exporter's own counters at render time (the API client's, not the snapshot's)."""

    requests: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (endpoint, code) -> count
    rate_limit_remaining: int | None = None
    rate_limited_total: int = 0
    budget_per_minute: int | None = None
    parse_errors: Mapping[str, int] = field(default_factory=dict)  # endpoint -> responses of the wrong shape


Body = tuple[bytes, ...]  # a gzip page in pieces
Families = tuple[str, ...]  # exposition text in family order (one family may come in several pieces)


def render(snapshot: Snapshot, telemetry: Telemetry) -> str:
    """The page as text, from scratch (the served page is built segment by segment: `PageBuilder`)."""
    parts = (render_queues, render_queue_performance, render_agents)
    return "".join((*(text for part in parts for text in part(snapshot)), *render_self(snapshot, telemetry)))


def render_queues(snapshot: Snapshot) -> Families:
    queues = snapshot.queues
    by_queue = {qid: labels(queue_id=qid, queue_name=q.name) for qid, q in sorted(queues.items())}
    states = [(by_queue[qid], s) for qid, s in sorted(merged(snapshot.queue_states, queues).items())]

    def per_media(pick: Callable[[QueueState], Mapping[str, float]]) -> Iterator[tuple[str, float]]:
        for block, state in states:
            for media, value in sorted(pick(state).items()):
                yield f'{block},media_type="{media}"', value

    def per_status(state: QueueState) -> Iterator[tuple[str, int]]:
        known = {status: state.agents_by_status.get(status, 0) for status in ROUTING_STATUSES}
        yield from known.items()
        yield from sorted((s, n) for s, n in state.agents_by_status.items() if s not in known)

    return (
        family(
            "genesys_queue_info",
            "gauge",
            "Queue in scope (value 1), from GET /api/v2/routing/queues.",
            ((_info_labels(qid, q), 1) for qid, q in sorted(queues.items())),
        ),
        family(
            "genesys_queue_waiting_interactions",
            "gauge",
            "Interactions waiting in the queue now (oWaiting observation).",
            per_media(lambda s: s.waiting),
        ),
        family(
            "genesys_queue_interacting_interactions",
            "gauge",
            "Interactions connected to an agent now (oInteracting observation).",
            per_media(lambda s: s.interacting),
        ),
        family(
            "genesys_queue_alerting_interactions",
            "gauge",
            "Interactions ringing an agent now (oAlerting observation).",
            per_media(lambda s: s.alerting),
        ),
        family(
            "genesys_queue_oldest_waiting_seconds",
            "gauge",
            "Age of the oldest waiting interaction when polled (oLongestWaiting observation).",
            per_media(lambda s: s.oldest_waiting_seconds),
        ),
        family(
            "genesys_queue_available_agents",
            "gauge",
            "Agents on queue and idle (oOnQueueUsers observation, qualifier IDLE).",
            ((block, s.available_agents) for block, s in states),
        ),
        family(
            "genesys_queue_agents",
            "gauge",
            "Joined queue members by routing status (oUserRoutingStatuses observation).",
            ((f'{block},routing_status="{status}"', n) for block, s in states for status, n in per_status(s)),
        ),
        family(
            "genesys_queue_member_agents",
            "gauge",
            "Agents who are members of the queue (oMemberUsers observation).",
            ((block, s.member_agents) for block, s in states),
        ),
        family(
            "genesys_queue_joined_agents",
            "gauge",
            "Queue members who have joined the queue (oActiveUsers observation).",
            ((block, s.joined_agents) for block, s in states),
        ),
    )


# Today's figures, from conversation aggregates: (name suffix, help, value, who has it). A value of
# None (no AHT with nothing closed, no service level) is left out, never written as 0.
Who = Literal["queue", "agent", "both"]
TALLY_METRICS: tuple[tuple[str, str, Callable[[Tally], float | None], Who], ...] = (
    ("offered_interactions", "Interactions offered today (nOffered).", lambda t: t.offered, "queue"),
    ("answered_interactions", "Interactions answered today (tAnswered count).", lambda t: t.answered, "queue"),
    ("abandoned_interactions", "Interactions abandoned today (tAbandon count).", lambda t: t.abandoned, "queue"),
    ("connected_interactions", "Conversations connected today (nConnected).", lambda t: t.connected, "agent"),
    (
        "handled_interactions",
        "Closed conversations today: tHandle count (ends after wrap-up).",
        lambda t: t.handled,
        "both",
    ),
    ("handle_seconds", "Handle time of today's closed conversations: tHandle sum.", lambda t: t.handle_seconds, "both"),
    (
        "average_handle_seconds",
        "average handle time of today's closed conversations; absent when none closed.",
        lambda t: t.average_handle_seconds,
        "both",
    ),
    (
        "service_level_ratio",
        "share of today's answered interactions within the service level (oServiceLevel).",
        lambda t: t.service_level,
        "queue",
    ),
)


def _tally_families(prefix: str, subject: str, tallies: Sequence[tuple[str, Tally]], of: Who) -> Iterator[str]:
    """The tally families of queues or of agents (`of`), a line per (label block, tally) with a value."""
    for suffix, help_text, pick, who in TALLY_METRICS:
        if who in (of, "both"):
            samples = ((b, v) for b, t in tallies if (v := pick(t)) is not None)
            yield family(f"{prefix}_{suffix}", "gauge", f"{subject}: {help_text}", samples)


def with_zeros(tallies: Mapping[str, Tally], media_types: Iterable[str]) -> dict[str, Tally]:
    """A queue's tallies plus a zero tally for each media type it serves that had nothing today.

    The aggregates API leaves out empty groups; the live observation says which media a queue serves.
    """
    return {media: tallies.get(media, Tally()) for media in {*tallies, *media_types}}


def render_queue_performance(snapshot: Snapshot) -> Families:
    queues = snapshot.queues
    served = {qid: state.waiting.keys() for qid, state in merged(snapshot.queue_states, queues).items()}
    tallies = [
        (f'{labels(queue_id=qid, queue_name=queues[qid].name)},media_type="{media}"', tally)
        for qid, by_media in sorted(merged(snapshot.queue_tallies, queues).items())
        for media, tally in sorted(with_zeros(by_media, served.get(qid, ())).items())
    ]
    return tuple(_tally_families("genesys_queue", "Per queue and media type", tallies, "queue"))


@dataclass
class AgentCache:
    """What one render of the agent families can hand the next, so a page is not rebuilt from scratch.

    At 50,000 agents a state part (100 agents) lands every second or so and the rest of the page
    is unchanged: label blocks are kept while the agent list is the same object, and each state
    part's lines while the part is. Used by one thread at a time (the page's renders never overlap).
    """

    agents: Mapping[str, Agent] | None = None
    blocks: dict[str, str] = field(default_factory=dict)
    states: dict[Hashable, tuple[Part[AgentState], tuple[str, str, str]]] = field(default_factory=dict)
    # (family, first part) -> the lines it was compressed from, and the result
    compressed: dict[tuple[int, int], tuple[tuple[str, ...], Segment]] = field(default_factory=dict)

    def blocks_of(self, agents: Mapping[str, Agent]) -> dict[str, str]:
        """Each agent's label block; a new agent list starts the cache afresh."""
        if self.agents is not agents:
            self.agents, self.states, self.compressed = agents, {}, {}
            self.blocks = {uid: labels(user_id=uid, agent_name=a.name) for uid, a in sorted(agents.items())}
        return self.blocks


STATE_FAMILIES = (
    (
        "genesys_agent_routing_status",
        "The agent's current routing status (value 1; one series per agent), from GET /api/v2/users.",
    ),
    ("genesys_agent_presence", "The agent's current system presence (value 1; one series per agent)."),
    ("genesys_agent_status_since_timestamp_seconds", "Unix time when the agent's current routing status began."),
)


def render_agents(snapshot: Snapshot, cache: AgentCache | None = None) -> Families:
    cache = AgentCache() if cache is None else cache
    return (*render_agent_info(snapshot), *render_agent_states(snapshot, cache), *render_agent_tallies(snapshot, cache))


def render_agent_info(snapshot: Snapshot) -> Families:
    agents = sorted(snapshot.agents.items())
    return (
        family(
            "genesys_agent_info",
            "gauge",
            "Agent in scope (value 1), from queue members or the user list.",
            ((labels(user_id=uid, agent_name=a.name, division=a.division), 1) for uid, a in agents),
        ),
    )


def render_agent_states(snapshot: Snapshot, cache: AgentCache) -> Families:
    """The three state families, each as its header and then one piece of lines per state part."""
    return tuple(text for _, header, lines in _state_families(snapshot, cache) for text in (header, *lines))


STATE_PARTS_PER_RUN = 25  # state parts compressed together: a new part recompresses 2,500 agents, not 50,000


def agent_state_segment(snapshot: Snapshot, cache: AgentCache) -> Segment:
    """The state families compressed in runs of parts, each run kept while its parts' lines are.

    A state page lands every second or so at 50,000 agents; compressing the three families whole
    (20 MB of text) each time cost the render thread ~0.1 s; now one run of 25 parts is compressed.
    """
    segments = []
    for index, header, lines in _state_families(snapshot, cache):
        segments.append(compress([header]))
        for first in range(0, len(lines), STATE_PARTS_PER_RUN):
            run = tuple(lines[first : first + STATE_PARTS_PER_RUN])
            kept = cache.compressed.get((index, first))
            if kept is None or len(kept[0]) != len(run) or any(a is not b for a, b in zip(kept[0], run, strict=True)):
                kept = cache.compressed[(index, first)] = (run, compress(run))
            segments.append(kept[1])
    return join(segments)


def _state_families(snapshot: Snapshot, cache: AgentCache) -> Iterator[tuple[int, str, list[str]]]:
    """Each state family with lines: its index, its HELP/TYPE header, and a piece of lines per part.

    Pieces, not one joined text: at 50,000 agents a family is 7 MB, and joining it (then encoding
    it) would hold two more copies of what the compressor reads piece by piece anyway.
    """
    cache.blocks_of(snapshot.agents)
    pieces = _state_pieces(snapshot.agent_states, cache)
    for index, ((name, help_text), lines) in enumerate(zip(STATE_FAMILIES, pieces, strict=True)):
        if any(lines):
            yield index, family_header(name, "gauge", help_text), lines


def render_agent_tallies(snapshot: Snapshot, cache: AgentCache) -> Families:
    """All agents' tally lines: new figures come once a performance cycle, for every agent at once."""
    blocks = cache.blocks_of(snapshot.agents)
    tallies = merged(snapshot.agent_tallies, snapshot.agents)
    rows = [(blocks[uid], tallies[uid]) for uid in sorted(tallies)]
    return tuple(_tally_families("genesys_agent", "Per agent", rows, "agent"))


def _state_pieces(
    parts: Mapping[Hashable, Part[AgentState]], cache: AgentCache
) -> tuple[list[str], list[str], list[str]]:
    """The three state families' lines, a piece per part; where parts overlap, the newest part has the agent."""
    owner: dict[str, Hashable] = {}
    for key, part in sorted(parts.items(), key=lambda kv: kv[1].taken_at):
        owner.update(dict.fromkeys(part.items, key))
    kept: dict[Hashable, tuple[Part[AgentState], tuple[str, str, str]]] = {}
    out: tuple[list[str], list[str], list[str]] = ([], [], [])
    for key in sorted(parts, key=str):
        part = parts[key]
        uids = sorted(uid for uid in part.items if owner[uid] == key and uid in cache.blocks)
        cached = cache.states.get(key)
        if cached is not None and cached[0] is part and len(uids) == len(part.items):
            bodies = cached[1]
        else:
            bodies = _state_lines(uids, part.items, cache.blocks)
        if len(uids) == len(part.items):  # only whole parts are worth keeping
            kept[key] = (part, bodies)
        for lines, body in zip(out, bodies, strict=True):
            lines.append(body)
    cache.states = kept
    return out


def _state_lines(uids: list[str], states: Mapping[str, AgentState], blocks: Mapping[str, str]) -> tuple[str, str, str]:
    routing, presence, since = (name for name, _ in STATE_FAMILIES)
    pairs = [(blocks[uid], states[uid]) for uid in uids]
    return (
        "".join(
            f'{routing}{{{b},routing_status="{escape(s.routing_status)}"}} 1\n' for b, s in pairs if s.routing_status
        ),
        "".join(f'{presence}{{{b},presence="{escape(s.presence)}"}} 1\n' for b, s in pairs if s.presence),
        "".join(f"{since}{{{b}}} {value_text(s.status_since)}\n" for b, s in pairs if s.status_since is not None),
    )


def _info_labels(qid: str, queue: Queue) -> str:
    return labels(queue_id=qid, queue_name=queue.name, division=queue.division)


def render_self(snapshot: Snapshot, telemetry: Telemetry) -> Families:
    pollers = sorted(snapshot.pollers.items())
    remaining = telemetry.rate_limit_remaining
    return (
        family(
            "genesys_exporter_poller_up",
            "gauge",
            "1 when the poller's last cycle fully succeeded, 0 when it failed.",
            ((labels(poller=name), int(bool(s.up))) for name, s in pollers if s.up is not None),
        ),
        family(
            "genesys_exporter_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the poller's last fully successful cycle.",
            ((labels(poller=name), s.last_success) for name, s in pollers if s.last_success is not None),
        ),
        family(
            "genesys_exporter_poller_duration_seconds",
            "gauge",
            "Wall time the poller's last cycle took.",
            ((labels(poller=name), s.last_duration) for name, s in pollers if s.last_duration is not None),
        ),
        family(
            "genesys_exporter_poller_interval_seconds",
            "gauge",
            "The poller's effective cadence: the configured one, or longer when the rate budget cannot fit it.",
            ((labels(poller=name), s.interval) for name, s in pollers),
        ),
        family(
            "genesys_exporter_poller_configured_interval_seconds",
            "gauge",
            "The poller's configured cadence.",
            ((labels(poller=name), s.configured_interval) for name, s in pollers if s.configured_interval),
        ),
        family(
            "genesys_exporter_poller_requests_per_cycle",
            "gauge",
            "API requests the poller's last successful cycle sent: what the planner fits into the budget.",
            ((labels(poller=name), s.cost) for name, s in pollers if s.cost is not None),
        ),
        family(
            "genesys_exporter_api_requests_total",
            "counter",
            "Genesys Cloud API responses by endpoint and HTTP status ('error' when no response came).",
            ((labels(endpoint=e, code=c), n) for (e, c), n in sorted(telemetry.requests.items())),
        ),
        family(
            "genesys_exporter_parse_errors_total",
            "counter",
            "Genesys responses that were not JSON or not of the expected shape, by endpoint (none were used).",
            ((labels(endpoint=e), n) for e, n in sorted(telemetry.parse_errors.items())),
        ),
        family(
            "genesys_exporter_rate_limited_total",
            "counter",
            "HTTP 429 responses received from Genesys Cloud.",
            [("", telemetry.rate_limited_total)],
        ),
        family(
            "genesys_exporter_budget_requests_per_minute",
            "gauge",
            "Requests the exporter allows itself in any 60 s: rate limit less headroom, tightened by the server.",
            [] if telemetry.budget_per_minute is None else [("", telemetry.budget_per_minute)],
        ),
        family(
            "genesys_exporter_rate_limit_remaining",
            "gauge",
            "Requests left in the current rate-limit window (inin-ratelimit-* headers, else our count).",
            [] if remaining is None else [("", remaining)],
        ),
        family(
            "genesys_exporter_build_info",
            "gauge",
            "Build information (value 1).",
            [(labels(version=__version__, python_version=platform.python_version()), 1)],
        ),
    )


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
                lambda: compress(render_agent_tallies(snapshot, self.agents)),
            ),
            ("self", (snapshot.pollers, telemetry), lambda: compress(render_self(snapshot, telemetry))),
        )
        segments, rebuilt = [], set()
        for name, inputs, render in parts:
            kept = self.built.get(name)
            if kept is None or any(a is not b for a, b in zip(kept[0], inputs, strict=True)):
                started = time.perf_counter()
                kept = self.built[name] = (inputs, render())
                self.seconds[name] = time.perf_counter() - started
                rebuilt.add(name)
            segments.append(kept[1])
        return gzip_pieces(segments), sum(segment.size for segment in segments), rebuilt


def build_page(snapshot: Snapshot, telemetry: Telemetry) -> tuple[bytes, int, float]:
    """The whole page from scratch, gzip-compressed, its plain size, and the seconds it took."""
    started = time.perf_counter()
    body, size, _ = PageBuilder().build(snapshot, telemetry)
    return b"".join(body), size, time.perf_counter() - started


AGENT_RENDER_SPACING = 4  # the agent segments wait this many times their last build between two builds
AGENT_FIELDS = ("agents", "agent_states", "agent_tallies")  # what the agent segments show
AGENT_SEGMENTS = ("agent_info", "agent_states", "agent_tallies")


class MetricsPage:
    """The cached `/metrics` body, rebuilt when the snapshot changes; kept gzip-compressed only.

    At 50,000 agents a page is half a million samples (55 MB of text, 14 MB gzip). The rebuild
    runs in a worker thread (the snapshot is immutable: nothing to lock), segment by segment, so
    new queue data is on the page within a tenth of a second of landing, while the agent segments
    (a state page lands every second or so; the tallies take 0.3 s once a minute) are rebuilt at
    most once per four of their build times: the render thread holds the GIL a fifth of the time
    at most, and agent data, minutes apart at that size, waits a moment. The text is never held
    whole. Prometheus asks for gzip; a client that does not gets the text decompressed for it.
    """

    def __init__(self, store: Store, telemetry: Callable[[], Telemetry], *, debounce: float = 0.05) -> None:
        self._store = store
        self._telemetry = telemetry
        self._debounce = debounce
        self.version = -1
        self.snapshot = Snapshot()  # the one the page shows
        self.body: Body = (gzip.compress(b""),)  # the gzip page in pieces, each written to a scraper in turn
        self.plain_bytes = 0
        self._builder = PageBuilder()
        self._agents_due = 0.0  # perf_counter time from which the agent segments may be rebuilt
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

    def refresh(self) -> None:
        """Rebuild now, every segment up to date, on the calling thread."""
        body, size, _ = self._builder.build(self._store.snapshot, self._telemetry())
        self._show(self._store.snapshot, body, size)

    def _build(self, snapshot: Snapshot, telemetry: Telemetry) -> tuple[Body, int, float]:
        """Build the page; the seconds its agent segments took (0 when none changed)."""
        body, size, rebuilt = self._builder.build(snapshot, telemetry)
        return body, size, sum(self._builder.seconds[name] for name in rebuilt & set(AGENT_SEGMENTS))

    def _show(self, snapshot: Snapshot, body: Body, plain_bytes: int) -> None:
        self.body, self.plain_bytes = body, plain_bytes
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

    def _agents_behind(self) -> bool:
        latest, shown = self._store.snapshot, self.snapshot
        return any(getattr(latest, f) is not getattr(shown, f) for f in AGENT_FIELDS)

    async def run(self) -> None:
        """Re-render after every change, coalescing bursts (the batches of one poll land close together).

        The pauses are real time, not the injected clock: they pace CPU work, not the schedule.
        """
        self.refresh()
        loop = asyncio.get_running_loop()
        while True:
            changed = self._store.wait_changed(self.version)
            if self._agents_behind():  # agent data held back: rebuild when due, or sooner on other news
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed, max(0.0, self._agents_due - time.perf_counter()))
            else:
                await changed
            await asyncio.sleep(self._debounce)
            snapshot, telemetry = self._store.snapshot, self._telemetry()  # read on the loop's thread
            if time.perf_counter() < self._agents_due:  # show the agents of the page already shown
                snapshot = replace(snapshot, **{f: getattr(self.snapshot, f) for f in AGENT_FIELDS})
            body, size, agent_seconds = await loop.run_in_executor(self._renderer, self._build, snapshot, telemetry)
            self._show(snapshot, body, size)
            if agent_seconds:
                self._agents_due = time.perf_counter() + AGENT_RENDER_SPACING * agent_seconds
