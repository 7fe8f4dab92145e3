"""`POST /api/v2/analytics/conversations/aggregates/query` for the simulated org
(https://developer.genesys.cloud/analyticsdatamanagement/analytics/aggregate/conversation-query).

Answers from the model's ledger, in which n-metrics were written when they happened and t-metrics
when the measured thing ended (tHandle at the end of wrap-up), so a call in progress is in no
bucket yet. Empty groups and metric rows are left out; times are in milliseconds.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from exporter.simulator.model import LedgerEntry, OrgModel
from exporter.simulator.wire import AGGREGATE_DIMENSIONS, AGGREGATE_METRICS, MAX_PREDICATES, bad_request, iso, parse_iso

SERVICE_LEVEL_TARGET = 0.8
_PERIOD = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?")


def _interval(text: Any) -> tuple[float, float]:
    try:
        start, end = (parse_iso(part) for part in str(text).split("/"))
    except ValueError:
        raise bad_request(f"invalid interval {text!r}") from None
    if end <= start:
        raise bad_request("interval end must be after its start")
    return start, end


def _granularity(text: Any, span: float) -> float:
    if text is None:
        return span
    match = _PERIOD.fullmatch(str(text))
    if not match or not any(match.groups()):
        raise bad_request(f"invalid granularity {text!r}")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return float(days * 86400 + hours * 3600 + minutes * 60)


def _filters(body: dict[str, Any]) -> dict[str, set[str]]:
    flt = body.get("filter")
    if flt is None:
        return {}
    if not isinstance(flt, dict) or str(flt.get("type", "")).lower() not in ("and", "or"):
        raise bad_request("filter.type must be 'and' or 'or'")
    predicates = list(flt.get("predicates") or [])
    for clause in flt.get("clauses") or []:
        predicates.extend(clause.get("predicates") or [])
    if len(predicates) > MAX_PREDICATES:
        raise bad_request(f"at most {MAX_PREDICATES} predicates a query")
    wanted: dict[str, set[str]] = defaultdict(set)
    for predicate in predicates:
        dimension = predicate.get("dimension")
        if dimension not in AGGREGATE_DIMENSIONS:
            raise bad_request(f"unsupported dimension {dimension!r}")
        wanted[dimension].add(str(predicate.get("value")))
    return wanted


def _stats(entries: list[LedgerEntry], metric: str) -> dict[str, Any] | None:
    if metric == "oServiceLevel":
        hits = sum(1 for e in entries if e.metric == "oServiceLevelHit")
        total = hits + sum(1 for e in entries if e.metric == "oServiceLevelMiss")
        if not total:
            return None
        return {"ratio": hits / total, "numerator": hits, "denominator": total, "target": SERVICE_LEVEL_TARGET}
    values = [e.value_ms for e in entries if e.metric == metric]
    if not values:
        return None
    if metric.startswith("n"):
        return {"count": len(values)}
    times = [round(v or 0.0) for v in values]
    return {"max": max(times), "min": min(times), "count": len(times), "sum": sum(times)}


def aggregate(model: OrgModel, body: Any, processed_until: float = float("inf")) -> dict[str, Any]:
    """The answer to one query, counting only what the analytics pipeline has processed: the entries
    written before `processed_until`."""
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    start, end = _interval(body.get("interval"))
    step = _granularity(body.get("granularity"), end - start)
    group_by = body.get("groupBy") or []
    if not isinstance(group_by, list) or any(d not in AGGREGATE_DIMENSIONS for d in group_by):
        raise bad_request(f"unsupported groupBy {group_by!r}")
    metrics = body.get("metrics")
    if not isinstance(metrics, list) or not metrics or any(m not in AGGREGATE_METRICS for m in metrics):
        raise bad_request("metrics must list known conversation metrics")
    wanted = _filters(body)
    groups: dict[tuple[str, ...], dict[int, list[LedgerEntry]]] = defaultdict(lambda: defaultdict(list))
    for entry in model.ledger_between(start, min(end, processed_until), wanted):
        values = {"queueId": entry.queue_id, "mediaType": entry.media, "userId": entry.user_id}
        if any(values[d] not in allowed for d, allowed in wanted.items()):
            continue
        if "userId" in group_by and entry.user_id is None:
            continue
        key = tuple(str(values[d]) for d in group_by)
        groups[key][int((entry.at - start) // step)].append(entry)
    results = []
    for key, buckets in sorted(groups.items()):
        data = []
        for index, entries in sorted(buckets.items()):
            rows = [{"metric": m, "stats": s} for m in metrics if (s := _stats(entries, m)) is not None]
            if rows:
                bucket_start = start + index * step
                data.append({"interval": f"{iso(bucket_start)}/{iso(min(end, bucket_start + step))}", "metrics": rows})
        if data:
            results.append({"group": dict(zip(group_by, key, strict=True)), "data": data})
    return {"results": results}
