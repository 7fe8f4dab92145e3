"""Which sources of `genesys_agent_info`'s labels have ended a pass since the exporter started.

Prometheus tells series apart by their labels: an info line shown while a label is still unknown
(no team yet, half of an agent's queues) and again once it is known is two series, and a start at
tens of thousands of agents would leave as many dead series in the operator's head block for hours.
So the info waits until each label source the settings run has ended its first pass, a failed pass
included: labels then come when they can, rather than an agent never showing.
"""

from __future__ import annotations

from exporter.snapshot import Directory, Snapshot, Store

SETTLED: Directory[bool] = Directory("settled")  # label source name -> True once a pass has ended


def mark_settled(store: Store, source: str) -> None:
    if source not in store.snapshot[SETTLED]:
        store.add(SETTLED, {source: True})


def labels_settled(snapshot: Snapshot, sources: frozenset[str]) -> bool:
    return sources <= snapshot[SETTLED].keys()
