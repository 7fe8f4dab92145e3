"""The request bodies the exporter sends, built in one place so contract tests can check each one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_QUEUE_PREDICATES = 100  # Unconfirmed upper bound; the sibling user query documents 100 (brief §2.1)

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


def queue_observation_query(queue_ids: Sequence[str]) -> dict[str, Any]:
    """One observation request for at most `MAX_QUEUE_PREDICATES` queues."""
    if not 0 < len(queue_ids) <= MAX_QUEUE_PREDICATES:
        raise ValueError(f"a queue observation query takes 1 to {MAX_QUEUE_PREDICATES} queues, got {len(queue_ids)}")
    return {
        "filter": {
            "type": "or",
            "predicates": [{"type": "dimension", "dimension": "queueId", "value": qid} for qid in queue_ids],
        },
        "metrics": list(QUEUE_OBSERVATION_METRICS),
    }
