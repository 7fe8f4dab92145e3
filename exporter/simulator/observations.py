"""`POST /api/v2/analytics/queues/observations/query` for the simulated org
(https://developer.genesys.cloud/analyticsdatamanagement/analytics/observation/observation-query).

User metrics come in a group keyed by `queueId` alone, one row per qualifier; conversation metrics
in one group per `queueId` + `mediaType` the queue serves, zero counts included. oLongestWaiting's
meaning is Unconfirmed: by default its `calculatedMetricValue` is the epoch-ms start of the oldest
waiting interaction (what third-party code reads); `duration` style gives its age in ms instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from exporter.simulator.model import ROUTING_STATUSES, SYSTEM_PRESENCES, Conversation, OrgModel
from exporter.simulator.wire import (
    DETAIL_METRICS,
    MAX_PREDICATES,
    OBSERVATION_DIMENSIONS,
    OBSERVATION_METRICS,
    bad_request,
    iso,
)

LongestStyle = Literal["epoch", "duration"]
USER_METRICS = (
    "oUserRoutingStatuses",
    "oOnQueueUsers",
    "oUserPresences",
    "oMemberUsers",
    "oActiveUsers",
    "oOffQueueUsers",
)
CONVERSATION_METRICS = ("oWaiting", "oInteracting", "oAlerting", "oLongestWaiting", "oLongestInteracting")
DETAIL_CAP = 100


def _predicates(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every predicate of filter -> clauses -> predicates, checking types and nesting on the way."""
    flt = body.get("filter")
    if flt is None:
        return []
    if not isinstance(flt, dict) or str(flt.get("type", "")).lower() not in ("and", "or"):
        raise bad_request("filter.type must be 'and' or 'or'")
    found = list(flt.get("predicates") or [])
    for clause in flt.get("clauses") or []:
        if not isinstance(clause, dict) or str(clause.get("type", "")).lower() not in ("and", "or"):
            raise bad_request("clause type must be 'and' or 'or'")
        if "clauses" in clause:
            raise bad_request("clauses cannot be nested")
        found.extend(clause.get("predicates") or [])
    for predicate in found:
        if not isinstance(predicate, dict):
            raise bad_request("a predicate must be an object")
        if predicate.get("dimension") not in OBSERVATION_DIMENSIONS:
            raise bad_request(f"invalid dimension {predicate.get('dimension')!r}; use queueId or mediaType")
        if str(predicate.get("operator", "matches")) not in ("matches", "exists", "notExists"):
            raise bad_request(f"invalid operator {predicate.get('operator')!r}")
    return found


def validate(body: Any) -> tuple[list[str], set[str], list[str], set[str] | None]:
    """(metrics, detail metrics, queue ids, media types or None for all) from a query body."""
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    metrics = body.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise bad_request("metrics is required")
    unknown = [m for m in metrics if m not in OBSERVATION_METRICS]
    if unknown:
        raise bad_request(f"invalid metric {unknown[0]!r}")
    details = body.get("detailMetrics") or []
    if not isinstance(details, list) or any(m not in DETAIL_METRICS for m in details):
        raise bad_request("invalid detailMetrics")
    predicates = _predicates(body)
    queue_ids = [str(p.get("value")) for p in predicates if p.get("dimension") == "queueId" and p.get("value")]
    if len(queue_ids) > MAX_PREDICATES:
        raise bad_request(f"a query takes at most {MAX_PREDICATES} queueId predicates, got {len(queue_ids)}")
    if not queue_ids:
        raise bad_request("a queueId predicate is required")
    media = {str(p.get("value")) for p in predicates if p.get("dimension") == "mediaType" and p.get("value")}
    return metrics, set(details), queue_ids, media or None


def _detail(conversations: Iterable[Conversation], now: float) -> tuple[list[dict[str, Any]], bool]:
    ordered = sorted(conversations, key=lambda c: c.arrived)
    truncated = len(ordered) > DETAIL_CAP
    if truncated:
        ordered = ordered[: DETAIL_CAP // 2] + ordered[-DETAIL_CAP // 2 :]
    rows = []
    for conv in ordered:
        row: dict[str, Any] = {
            "observationDate": iso(conv.arrived),
            "conversationId": conv.id,
            "sessionId": conv.session,
            "direction": "inbound",
            "routingPriority": 0,
        }
        if conv.agent_id:
            row["userId"] = conv.agent_id
        rows.append(row)
    return rows, truncated


def observe(model: OrgModel, body: Any, longest: LongestStyle = "epoch") -> dict[str, Any]:
    metrics, details, queue_ids, media_filter = validate(body)
    now = model.now
    results: list[dict[str, Any]] = []
    for queue_id in dict.fromkeys(queue_ids):
        if queue_id not in model.queues:
            continue
        truth = model.queue_truth(queue_id)
        user_rows: list[dict[str, Any]] = []
        for metric in (m for m in USER_METRICS if m in metrics):
            if metric == "oUserRoutingStatuses":
                user_rows += [
                    {"metric": metric, "qualifier": s, "stats": {"count": truth.statuses.get(s, 0)}}
                    for s in ROUTING_STATUSES
                ]
            elif metric == "oOnQueueUsers":
                user_rows += [
                    {"metric": metric, "qualifier": s, "stats": {"count": n}} for s, n in sorted(truth.on_queue.items())
                ]
            elif metric == "oUserPresences":
                user_rows += [
                    {"metric": metric, "qualifier": model.presence_ids[p], "stats": {"count": n}}
                    for p, n in sorted(truth.presences.items())
                ]
            else:
                count = {
                    "oMemberUsers": truth.members,
                    "oActiveUsers": truth.joined,
                    "oOffQueueUsers": truth.off_queue,
                }[metric]
                user_rows.append({"metric": metric, "stats": {"count": count}})
        if user_rows:
            results.append({"group": {"queueId": queue_id}, "data": user_rows})
        for media in model.queues[queue_id].media:
            if media_filter is not None and media not in media_filter:
                continue
            rows: list[dict[str, Any]] = []
            for metric in (m for m in CONVERSATION_METRICS if m in metrics):
                if metric in ("oLongestWaiting", "oLongestInteracting"):
                    rows.append({"metric": metric, "stats": _longest(model, queue_id, media, metric, now, longest)})
                    continue
                count = {"oWaiting": truth.waiting, "oInteracting": truth.interacting, "oAlerting": truth.alerting}[
                    metric
                ][media]
                row: dict[str, Any] = {"metric": metric, "stats": {"count": count}}
                if metric in details:
                    convs = (
                        model.waiting_conversations(queue_id, media)
                        if metric == "oWaiting"
                        else model.active_conversations(
                            queue_id, media, "interacting" if metric == "oInteracting" else "alerting"
                        )
                    )
                    row["observations"], row["truncated"] = _detail(convs, now)
                rows.append(row)
            if rows:
                results.append({"group": {"queueId": queue_id, "mediaType": media}, "data": rows})
    mappings = {p: [model.presence_ids[p]] for p in SYSTEM_PRESENCES}
    return {"systemToOrganizationMappings": mappings, "results": results}


def _longest(
    model: OrgModel, queue_id: str, media: str, metric: str, now: float, style: LongestStyle
) -> dict[str, int]:
    if metric == "oLongestWaiting":
        starts = [c.arrived for c in model.waiting_conversations(queue_id, media)]
    else:
        starts = [c.answered or c.arrived for c in model.active_conversations(queue_id, media, "interacting")]
    if not starts:
        return {"count": 0}
    oldest = min(starts)
    value = round(oldest * 1000) if style == "epoch" else round((now - oldest) * 1000)
    return {"count": 1, "calculatedMetricValue": value}
