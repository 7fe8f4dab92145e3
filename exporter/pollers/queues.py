"""Live queue state from `POST /api/v2/analytics/queues/observations/query`, 100 queues a request.

The API answers user metrics (routing statuses, on-queue users, members) in a group keyed by
`queueId` alone, one row per qualifier, and conversation metrics (waiting, interacting, alerting,
longest waiting) in one group per `queueId` + `mediaType`, zero counts included. A queue that the
response does not mention at all gets no state: that is unknown, not zero.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from exporter.clock import Clock
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import QUEUE_OBSERVATIONS
from exporter.genesys.models import MetricRow, ObservationResponse
from exporter.genesys.queries import MAX_QUEUE_PREDICATES, queue_observation_query
from exporter.pollers.batching import BatchesFailed, batches
from exporter.snapshot import QueueState

log = structlog.get_logger(__name__)

EPOCH_MS_THRESHOLD = 1e12  # a value this large is a timestamp (2001 onwards), not a duration in ms


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

    def read(self, media: str | None, row: MetricRow, now: float) -> None:
        """One metric row of a `queueId` + `mediaType` group (media) or of the `queueId` group (None)."""
        if media:
            self._read_media_row(media, row, now)
        else:
            self._read_user_row(row)

    def _read_media_row(self, media: str, row: MetricRow, now: float) -> None:
        counts = {"oWaiting": self.waiting, "oInteracting": self.interacting, "oAlerting": self.alerting}
        if row.metric in counts:
            if row.stats.count is not None:
                counts[row.metric][media] = row.stats.count
        elif row.metric == "oLongestWaiting":
            age = longest_waiting_seconds(row, now)
            if age is None:
                self.oldest_since.pop(media, None)
            else:
                self.oldest_since[media] = now - age

    def _read_user_row(self, row: MetricRow) -> None:
        count = row.stats.count or 0
        if row.metric == "oUserRoutingStatuses" and row.qualifier:
            self.statuses[row.qualifier.lower()] = count
        elif row.metric == "oOnQueueUsers" and row.qualifier:
            self.on_queue[row.qualifier.lower()] = count
        elif row.metric == "oMemberUsers":
            self.members = count
        elif row.metric == "oActiveUsers":
            self.joined = count

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
    """oLongestWaiting is Unconfirmed: read an epoch-ms start time or a duration in ms, whichever it is."""
    if not row.stats.count:
        return None
    value = row.stats.calculated_metric_value
    if value is None:
        value = row.stats.max
    if value is None or value <= 0:
        return None
    return max(0.0, now - value / 1000) if value > EPOCH_MS_THRESHOLD else value / 1000


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
    queue_ids: Iterable[str],
    clock: Clock,
    publish: Callable[[int, Mapping[str, QueueState]], None],
) -> int:
    """Query every batch concurrently; each batch is published as soon as it parses.

    Returns the number of requests sent; raises `BatchesFailed` after all batches ended when any failed.
    """

    async def one(index: int, batch: list[str]) -> None:
        response = await client.post_as(QUEUE_OBSERVATIONS, queue_observation_query(batch), ObservationResponse)
        publish(index, parse_observations(response, clock.time()))

    todo = batches(queue_ids, MAX_QUEUE_PREDICATES)
    outcomes = await asyncio.gather(*(one(i, b) for i, b in enumerate(todo)), return_exceptions=True)
    BatchesFailed.raise_for(outcomes)
    return len(todo)
