"""Today's figures per agent and per queue from `POST /api/v2/analytics/conversations/aggregates/query`.

"Today" runs from the day start (local midnight by default, or a shift start) in the org's time
zone to the same time the next day, computed with zoneinfo so DST days are 23 or 25 hours long.
AHT is tHandle.sum / tHandle.count: Genesys writes tHandle only when an agent's handling (talk,
hold, wrap-up) ends (https://help.mypurecloud.com/glossary/average-handle-time-aht/), so a call in
progress never inflates it, and with no closed conversation there is no average at all. The API
leaves out empty groups and metric rows
(https://developer.genesys.cloud/analyticsdatamanagement/analytics/aggregate/conversation-query):
a known agent or queue with no row had nothing today, which is a true zero for counts and no
sample for averages. One job asks for both, two requests per 100 queues in scope.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from exporter.config import Settings
from exporter.exposition import family, labels
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import CONVERSATION_AGGREGATES
from exporter.genesys.models import AGGREGATE_RESPONSE, AggregateResponse, AggregateRow
from exporter.genesys.queries import MAX_QUEUE_PREDICATES, aggregate_query
from exporter.snapshot import Measurement, PartKey, Snapshot, merged
from exporter.sources.agent_directory import (
    AGENT_DIRECTORY_POLLER,
    AGENTS,
    Row,
    agent_family,
    agent_segment,
    exported_agents,
    value_line,
)
from exporter.sources.batches import BatchesFailed, batches
from exporter.sources.queue_directory import DIRECTORY_POLLER, QUEUES
from exporter.sources.queue_states import QUEUE_STATES
from exporter.sources.source import Metric, Piece, Poll, Poller, Selection, Show, Source, Wiring, unsharded

TALLIES_PER_SLICE = 5_000  # agents turned into tallies between two yields to the event loop


@dataclass(frozen=True, slots=True)
class Tally:
    """Today's figures for one agent, or one queue and media type, from conversation aggregates.

    `handled` and `handle_seconds` come from tHandle, which counts a conversation only once its
    handling (talk, hold, wrap-up) has ended, so an interaction in progress never skews the average.
    Talk, hold and after-call work are what handle time is made of, each a count and a sum as
    Genesys Cloud's own averages divide them (tTalk, tHeld, tAcw), written as each segment ends.
    """

    connected: int = 0
    handled: int = 0
    handle_seconds: float = 0.0
    talks: int = 0
    talk_seconds: float = 0.0
    holds: int = 0
    hold_seconds: float = 0.0
    after_call_works: int = 0
    after_call_work_seconds: float = 0.0
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    service_level: float | None = None  # oServiceLevel ratio, when the API had one

    @property
    def average_handle_seconds(self) -> float | None:
        return self.handle_seconds / self.handled if self.handled else None


AGENT_TALLIES: Measurement[Tally] = Measurement("agent_tallies")
QUEUE_TALLIES: Measurement[Mapping[str, Tally]] = Measurement("queue_tallies")  # queue -> media -> Tally


def day_window(now: float, zone: ZoneInfo, day_start: time = time(0)) -> tuple[datetime, datetime]:
    """The current day in `zone` as UTC instants: [latest day start <= now, the next day start)."""
    local = datetime.fromtimestamp(now, zone)
    start = datetime.combine(local.date(), day_start, zone)
    if start > local:
        start = datetime.combine(local.date() - timedelta(days=1), day_start, zone)
    end = datetime.combine(start.date() + timedelta(days=1), day_start, zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def today(settings: Settings, now: float) -> tuple[datetime, datetime]:
    """The day today's figures cover at `now`, in the org's time zone from its day start."""
    return day_window(now, ZoneInfo(settings.timezone), settings.day_start_time)


def iso_interval(start: datetime, end: datetime) -> str:
    def fmt(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    return f"{fmt(start)}/{fmt(end)}"


@dataclass(slots=True)
class _Sums:
    counts: dict[str, int]
    sums: dict[str, float]
    service_level: tuple[float, float] | None = None  # numerator, denominator

    @classmethod
    def empty(cls) -> _Sums:
        return cls(defaultdict(int), defaultdict(float))

    def add(self, row: AggregateRow) -> None:
        metric, stats = row.metric, row.stats
        if stats is None:
            return
        if metric == "oServiceLevel":
            numerator, denominator = stats.numerator, stats.denominator
            if numerator is not None and denominator:
                num, den = self.service_level or (0.0, 0.0)
                self.service_level = (num + numerator, den + denominator)
            return
        self.counts[metric] += stats.count or 0
        self.sums[metric] += stats.sum or 0.0

    def tally(self) -> Tally:
        ratio = self.service_level[0] / self.service_level[1] if self.service_level else None
        return Tally(
            connected=self.counts["nConnected"],
            handled=self.counts["tHandle"],
            handle_seconds=self.sums["tHandle"] / 1000,
            talks=self.counts["tTalk"],
            talk_seconds=self.sums["tTalk"] / 1000,
            holds=self.counts["tHeld"],
            hold_seconds=self.sums["tHeld"] / 1000,
            after_call_works=self.counts["tAcw"],
            after_call_work_seconds=self.sums["tAcw"] / 1000,
            offered=self.counts["nOffered"],
            answered=self.counts["tAnswered"],
            abandoned=self.counts["tAbandon"],
            service_level=ratio,
        )


Sums = dict[tuple[str, ...], _Sums]


def new_sums() -> Sums:
    """Sums per group to fold answers into, one answer at a time: each is dropped once read."""
    return defaultdict(_Sums.empty)


def add_rows(out: Sums, response: AggregateResponse, *dimensions: str) -> None:
    """Fold one response's rows into the sums per group (counts and sums add across buckets; averages don't)."""
    for result in response.results:
        group = result.group
        key = tuple(value if isinstance(value := group.get(d), str) else "" for d in dimensions)
        if not key[0]:
            continue
        sums = out[key]
        for bucket in result.data:
            for row in bucket.metrics:
                sums.add(row)


def agent_tallies(sums: Sums, agent_ids: Iterable[str]) -> dict[str, Tally]:
    """Every known agent, zero when the API had no row for them."""
    return {uid: sums[(uid,)].tally() if (uid,) in sums else Tally() for uid in agent_ids}


def queue_tallies(sums: Sums) -> dict[str, dict[str, Tally]]:
    """Queue -> media type -> today's tally."""
    out: dict[str, dict[str, Tally]] = defaultdict(dict)
    for (queue_id, media), by_media in sums.items():
        out[queue_id][media or "unknown"] = by_media.tally()
    return dict(out)


async def poll_performance(
    client: GenesysClient,
    interval: str,
    queue_ids: Sequence[str],
    agent_ids: Sequence[str],
    agent_metrics: Sequence[str],
) -> tuple[dict[str, Tally], dict[str, dict[str, Tally]]]:
    """Agent and queue tallies for today, the agents' of `agent_metrics` only; all batches must
    succeed (partial agent sums would lie).

    Each response is folded into the sums as it arrives and dropped: a large org's per-user response
    is megabytes of parsed rows, too many to hold until the last one lands.
    """
    by_user, by_queue = new_sums(), new_sums()

    async def query(group_by: Sequence[str], metrics: Sequence[str], batch: Sequence[str], into: Sums) -> None:
        body = aggregate_query(interval, group_by, metrics, batch)
        add_rows(into, await client.post_as(CONVERSATION_AGGREGATES, body, AGGREGATE_RESPONSE), *group_by)

    cut = batches(queue_ids, MAX_QUEUE_PREDICATES)
    calls = [query(["userId"], agent_metrics, b, by_user) for b in cut] + [
        query(["queueId", "mediaType"], QUEUE_QUERY_METRICS, b, by_queue) for b in cut
    ]
    BatchesFailed.raise_for(await asyncio.gather(*calls, return_exceptions=True))
    queues = queue_tallies(by_queue)
    agents: dict[str, Tally] = {}
    for chunk in batches(agent_ids, TALLIES_PER_SLICE):  # all at once would hold the event loop
        agents.update(agent_tallies(by_user, chunk))
        await asyncio.sleep(0)
    return agents, {q: queues.get(q, {}) for q in queue_ids}


async def poll_today(wiring: Wiring) -> None:
    """Today's tallies of the queues and agents in scope, as one part each (partial sums would lie)."""
    snapshot, settings, store = wiring.store.snapshot, wiring.settings, wiring.store
    if not snapshot[QUEUES]:
        return
    start, end = today(settings, wiring.clock.time())
    agents, queues = await poll_performance(
        wiring.client,
        iso_interval(start, end),
        sorted(snapshot[QUEUES]),
        sorted(snapshot[AGENTS]),
        agent_query_metrics(wiring.selection),
    )
    store.put(AGENT_TALLIES, PartKey.polled(0), agents)
    store.put(QUEUE_TALLIES, PartKey.polled(0), with_media_served(queues, store.snapshot))


# ----- on the page ------------------------------------------------------------------------------
Who = Literal["queue", "agent", "both"]


@dataclass(frozen=True, slots=True)
class TallyFamily:
    """One of today's figures on the page: its name after `genesys_queue_`/`genesys_agent_`, whose it
    is, and the aggregate metric it `reads`, so that a query asks only for what is exported. A value
    of None (no AHT with nothing closed, no service level) is left out, never written as 0."""

    suffix: str
    help: str
    pick: Callable[[Tally], float | None]
    who: Who
    reads: str


TALLY_FAMILIES: tuple[TallyFamily, ...] = (
    TallyFamily(
        "offered_interactions", "Interactions offered today (nOffered).", lambda t: t.offered, "queue", "nOffered"
    ),
    TallyFamily(
        "answered_interactions",
        "Interactions answered today (tAnswered count).",
        lambda t: t.answered,
        "queue",
        "tAnswered",
    ),
    TallyFamily(
        "abandoned_interactions",
        "Interactions abandoned today (tAbandon count).",
        lambda t: t.abandoned,
        "queue",
        "tAbandon",
    ),
    TallyFamily(
        "connected_interactions",
        "Conversations connected today (nConnected).",
        lambda t: t.connected,
        "agent",
        "nConnected",
    ),
    TallyFamily(
        "handled_interactions",
        "Closed conversations today: tHandle count (ends after wrap-up).",
        lambda t: t.handled,
        "both",
        "tHandle",
    ),
    TallyFamily(
        "handle_seconds",
        "Handle time of today's closed conversations: tHandle sum.",
        lambda t: t.handle_seconds,
        "both",
        "tHandle",
    ),
    # Per agent only (opt-in): a queue's AHT is its handle seconds over its closed conversations, which
    # every dashboard divides, and a series of its own per queue and media type would cost each
    # Prometheus thousands of head series in a large org for a quotient it can take.
    TallyFamily(
        "average_handle_seconds",
        "average handle time of today's closed conversations; absent when none closed.",
        lambda t: t.average_handle_seconds,
        "agent",
        "tHandle",
    ),
    TallyFamily("talk_interactions", "Talk segments ended today: tTalk count.", lambda t: t.talks, "both", "tTalk"),
    TallyFamily(
        "talk_seconds",
        "Talk time of the talk segments ended today: tTalk sum.",
        lambda t: t.talk_seconds,
        "both",
        "tTalk",
    ),
    TallyFamily("hold_interactions", "Holds ended today: tHeld count.", lambda t: t.holds, "both", "tHeld"),
    TallyFamily(
        "hold_seconds", "Time on hold of the holds ended today: tHeld sum.", lambda t: t.hold_seconds, "both", "tHeld"
    ),
    TallyFamily(
        "after_call_work_interactions",
        "After-call work (wrap-up) ended today: tAcw count.",
        lambda t: t.after_call_works,
        "both",
        "tAcw",
    ),
    TallyFamily(
        "after_call_work_seconds",
        "After-call work (wrap-up) time of those ended today: tAcw sum.",
        lambda t: t.after_call_work_seconds,
        "both",
        "tAcw",
    ),
    TallyFamily(
        "service_level_ratio",
        "share of today's answered interactions within the service level (oServiceLevel).",
        lambda t: t.service_level,
        "queue",
        "oServiceLevel",
    ),
)
QUEUE_TALLY_FAMILIES = tuple(f for f in TALLY_FAMILIES if f.who in ("queue", "both"))
AGENT_TALLY_FAMILIES = tuple(f for f in TALLY_FAMILIES if f.who in ("agent", "both"))
QUEUE_QUERY_METRICS = tuple(dict.fromkeys(f.reads for f in QUEUE_TALLY_FAMILIES))
AGENT_QUERY_METRICS = tuple(dict.fromkeys(f.reads for f in AGENT_TALLY_FAMILIES))  # with every family chosen


def with_zeros(tallies: Mapping[str, Tally], media_types: Iterable[str]) -> dict[str, Tally]:
    """A queue's tallies plus a zero tally for each media type it serves that had nothing today.

    The aggregates API leaves out empty groups; the live observation says which media a queue serves.
    """
    return {media: tallies.get(media, Tally()) for media in {*tallies, *media_types}}


def with_media_served(tallies: Mapping[str, Mapping[str, Tally]], snapshot: Snapshot) -> dict[str, dict[str, Tally]]:
    """Each queue's tallies with a zero for every media type it serves now, read once a poll: the
    tallies' segment then changes with the tallies alone, not with every live observation (a large
    org's tallies are tens of thousands of lines, and its observations change many times a second)."""
    states = snapshot[QUEUE_STATES]
    served = {qid: state.waiting.keys() for qid, state in merged(states, snapshot[QUEUES]).items()}
    return {qid: with_zeros(by_media, served.get(qid, ())) for qid, by_media in tallies.items()}


def render_queue_tallies(snapshot: Snapshot) -> tuple[str, ...]:
    queues = snapshot[QUEUES]
    tallies = [
        (f'{labels(queue_id=qid, queue_name=queues[qid].name)},media_type="{media}"', tally)
        for qid, by_media in sorted(merged(snapshot[QUEUE_TALLIES], queues).items())
        for media, tally in sorted(by_media.items())
    ]
    return tuple(
        family(f"genesys_queue_{f.suffix}", "gauge", f"Per queue and media type: {f.help}", samples(tallies, f.pick))
        for f in QUEUE_TALLY_FAMILIES
    )


def samples(tallies: Iterable[tuple[str, Tally]], pick: Callable[[Tally], float | None]) -> Iterator[tuple[str, float]]:
    return ((block, value) for block, tally in tallies if (value := pick(tally)) is not None)


# The per-agent families an operator may choose. Only what the leaderboard ranks by is on by default:
# AHT is handle time over closed conversations, which a query divides as well, and each of AHT's parts
# would be another series per agent in every Prometheus that scrapes the agents.
AGENT_TALLY_METRICS = tuple(
    Metric(f"genesys_agent_{f.suffix}", default=f.suffix in ("handled_interactions", "handle_seconds"))
    for f in AGENT_TALLY_FAMILIES
)
# What the ranking and the team sums read whatever the operator chose: handled and handle time.
ALWAYS_ASKED = ("tHandle",)


def agent_query_metrics(selection: Selection) -> tuple[str, ...]:
    """The aggregate metrics the per-agent query asks for: those of the chosen families and tHandle.

    The answer by agent is a row per agent and metric, the largest answer of the cycle in a large org
    (megabytes per 100 queues), so a metric no chosen family shows is not asked for at all.
    """
    chosen = {f.reads for f in AGENT_TALLY_FAMILIES if f"genesys_agent_{f.suffix}" in selection.metrics}
    return tuple(m for m in AGENT_QUERY_METRICS if m in chosen or m in ALWAYS_ASKED)


def render_agent_tallies(snapshot: Snapshot, selection: Selection) -> Iterator[Piece]:
    """The chosen tally families of the exported agents, family by family as the page's compressor asks
    for them: made all at once, a large org's families would be its largest transient allocation."""
    rows = exported_agents(snapshot, selection).rows
    tallies = merged(snapshot[AGENT_TALLIES], snapshot[AGENTS])
    for tally_family in AGENT_TALLY_FAMILIES:
        name = f"genesys_agent_{tally_family.suffix}"
        if name in selection.metrics:

            def line(row: Row, pick: Callable[[Tally], float | None] = tally_family.pick) -> str | None:
                tally = tallies.get(row.id)
                return None if tally is None else value_line(row, pick(tally))

            yield from agent_family(name, f"Per agent: {tally_family.help}", rows, line, selection.shards)


PERFORMANCE_POLLER = Poller(
    name="performance",
    cadence=lambda s: s.performance_interval,
    priority=1,  # after the live queue data, before the agents' states and the directories
    refreshes=(AGENT_TALLIES, QUEUE_TALLIES),
)


def _agents_listed(settings: Settings) -> Poller:
    """It tallies the agents in scope: in the users scope, whose listing takes minutes in a large
    org, it goes with the agents found so far; in the members scope it waits for the agent directory,
    a minute at most, by when a start over the whole org has listed the users
    (`exporter.sources.user_listing`) and a queue-by-queue one has found many."""
    return DIRECTORY_POLLER if settings.agent_scope == "users" else AGENT_DIRECTORY_POLLER


AGENTS_WAITED_AT_MOST_SECONDS = 60.0


QUEUE_TALLIES_SOURCE = Source(
    name="queue_tallies",
    keeps=(QUEUE_TALLIES,),
    # Fetched with the agents' (AGENT_TALLIES_SOURCE): one job, listed once, after the state polls.
    show=Show(
        segment="queue_tallies",
        collector="queues",
        reads=(QUEUES, QUEUE_TALLIES),
        render=unsharded(render_queue_tallies),
    ),
)
AGENT_TALLIES_SOURCE = Source(
    name="agent_tallies",
    keeps=(AGENT_TALLIES,),
    polls=(Poll(PERFORMANCE_POLLER, poll_today, after=_agents_listed, wait_at_most=AGENTS_WAITED_AT_MOST_SECONDS),),
    show=agent_segment("agent_tallies", render_agent_tallies, AGENT_TALLIES, metrics=AGENT_TALLY_METRICS),
)
