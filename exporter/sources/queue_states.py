"""Live queue state from `POST /api/v2/analytics/queues/observations/query`, 100 queues a request.

The API answers user metrics (routing statuses, on-queue users, members) in a group keyed by
`queueId` alone, one row per qualifier, and conversation metrics (waiting, interacting, alerting,
longest waiting) in one group per `queueId` + `mediaType`, zero counts included
(https://developer.genesys.cloud/analyticsdatamanagement/analytics/observation/observation-query).
A queue that the response does not mention at all gets no state: that is unknown, not zero. With
push on, the queues a live channel keeps current are left to it (`exporter.push`).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from exporter.clock import Clock
from exporter.exposition import family_header, headed, labels, sample_lines
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import QUEUE_OBSERVATIONS
from exporter.genesys.models import MetricRow, ObservationResponse
from exporter.genesys.queries import MAX_QUEUE_PREDICATES, queue_observation_query
from exporter.gzip_segments import Runs, compress
from exporter.snapshot import Measurement, Snapshot, merged
from exporter.sources.batches import BatchesFailed, batches
from exporter.sources.queue_directory import DIRECTORY_POLLER, QUEUES, Queue
from exporter.sources.source import Poll, Poller, Selection, Show, Source, Tagged, Wiring, unsharded

ROUTING_STATUSES = ("idle", "interacting", "communicating", "not_responding", "off_queue")


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


QUEUE_STATES: Measurement[QueueState] = Measurement("queue_states")

EPOCH_MS_THRESHOLD = 1e12  # a value this large is a timestamp (2001 onwards), not a duration in ms
CLOCK_SKEW_SECONDS = 60.0  # a start time this far in our future is the service's clock, read as 0
MAX_WAIT_SECONDS = 86_400.0
# Values of Unconfirmed form that no reading made sense of, by metric, in this process (a
# self-metric): the real service differs from what the exporter expects.
IMPLAUSIBLE: Counter[str] = Counter()


@dataclass(slots=True)
class QueueDraft:
    """A queue's state while rows are read into it, frozen into `QueueState` when wanted.

    A poll reads a whole answer into a fresh draft; push keeps one draft per queue and reads each
    notification into it, so a notification that carries only some metrics changes only those
    (the rest keep their last value: merged, never dropped). The oldest wait is kept as the epoch
    time it began where the API gave one, so its age is right whenever the draft is frozen.
    """

    waiting: dict[str, int] = field(default_factory=dict)
    interacting: dict[str, int] = field(default_factory=dict)
    alerting: dict[str, int] = field(default_factory=dict)
    oldest_since: dict[str, float] = field(default_factory=dict)  # media -> epoch seconds the oldest wait began
    on_queue: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    members: int = 0
    joined: int = 0

    @classmethod
    def of(cls, state: QueueState, now: float) -> QueueDraft:
        """A draft holding a state already frozen (a poll's), to read notifications into."""
        return cls(
            waiting=dict(state.waiting),
            interacting=dict(state.interacting),
            alerting=dict(state.alerting),
            oldest_since={m: now - age for m, age in state.oldest_waiting_seconds.items()},
            on_queue={"idle": state.available_agents},
            statuses=dict(state.agents_by_status),
            members=state.member_agents,
            joined=state.joined_agents,
        )

    def read(self, media: str | None, row: MetricRow, now: float) -> bool:
        """One metric row of a `queueId` + `mediaType` group (media) or of the `queueId` group (None);
        returns whether the row was one the exporter reads."""
        return self._read_media_row(media, row, now) if media else self._read_user_row(row)

    def _read_media_row(self, media: str, row: MetricRow, now: float) -> bool:
        counts = {"oWaiting": self.waiting, "oInteracting": self.interacting, "oAlerting": self.alerting}
        if row.metric in counts:
            if row.stats.count is None:
                return False
            counts[row.metric][media] = row.stats.count
        elif row.metric == "oLongestWaiting":
            age = longest_waiting_seconds(row, now)
            if age is None:
                self.oldest_since.pop(media, None)
            else:
                self.oldest_since[media] = now - age
        else:
            return False
        return True

    def _read_user_row(self, row: MetricRow) -> bool:
        count = row.stats.count or 0
        if row.metric == "oUserRoutingStatuses" and row.qualifier:
            self.statuses[row.qualifier.lower()] = count
        elif row.metric == "oOnQueueUsers" and row.qualifier:
            self.on_queue[row.qualifier.lower()] = count
        elif row.metric == "oMemberUsers":
            self.members = count
        elif row.metric == "oActiveUsers":
            self.joined = count
        else:
            return False
        return True

    def freeze(self, now: float) -> QueueState:
        return QueueState(
            waiting=dict(self.waiting),
            interacting=dict(self.interacting),
            alerting=dict(self.alerting),
            oldest_waiting_seconds={
                m: max(0.0, now - since) for m, since in self.oldest_since.items() if self.waiting.get(m, 1) > 0
            },
            available_agents=self.on_queue.get("idle", 0),
            agents_by_status=dict(self.statuses),
            member_agents=self.members,
            joined_agents=self.joined,
        )


def longest_waiting_seconds(row: MetricRow, now: float) -> float | None:
    """oLongestWaiting is Unconfirmed: an epoch-ms start time or a duration in ms. Both readings are
    tried and the plausible one kept: a wait can be neither negative (beyond `CLOCK_SKEW_SECONDS`)
    nor longer than a day. A value neither reading makes sense of is counted (`IMPLAUSIBLE`) and
    left out: no oldest wait is better than a wrong one."""
    if not row.stats.count:
        return None
    value = row.stats.calculated_metric_value
    if value is None:
        value = row.stats.max
    if value is None or value <= 0:
        return None
    readings = (now - value / 1000, value / 1000) if value > EPOCH_MS_THRESHOLD else (value / 1000,)
    for seconds in readings:
        if -CLOCK_SKEW_SECONDS <= seconds <= MAX_WAIT_SECONDS:
            return max(0.0, seconds)
    IMPLAUSIBLE["oLongestWaiting"] += 1
    return None


def parse_observations(response: ObservationResponse, now: float) -> dict[str, QueueState]:
    """Pure: one observation response in, a state per queue it mentions out.

    `now` is wall-clock epoch seconds, to age oLongestWaiting timestamps.
    """
    drafts: dict[str, QueueDraft] = defaultdict(QueueDraft)
    for result in response.results:
        queue_id = result.group.get("queueId")
        if not queue_id:
            continue
        draft = drafts[queue_id]
        media = result.group.get("mediaType")
        for row in result.data:
            draft.read(media, row, now)
    return {qid: d.freeze(now) for qid, d in drafts.items()}


async def poll_queues(
    client: GenesysClient,
    clock: Clock,
    queue_ids: Iterable[str],
    publish: Callable[[int, Mapping[str, QueueState]], None],
) -> None:
    """Query every batch concurrently; each batch is published as soon as it parses; raise
    `BatchesFailed` after all batches ended when any failed."""

    async def one(index: int, batch: list[str]) -> None:
        response = await client.post_as(QUEUE_OBSERVATIONS, queue_observation_query(batch), ObservationResponse)
        publish(index, parse_observations(response, clock.time()))

    todo = batches(queue_ids, MAX_QUEUE_PREDICATES)
    outcomes = await asyncio.gather(*(one(i, b) for i, b in enumerate(todo)), return_exceptions=True)
    BatchesFailed.raise_for(outcomes)


async def poll_queue_states(wiring: Wiring) -> None:
    """The queues in scope that push does not keep current, every batch at once."""
    queue_ids = wiring.polled("queues", wiring.store.snapshot[QUEUES])
    if queue_ids:
        await poll_queues(wiring.client, wiring.clock, queue_ids, wiring.store.publisher(QUEUE_STATES))


Rows = list[tuple[str, QueueState]]  # each queue's label block and state, in page order
Samples = Callable[[Rows], Iterable[tuple[str, float]]]


def _per_media(pick: Callable[[QueueState], Mapping[str, float]]) -> Samples:
    return lambda rows: ((f'{b},media_type="{m}"', v) for b, s in rows for m, v in sorted(pick(s).items()))


def _per_queue(pick: Callable[[QueueState], float]) -> Samples:
    return lambda rows: ((b, pick(s)) for b, s in rows)


def _by_status(state: QueueState) -> Iterator[tuple[str, int]]:
    """Every known routing status (0 when none), then any status the API has and we do not know yet."""
    known = {status: state.agents_by_status.get(status, 0) for status in ROUTING_STATUSES}
    yield from known.items()
    yield from sorted((s, n) for s, n in state.agents_by_status.items() if s not in known)


# The live queue families: (name, help, samples from the queues' rows). All gauges.
QUEUE_STATE_FAMILIES: tuple[tuple[str, str, Samples], ...] = (
    (
        "genesys_queue_waiting_interactions",
        "Interactions waiting in the queue now (oWaiting observation).",
        _per_media(lambda s: s.waiting),
    ),
    (
        "genesys_queue_interacting_interactions",
        "Interactions connected to an agent now (oInteracting observation).",
        _per_media(lambda s: s.interacting),
    ),
    (
        "genesys_queue_alerting_interactions",
        "Interactions ringing an agent now (oAlerting observation).",
        _per_media(lambda s: s.alerting),
    ),
    (
        "genesys_queue_oldest_waiting_seconds",
        "Age of the oldest waiting interaction when polled (oLongestWaiting observation).",
        _per_media(lambda s: s.oldest_waiting_seconds),
    ),
    (
        "genesys_queue_available_agents",
        "Agents on queue and idle (oOnQueueUsers observation, qualifier IDLE).",
        _per_queue(lambda s: s.available_agents),
    ),
    (
        "genesys_queue_agents",
        "Joined queue members by routing status (oUserRoutingStatuses observation).",
        lambda rows: ((f'{b},routing_status="{status}"', n) for b, s in rows for status, n in _by_status(s)),
    ),
    (
        "genesys_queue_member_agents",
        "Agents who are members of the queue (oMemberUsers observation).",
        _per_queue(lambda s: s.member_agents),
    ),
    (
        "genesys_queue_joined_agents",
        "Queue members who have joined the queue (oActiveUsers observation).",
        _per_queue(lambda s: s.joined_agents),
    ),
)


QUEUES_PER_RUN = 100  # queues compressed together: a queue that moved recompresses its run, not every queue


def render_queue_states(snapshot: Snapshot) -> tuple[str, ...]:
    per_queue = [_lines(qid, queue, state) for qid, queue, state in _rows(snapshot)]
    return tuple(
        headed(name, "gauge", help_text, "".join(lines[i] for lines in per_queue))
        for i, (name, help_text, _) in enumerate(QUEUE_STATE_FAMILIES)
    )


class QueueSegment:
    """Builds the live queue segment from what the last build left: each queue's lines while its queue
    and state are equal, each family's lines of a queue while they read the same (a status change
    moves one family of a queue, not eight), and each run of queues compressed while its lines are
    the same objects. Push lands its queues a group at a time, every state in a group frozen afresh
    while only some of them moved, and the segment is rebuilt after each landing. Gives
    `render_queue_states`'s text. One thread at a time."""

    def __init__(self) -> None:
        self._lines: dict[str, tuple[Queue, QueueState, tuple[str, ...]]] = {}
        self.runs = Runs()  # keyed by (family, first queue)

    def __call__(self, snapshot: Snapshot, _selection: Selection) -> tuple[Tagged, ...]:
        kept: dict[str, tuple[Queue, QueueState, tuple[str, ...]]] = {}
        for qid, queue, state in _rows(snapshot):
            old = self._lines.get(qid)
            if old is None:
                kept[qid] = (queue, state, _lines(qid, queue, state))
            elif old[0] == queue and old[1] == state:
                kept[qid] = old
            else:  # a family's lines that read the same stay the same object: its runs need no new compression
                lines = _lines(qid, queue, state)
                kept[qid] = (queue, state, tuple(a if a == b else b for a, b in zip(old[2], lines, strict=True)))
        self._lines = kept
        per_queue = [lines for _, _, lines in kept.values()]
        out: list[Tagged] = []
        for i, (name, help_text, _) in enumerate(QUEUE_STATE_FAMILIES):
            pieces = [lines[i] for lines in per_queue]
            if any(pieces):
                out.append((None, compress([family_header(name, "gauge", help_text)])))
                out.extend((None, run) for run in self.runs.chunked((i,), pieces, QUEUES_PER_RUN))
        self.runs.forget_unused()
        return tuple(out)


def _rows(snapshot: Snapshot) -> Iterator[tuple[str, Queue, QueueState]]:
    """Each queue with a state, in page order."""
    queues = snapshot[QUEUES]
    return ((qid, queues[qid], state) for qid, state in sorted(merged(snapshot[QUEUE_STATES], queues).items()))


def _lines(qid: str, queue: Queue, state: QueueState) -> tuple[str, ...]:
    """The queue's lines of each family of `QUEUE_STATE_FAMILIES`."""
    rows = [(labels(queue_id=qid, queue_name=queue.name), state)]
    return tuple(sample_lines(name, samples(rows)) for name, _, samples in QUEUE_STATE_FAMILIES)


QUEUES_POLLER = Poller(
    name="queues",
    cadence=lambda s: s.queue_interval,
    priority=0,  # the wallboard's and the no-agent alert's data: served before any other job
    refreshes=(QUEUE_STATES,),
)
SOURCE = Source(
    name="queue_states",
    keeps=(QUEUE_STATES,),
    polls=(Poll(QUEUES_POLLER, poll_queue_states, after=DIRECTORY_POLLER),),
    show=Show(
        segment="queue_states",
        collector="queues",
        reads=(QUEUES, QUEUE_STATES),
        render=unsharded(render_queue_states),
        compressor=QueueSegment,
    ),
)
