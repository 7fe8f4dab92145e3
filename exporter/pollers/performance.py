"""Today's figures per agent and per queue from `POST /api/v2/analytics/conversations/aggregates/query`.

"Today" runs from the day start (local midnight by default, or a shift start) in the org's time
zone to the same time the next day, computed with zoneinfo so DST days are 23 or 25 hours long.
AHT is tHandle.sum / tHandle.count: Genesys writes tHandle only when an agent's handling (talk,
hold, wrap-up) ends, so a call in progress never inflates it, and with no closed conversation there
is no average at all. The API leaves out empty groups and metric rows: a known agent or queue with
no row had nothing today, which is a true zero for counts and no sample for averages.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import CONVERSATION_AGGREGATES
from exporter.genesys.models import AGGREGATE_RESPONSE, AggregateResponse, AggregateRow
from exporter.pollers.batching import BatchesFailed, batches
from exporter.snapshot import Tally

TALLIES_PER_SLICE = 5_000  # agents turned into tallies between two yields to the event loop
MAX_FILTER_PREDICATES = 100  # Unconfirmed for aggregates; the documented user-query limit, to be safe

AGENT_METRICS = ("nConnected", "tHandle", "tTalk", "tHeld", "tAcw")
QUEUE_METRICS = (
    "nOffered",
    "nConnected",
    "tAnswered",
    "tAbandon",
    "tHandle",
    "tTalk",
    "tHeld",
    "tAcw",
    "nTransferred",
    "oServiceLevel",
)


def day_window(now: float, zone: ZoneInfo, day_start: time = time(0)) -> tuple[datetime, datetime]:
    """The current day in `zone` as UTC instants: [latest day start <= now, the next day start)."""
    local = datetime.fromtimestamp(now, zone)
    start = datetime.combine(local.date(), day_start, zone)
    if start > local:
        start = datetime.combine(local.date() - timedelta(days=1), day_start, zone)
    end = datetime.combine(start.date() + timedelta(days=1), day_start, zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def iso_interval(start: datetime, end: datetime) -> str:
    def fmt(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    return f"{fmt(start)}/{fmt(end)}"


def aggregate_query(
    interval: str, group_by: Sequence[str], metrics: Sequence[str], queue_ids: Sequence[str] | None
) -> dict[str, Any]:
    """One aggregate query over `interval`, one bucket, optionally limited to some queues."""
    body: dict[str, Any] = {"interval": interval, "groupBy": list(group_by), "metrics": list(metrics)}
    if queue_ids:
        if len(queue_ids) > MAX_FILTER_PREDICATES:
            raise ValueError(f"at most {MAX_FILTER_PREDICATES} queue predicates a query, got {len(queue_ids)}")
        body["filter"] = {
            "type": "or",
            "predicates": [
                {"type": "dimension", "dimension": "queueId", "operator": "matches", "value": q} for q in queue_ids
            ],
        }
    return body


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
            offered=self.counts["nOffered"],
            answered=self.counts["tAnswered"],
            abandoned=self.counts["tAbandon"],
            service_level=ratio,
        )


Sums = dict[tuple[str, ...], _Sums]


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


def _sums_by(responses: Iterable[AggregateResponse], *dimensions: str) -> Sums:
    out: Sums = defaultdict(_Sums.empty)
    for response in responses:
        add_rows(out, response, *dimensions)
    return out


def agent_tallies(sums: Sums, agent_ids: Iterable[str]) -> dict[str, Tally]:
    """Every known agent, zero when the API had no row for them."""
    return {uid: sums[(uid,)].tally() if (uid,) in sums else Tally() for uid in agent_ids}


def queue_tallies(sums: Sums) -> dict[str, dict[str, Tally]]:
    """Queue -> media type -> today's tally."""
    out: dict[str, dict[str, Tally]] = defaultdict(dict)
    for (queue_id, media), by_media in sums.items():
        out[queue_id][media or "unknown"] = by_media.tally()
    return dict(out)


def parse_agent_tallies(responses: Iterable[AggregateResponse], agent_ids: Iterable[str]) -> dict[str, Tally]:
    """Pure: per-user aggregate responses in; every known agent out, zero when the API had no row."""
    return agent_tallies(_sums_by(responses, "userId"), agent_ids)


def parse_queue_tallies(responses: Iterable[AggregateResponse]) -> dict[str, dict[str, Tally]]:
    """Pure: per queue+media aggregate responses in; queue -> media type -> today's tally out."""
    return queue_tallies(_sums_by(responses, "queueId", "mediaType"))


async def poll_performance(
    client: GenesysClient,
    interval: str,
    queue_ids: Sequence[str],
    agent_ids: Sequence[str],
) -> tuple[dict[str, Tally], dict[str, dict[str, Tally]]]:
    """Agent and queue tallies for today; all batches must succeed (partial agent sums would lie).

    Each response is folded into the sums as it arrives and dropped: at 50,000 agents a per-user
    response is megabytes of parsed rows, and twenty of them held until the last one lands cost
    hundreds of MB.
    """
    by_user: Sums = defaultdict(_Sums.empty)
    by_queue: Sums = defaultdict(_Sums.empty)

    async def query(group_by: Sequence[str], metrics: Sequence[str], batch: Sequence[str], into: Sums) -> None:
        body = aggregate_query(interval, group_by, metrics, batch)
        add_rows(into, await client.post_as(CONVERSATION_AGGREGATES, body, AGGREGATE_RESPONSE), *group_by)

    cut = batches(queue_ids, MAX_FILTER_PREDICATES)
    calls = [query(["userId"], AGENT_METRICS, b, by_user) for b in cut] + [
        query(["queueId", "mediaType"], QUEUE_METRICS, b, by_queue) for b in cut
    ]
    BatchesFailed.raise_for(await asyncio.gather(*calls, return_exceptions=True))
    queues = queue_tallies(by_queue)
    agents: dict[str, Tally] = {}
    for chunk in batches(agent_ids, TALLIES_PER_SLICE):  # 50,000 tallies in one go stall the loop ~130 ms
        agents.update(agent_tallies(by_user, chunk))
        await asyncio.sleep(0)
    return agents, {q: queues.get(q, {}) for q in queue_ids}
