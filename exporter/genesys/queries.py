"""The analytics query bodies the exporter sends, built in one place so the contract tests can check each one
against the official SDK's query models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Unconfirmed upper bound for both queries: the sibling user query documents 100 predicates
# (https://developer.genesys.cloud/analyticsdatamanagement/analytics/aggregate/user-query).
MAX_QUEUE_PREDICATES = 100

QUEUE_OBSERVATION_METRICS = (
    "oWaiting",
    "oInteracting",
    "oAlerting",
    "oLongestWaiting",
    "oOnQueueUsers",
    "oUserRoutingStatuses",
    "oMemberUsers",
    "oActiveUsers",
)


def _queue_predicates(queue_ids: Sequence[str], operator: bool) -> list[dict[str, str]]:
    if not 0 < len(queue_ids) <= MAX_QUEUE_PREDICATES:
        raise ValueError(
            f"a query takes at most {MAX_QUEUE_PREDICATES} queue predicates, and one at least: got {len(queue_ids)}"
        )
    extra = {"operator": "matches"} if operator else {}
    return [{"type": "dimension", "dimension": "queueId", **extra, "value": qid} for qid in queue_ids]


def queue_observation_query(queue_ids: Sequence[str]) -> dict[str, Any]:
    """One observation request for at most `MAX_QUEUE_PREDICATES` queues."""
    return {
        "filter": {"type": "or", "predicates": _queue_predicates(queue_ids, operator=False)},
        "metrics": list(QUEUE_OBSERVATION_METRICS),
    }


def aggregate_query(
    interval: str, group_by: Sequence[str], metrics: Sequence[str], queue_ids: Sequence[str] | None
) -> dict[str, Any]:
    """One conversation aggregate query over `interval`, one bucket, optionally limited to some queues."""
    body: dict[str, Any] = {"interval": interval, "groupBy": list(group_by), "metrics": list(metrics)}
    if queue_ids:
        body["filter"] = {"type": "or", "predicates": _queue_predicates(queue_ids, operator=True)}
    return body
