"""`POST /api/v2/analytics/conversations/aggregates/query` for the simulated org
(https://developer.genesys.cloud/analyticsdatamanagement/analytics/aggregate/conversation-query).

Answers from the model's ledger, in which n-metrics were written when they happened and t-metrics
when the measured thing ended (tHandle at the end of wrap-up), so a call in progress is in no
bucket yet. Empty groups and metric rows are left out; times are in milliseconds.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from exporter.simulator.ledger import Ledger, Summary
from exporter.simulator.model import OrgModel
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


# What an entry of the ledger counts towards: oServiceLevel is made of hits and misses.
_READS = {"oServiceLevel": ("oServiceLevelHit", "oServiceLevelMiss")}
_FIELD = {"queueId": "queue_id", "mediaType": "media", "userId": "user_id"}  # dimension -> LedgerEntry field

Groups = dict[tuple[str, ...], dict[int, dict[str, Summary]]]  # group -> bucket -> metric -> summary


def _stats(metric: str, summary: Summary) -> dict[str, Any]:
    if metric == "oServiceLevel":
        hits, total = summary.hits, summary.count
        return {"ratio": hits / total, "numerator": hits, "denominator": total, "target": SERVICE_LEVEL_TARGET}
    if metric.startswith("n"):
        return {"count": summary.count}
    return {"max": summary.high, "min": summary.low, "count": summary.count, "sum": summary.total}


@dataclass(frozen=True, slots=True)
class _Query:
    start: float
    end: float  # the interval's end, or what the pipeline has processed if sooner
    step: float
    group_by: list[str]
    metric_of: dict[str, str]  # what the ledger records -> the metric asked for
    wanted: dict[str, set[str]]
    indexed: str | None  # the queues or users named, whose runs the answer reads

    def buckets(self) -> Iterator[tuple[int, float, float]]:
        index = 0
        while (begin := self.start + index * self.step) < self.end:
            yield index, begin, min(self.end, begin + self.step)
            index += 1


def _summed(ledger: Ledger, query: _Query, indexed: str) -> Groups:
    """Each run's summary per bucket, when a group is made of whole runs: grouped and filtered by
    the named queues (or users) and media type only."""
    groups: Groups = defaultdict(lambda: defaultdict(dict))
    media_wanted = query.wanted.get("mediaType")
    for item in query.wanted[indexed]:
        for read, metric in query.metric_of.items():
            for media, run in ledger.runs(indexed, item, read).items():
                if media_wanted is not None and media not in media_wanted:
                    continue
                key = tuple(item if d == indexed else media for d in query.group_by)
                for index, begin, end in query.buckets():
                    if (summary := run.summary(begin, end)) is not None:
                        cells = groups[key][index]
                        if metric in cells:
                            cells[metric].merge(summary)
                        else:
                            cells[metric] = summary
    return groups


def _added(ledger: Ledger, query: _Query) -> Groups:
    """Entry by entry: any other grouping (by user of some queues, the largest answer there is)."""
    groups: Groups = defaultdict(lambda: defaultdict(dict))
    checks = [(_FIELD[d], allowed) for d, allowed in query.wanted.items() if d != query.indexed]
    fields = [_FIELD[d] for d in query.group_by]
    userless = "userId" in query.group_by  # entries without a user (offers, abandons) belong to no user's group
    among = (query.indexed, query.wanted[query.indexed]) if query.indexed else None
    for entry in ledger.between(query.start, query.end, query.metric_of.keys(), among):
        if checks and not all(getattr(entry, field) in allowed for field, allowed in checks):
            continue
        if userless and entry.user_id is None:
            continue
        key = tuple([getattr(entry, field) for field in fields])
        cells = groups[key][int((entry.at - query.start) // query.step)]
        metric = query.metric_of[entry.metric]
        cell = cells.get(metric)
        if cell is None:
            cell = cells[metric] = Summary()
        cell.add(entry)
    return groups


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
    indexed = next((d for d in ("queueId", "userId") if d in wanted), None)
    query = _Query(
        start=start,
        end=min(end, processed_until),
        step=step,
        group_by=group_by,
        metric_of={read: m for m in metrics for read in _READS.get(m, (m,))},
        wanted=dict(wanted),
        indexed=indexed,
    )
    if indexed is not None and {*group_by, *wanted} <= {indexed, "mediaType"}:  # each group whole runs
        groups = _summed(model.ledger, query, indexed)
    else:
        groups = _added(model.ledger, query)
    intervals: dict[int, str] = {}
    results = []
    for key, buckets in sorted(groups.items()):
        data = []
        for index, cells in sorted(buckets.items()):
            if index not in intervals:
                bucket_start = start + index * step
                intervals[index] = f"{iso(bucket_start)}/{iso(min(end, bucket_start + step))}"
            rows = [{"metric": m, "stats": _stats(m, cells[m])} for m in metrics if m in cells]
            data.append({"interval": intervals[index], "metrics": rows})
        results.append({"group": dict(zip(group_by, key, strict=True)), "data": data})
    return {"results": results}
