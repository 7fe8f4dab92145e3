"""Runs every poller on the cadence the budget allows and records how each cycle went.

A job is a coroutine function, a configured cadence and a priority. The requests each cycle sends
are counted (the budget knows which job a request belongs to), and after every cycle the planner
refits all cadences into the budget with the costs just learned: a job the budget cannot feed at its
configured cadence runs on a longer, effective one, which the self-metrics show and its data's stale
limit follows. Cycles start every interval from a random phase (so several exporters, or jobs with
the same cadence, do not fire on the same second); a cycle longer than its interval is followed at
once by the next (a failed one waits for its next slot). A job can wait for another's first success
(queue observations need the queue list). Failures are logged once per cycle with the Genesys code
and contextId; the job keeps its cadence and its last good data, which the store expires when it
grows too old.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from exporter.clock import Clock
from exporter.scheduling.budget import (
    URGENT_PRIORITY,
    WINDOW_SECONDS,
    Budget,
    Caller,
    RateBudget,
    Shares,
    current_caller,
)
from exporter.scheduling.planner import CadencePlan, Demand, plan_cadences
from exporter.snapshot import Measurement, PollerStatus, Store
from exporter.tasks import first_of

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    name: str  # the `poller` label
    interval: float
    run: Callable[[], Awaitable[object]]
    after: str | None = None  # name of a job whose first success this one waits for
    priority: int = 1  # 0 first; the planner stretches the highest numbers first
    refreshes: tuple[Measurement[Any], ...] = ()  # their stale limit follows its effective cadence
    wait_at_most: float | None = None  # seconds to wait for `after`; then it starts with what there is
    first_priority: int | None = None  # the priority of its first cycle, when that one matters more
    # The requests its next cycle will send, where the job can tell before it runs (None: learned from
    # its cycles only). Data a job must refresh lives three of the cadences its true cost allows.
    expected_cost: Callable[[], int] | None = None
    within_floor: float | None = None  # see `Demand.within_floor`


STALE_AFTER_INTERVALS = 3  # a measurement older than this many cadences is dropped, not shown


def stale_limit(job: Job, interval: float) -> float:
    """How old a job's data may grow before the page drops it: three of its cadences, and for a job
    that is not urgent at least a cadence past the budget's window. When a minute's window is spent
    (a start's users listing and push's subscriptions in the same seconds) the job's next requests
    wait for the window to slide, and three short cadences would drop its data a moment before they
    could refresh it. The urgent jobs (live queue data) have a reserve and keep three cadences."""
    limit = STALE_AFTER_INTERVALS * interval
    return limit if job.priority <= URGENT_PRIORITY else max(limit, interval + WINDOW_SECONDS)


def describe_failure(error: BaseException) -> dict[str, object]:
    """Log fields for a failed cycle: the Genesys status, code and contextId when there are some."""
    fields: dict[str, object] = {
        "error": str(error) or type(error).__name__,
        "error_type": type(error).__name__,
    }
    for attr, key in (("status", "status"), ("code", "code"), ("context_id", "context_id")):
        value = getattr(error, attr, None)
        if value is not None:
            fields[key] = value
    errors = getattr(error, "errors", None)  # BatchesFailed: describe the first underlying error too
    if isinstance(errors, list) and errors:
        for key, value in describe_failure(errors[0]).items():
            fields.setdefault(key, value)
    return fields


class Scheduler:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        jobs: list[Job],
        budget: Budget | None = None,
        *,
        expire_every: float = 1.0,
        jitter: float = 0.1,
    ) -> None:
        self._store = store
        self._clock = clock
        self._jobs = jobs
        self._budget: Budget = budget or RateBudget(clock)  # several OAuth clients: a BudgetGroup
        self._sweep_every = expire_every
        self._jitter = jitter
        self._succeeded: dict[str, asyncio.Event] = {job.name: asyncio.Event() for job in jobs}
        self._costs: dict[str, int] = {job.name: 1 for job in jobs}  # a guess until a cycle has run
        self._running: dict[str, int] = {}  # job -> requests spent before its running cycle began
        self._planned_costs: dict[str, int] = {}
        self.plan: CadencePlan  # set by _replan, below
        self._replanned = asyncio.Event()  # set (and replaced) at each new plan: a sleeping job looks again
        for job in jobs:
            store.set_status(job.name, PollerStatus(interval=job.interval, configured_interval=job.interval))
        self._replan()

    @property
    def ready(self) -> bool:
        """True once every job has succeeded at least once (`/readyz`)."""
        return all(event.is_set() for event in self._succeeded.values())

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for job in self._jobs:
                group.create_task(self._loop(job), name=f"poller-{job.name}")
            group.create_task(self._expire_stale(), name="expire-stale")

    def _estimate(self, job: Job) -> int:
        """The last cycle's cost, or more if the running cycle has already sent or queued more, or the
        next cycle is known to cost more."""
        cost = self._costs[job.name]
        if job.name in self._running:
            cost = max(cost, self._budget.spent[job.name] - self._running[job.name] + self._budget.waiting(job.name))
        if job.expected_cost is not None:
            cost = max(cost, job.expected_cost())
        return cost

    def _replan(self) -> None:
        self._planned_costs = {j.name: self._estimate(j) for j in self._jobs}
        costs = self._planned_costs
        # A job held within its floor waits for the first passes (the directories', whose labels
        # `genesys_agent_info` waits for): held first, it would leave them only their reserve.
        firsts = any(j.first_priority is not None and not self._succeeded[j.name].is_set() for j in self._jobs)
        demands = [
            Demand(j.name, j.interval, costs[j.name], self._priority(j), None if firsts else j.within_floor)
            for j in self._jobs
        ]
        self.plan = plan_cadences(demands, self._budget.per_second)
        self._replanned.set()
        self._replanned = asyncio.Event()
        urgent = [j for j in self._jobs if j.priority <= URGENT_PRIORITY]
        self._budget.set_shares(
            Shares(
                self.plan.weights,
                reserve_per_second=sum(self.plan.shares.get(j.name, 0.0) for j in urgent),
                burst=max((self._planned_costs[j.name] for j in urgent), default=0),
                unplanned=frozenset(j.name for j in self._jobs if not self._succeeded[j.name].is_set()),
                kept_per_second={} if firsts else self._kept_per_second(),
            )
        )
        for job in self._jobs:
            interval = self.plan.intervals[job.name]
            status = self._store.status(job.name)
            if status is not None and status.interval != interval:
                self._store.set_status(job.name, replace(status, interval=interval))
            for key in job.refreshes:
                self._store.set_stale_after(key, stale_limit(job, interval))

    def _kept_per_second(self) -> dict[str, float]:
        """The rate each planned job that is not urgent counts on finding in the window, kept for the
        jobs whose cycles come back within the window: between two of their cycles, a bulk pass alone
        would spend their part and leave the next cycle waiting for the window to slide. A job that
        comes back less often (a directory every ten minutes, a stretched job) keeps none: kept
        between its cycles, its part would go unspent, and it borrows like any other when it runs.
        Kept only once the first passes are done and for jobs whose cost has been learned: a guessed
        cost, or a directory's first pass held to the parts of jobs not yet running, would slow the
        start.

        A window holds the starts of one cycle more than its length (a cycle whose requests started a
        second late is still in it when the cycle a window later begins), so that cycle is kept too,
        out of what the plan gives no job: kept to the rate alone, the late cycle's last requests wait
        for the window to slide until another cycle's slot, and 60 s on the echo comes back."""
        plan = self.plan
        rates = {
            j.name: plan.shares.get(j.name, 0.0)
            for j in self._jobs
            if j.priority > URGENT_PRIORITY
            and self._succeeded[j.name].is_set()
            and plan.intervals[j.name] <= WINDOW_SECONDS
        }
        more = {name: rate * plan.intervals[name] / WINDOW_SECONDS for name, rate in rates.items()}
        # Beyond the plan, it would be taken from the jobs that count on finding it.
        spare = max(0.0, plan.per_second - sum(plan.shares.values()))
        wanted = sum(more.values())
        scale = min(1.0, spare / wanted) if wanted > 0 else 0.0
        return {name: rate + more.get(name, 0.0) * scale for name, rate in rates.items()}

    async def _loop(self, job: Job) -> None:
        if job.after:
            await self._first_success(job.after, job.wait_at_most)
        slot = self._clock.monotonic() + random.uniform(0, job.interval * self._jitter)
        while True:
            succeeded = await self.run_once(job)
            slot = await self._next_slot(job, slot, succeeded)

    async def _next_slot(self, job: Job, slot: float, succeeded: bool) -> float:
        """Sleep until the cycle after the one begun at `slot` is due, and return when that is. The
        interval is the plan's as it stands while the job sleeps: a plan that shortens it (the first
        passes done, the agents' polls given their floor) takes effect now, not after an interval
        the old plan had stretched to many minutes, in which their states would go stale."""
        while True:
            interval = self.plan.intervals[job.name]
            due = slot + interval
            now = self._clock.monotonic()
            if due < now:  # it overran: a budget-bound job goes again now; a failed one waits a slot
                due = now if succeeded else due + math.ceil((now - due) / interval) * interval
            if due <= now:
                return due
            woke = await first_of({"due": self._clock.sleep(due - now), "replanned": self._replanned.wait()})
            if "due" in woke:
                return due

    def _priority(self, job: Job) -> int:
        """A directory's first pass is what every agent's data waits for: it goes before their state
        polls until it has finished once, then it stretches first, as a directory should."""
        if job.first_priority is not None and not self._succeeded[job.name].is_set():
            return job.first_priority
        return job.priority

    async def _first_success(self, name: str, at_most: float | None) -> None:
        """Wait for the job's first success, or `at_most` seconds of the injected clock."""
        if at_most is None:
            await self._succeeded[name].wait()
        else:
            await first_of({"success": self._succeeded[name].wait(), "timeout": self._clock.sleep(at_most)})

    async def run_once(self, job: Job) -> bool:
        started = self._clock.monotonic()
        previous = self._store.status(job.name) or PollerStatus(interval=job.interval)
        spent_before = self._running[job.name] = self._budget.spent[job.name]
        caller = current_caller.set(Caller(job.name, self._priority(job)))  # its requests, and its children's
        try:
            await job.run()
        except Exception as error:
            status = replace(
                previous,
                up=False,
                last_duration=self._clock.monotonic() - started,
                last_error=str(error) or type(error).__name__,
                consecutive_failures=previous.consecutive_failures + 1,
            )
            self._store.set_status(job.name, status)
            log.warning(
                "poll failed",
                poller=job.name,
                failures=status.consecutive_failures,
                **describe_failure(error),
            )
            return False
        finally:
            current_caller.reset(caller)
            del self._running[job.name]
        self._costs[job.name] = self._budget.spent[job.name] - spent_before
        self._store.set_status(
            job.name,
            replace(
                previous,
                cost=self._costs[job.name],
                up=True,
                last_success=self._clock.time(),
                last_duration=self._clock.monotonic() - started,
                last_error=None,
                consecutive_failures=0,
            ),
        )
        if previous.consecutive_failures:
            log.info("poll recovered", poller=job.name, after_failures=previous.consecutive_failures)
        self._succeeded[job.name].set()  # before the replan: a job's first success ends its first-cycle terms
        self._replan()
        return True

    async def _expire_stale(self) -> None:
        """Expire stale data; replan when a running cycle turns out dearer than planned (a first cycle)."""
        while True:
            await self._clock.sleep(self._sweep_every)
            self._store.expire()
            if any(self._estimate(job) > self._planned_costs[job.name] for job in self._jobs):
                self._replan()
