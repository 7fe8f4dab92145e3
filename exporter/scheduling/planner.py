"""Fits every job's cadence into one request budget, stretching the least important first.

A job wants `cost` requests every `interval` seconds: a demand of cost/interval requests a second.
When the demands add up to more than the budget, something must give, and what gives is the
cadence, never the budget: the planner hands out requests/second in priority order (queues
first, then a job held to a multiple of its floor, such as the agents' polls), after setting aside a
small share for every job so that none waits forever. A job that
gets less than it asks for runs on a longer effective interval, cost/share: the floor the budget
physically allows it. The plan also gives the budget's fair queue its weights (the share of a
stretched job, a burst rate for one the budget can feed), so a job's requests really get the rate
its cadence was planned on.

Pure arithmetic, no I/O: the scheduler calls it after every cycle with the costs it just learned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from exporter.scheduling.budget import URGENT_PRIORITY

MIN_SHARE = 0.05  # of the budget, set aside for each job before the important ones take the rest
BURST_FRACTION = 0.25  # a job the budget can feed should finish its cycle within this part of its cadence


@dataclass(frozen=True, slots=True)
class Demand:
    name: str
    interval: float  # the configured cadence, seconds
    cost: float  # requests one cycle sends (learned from the last cycle)
    priority: int  # 0 is the most important; the highest number stretches first
    # At most this many times its floor (its cost over what the urgent jobs leave of the budget), ahead
    # of every job but the urgent ones: None for a job that simply takes its turn by priority.
    within_floor: float | None = None

    @property
    def rate(self) -> float:
        return self.cost / self.interval


@dataclass(frozen=True, slots=True)
class CadencePlan:
    intervals: dict[str, float]  # effective cadence per job, never below the configured one
    shares: dict[str, float]  # requests/second each job can count on
    per_second: float = 0.0  # the whole budget
    weights: dict[str, float] = field(default_factory=dict)  # for the budget's fair queue

    def floor(self, name: str, cost: float) -> float:
        """The shortest cycle the budget physically allows the job: its requests over the rate others leave it."""
        left = self.per_second - sum(share for other, share in self.shares.items() if other != name)
        return cost / left if left > 0 else float("inf")


def plan_cadences(demands: Iterable[Demand], per_second: float) -> CadencePlan:
    ordered = sorted(demands, key=lambda d: d.priority)  # stable: ties keep their listed order
    reserved = {d.name: min(d.rate, per_second * MIN_SHARE) for d in ordered}
    total_reserved = sum(reserved.values())
    if total_reserved > per_second:  # so many jobs that even the reserves do not fit: scale them down
        reserved = {name: share * per_second / total_reserved for name, share in reserved.items()}
    shares = dict(reserved)
    left = per_second - sum(shares.values())

    def top_up(demand: Demand, wanted: float) -> None:
        nonlocal left
        more = max(0.0, min(wanted - shares[demand.name], left))
        shares[demand.name] += more
        left -= more

    urgent = [d for d in ordered if d.priority <= URGENT_PRIORITY]
    for demand in urgent:
        top_up(demand, demand.rate)
    # Its floor: its cost over what the urgent jobs leave of the budget (the live queue data goes first).
    after_urgent = per_second - sum(shares[d.name] for d in urgent)
    for demand in ordered:
        if demand.within_floor is not None:
            top_up(demand, min(demand.rate, after_urgent / demand.within_floor))
    for demand in ordered:
        top_up(demand, demand.rate)
    intervals = {
        d.name: max(d.interval, d.cost / shares[d.name]) if shares[d.name] > 0 else d.interval for d in ordered
    }
    # A job the budget can feed gets a weight for a quick burst (its few requests land together and
    # its data is fresh sooner); it is idle the rest of its cadence, when the stretched jobs, weighted
    # by their share, take up the slack. Fair queueing is work-conserving: no rate is lost either way.
    weights = {
        d.name: shares[d.name] if intervals[d.name] > d.interval else max(shares[d.name], d.rate / BURST_FRACTION)
        for d in ordered
    }
    return CadencePlan(intervals, shares, per_second, _keep_reserves(weights, reserved, per_second))


def _keep_reserves(weights: dict[str, float], reserved: dict[str, float], per_second: float) -> dict[str, float]:
    """Raise every weight to at least its reserve's part of the total weight.

    Bursts inflate the total, and a job that bursts for longer than planned (slow pages that hold
    the concurrency places, a cycle dearer than its learned cost) would shrink a reserve-fed job's
    part of the starts to a trickle. A fair queue gives a backlogged job weight/total of the starts,
    so this floor keeps each job's reserve whatever the others do. Raised jobs weigh floor x total,
    so the total of the others over 1 - their floors is the new total; a raised job stays raised,
    hence one pass per job at most.
    """
    if per_second <= 0:
        return weights
    floors = {name: reserved[name] / per_second for name in weights}
    raised: set[str] = set()
    total = sum(weights.values())
    for _ in range(len(weights)):
        short = {name for name, weight in weights.items() if name not in raised and weight < floors[name] * total}
        if not short:
            break
        raised |= short
        rest = sum(weight for name, weight in weights.items() if name not in raised)
        total = rest / max(1e-9, 1 - sum(floors[name] for name in raised))
    return {name: floors[name] * total if name in raised else weight for name, weight in weights.items()}
