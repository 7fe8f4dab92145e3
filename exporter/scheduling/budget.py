"""One OAuth client's request budget, shared by every poller's requests, and the order they get it in.

With several OAuth clients each has a budget of its own, and a `BudgetGroup`
(`exporter.scheduling.group`) sends each request to the one whose `eta` is soonest.

Genesys Cloud allows an OAuth client's token 300 requests a minute
(https://developer.genesys.cloud/organization/organization/limits#platform-api). The budget keeps the
start time of each request in a sliding 60 s log and admits a request only while fewer than
`limit` started in the last 60 s, so no 60 s window of any alignment (the server's included) ever
holds more than `limit`. The server's `inin-ratelimit-*` headers can only make it stricter: when
they show the window nearly spent (another client shares the token), every request waits for the
server's reset; a 429 pauses every request for its Retry-After.

Within the limit, who starts next: the urgent job first (live queue data), then the other jobs in
proportion to the weights the planner gave them (self-clocked fair queueing), so a backlogged job
gets its share and no job starves. The urgent job also has a reserve: the others may fill the window
only up to `limit - reserve` starts of their own, so a job with hundreds of pages cannot spend the
whole minute in two seconds and leave the next queue poll waiting for the window to slide. The job
a request belongs to travels in a context variable set by the scheduler, so pollers and the client
never pass it around.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections import Counter, deque
from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from exporter.clock import Clock

WINDOW_SECONDS = 60.0
URGENT_PRIORITY = 0  # jobs of priority 0 (live queue data) are served strictly ahead of the rest


@dataclass(frozen=True, slots=True)
class Caller:
    """The job a request is sent for: its name (for accounting and its fair-queue weight) and priority.
    `ahead`: at the fair queue's front, sharing it by weight with the urgent jobs beyond their cap and
    served before every other job (the agents' first states at a start, which every agent on the
    page waits for, but not before the live queue data)."""

    name: str
    priority: int = 1
    ahead: bool = False


current_caller: ContextVar[Caller] = ContextVar("current_caller", default=Caller("other"))  # noqa: B039 (frozen)


@contextlib.contextmanager
def as_caller(caller: Caller) -> Iterator[None]:
    """Requests made inside the block are `caller`'s (for a task that sends for more than one job)."""
    token = current_caller.set(caller)
    try:
        yield
    finally:
        current_caller.reset(token)


class Ticket(NamedTuple):
    """A job's first waiting request in the fair queue; tuples order it: urgent ones within their cap
    first (`strict` 0, by priority), then the fair queue by its tags: its front (urgent jobs beyond
    their cap, callers sent `ahead`) before every other job, ties by arrival."""

    strict: int  # 0: an urgent request within its cap, served strictly first; 1: the fair queue
    priority: int  # among the strict ones, by priority; in the fair queue, 0 for its front and 1 for the rest
    tag: float  # virtual finish time (self-clocked fair queueing)
    sequence: int
    job: str
    urgent: bool  # the job's requests are urgent: the other planned jobs' parts do not hold it (`_own_wait`)


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _forget_old(starts: deque[float], now: float) -> None:
    while starts and starts[0] + WINDOW_SECONDS <= now:
        starts.popleft()


def _until_room(starts: deque[float], room: int, now: float) -> float:
    """Forget starts older than the window; seconds until it holds fewer than `room` of them."""
    _forget_old(starts, now)
    return starts[len(starts) - room] + WINDOW_SECONDS - now if len(starts) >= room else 0.0


def _until_start(starts: deque[float], room: int, queued: int, now: float) -> float:
    """Seconds until the request after `queued` others may start, if each starts as soon as a window
    of `room` starts allows: the k-th start from now takes the place of the start `room` before it,
    60 s later, and that one is a past start or, `k // room` windows on, one of the first `room` to come.
    """
    _forget_old(starts, now)
    laps, first = divmod(queued, room)
    behind = len(starts) + first - room  # the past start whose place the first-lap one takes, if any
    start = max(now, starts[behind] + WINDOW_SECONDS) if behind >= 0 else now
    return start + laps * WINDOW_SECONDS - now


@dataclass(frozen=True, slots=True)
class Shares:
    """What the planner gives the budgets: the fair queue's weights, the urgent jobs' reserve (requests a
    second) and largest cycle (`burst`), and the jobs whose cost is not known yet (their first cycle)."""

    weights: Mapping[str, float] = field(default_factory=dict)
    reserve_per_second: float = 0.0
    burst: int = 0
    unplanned: Collection[str] = ()
    # Per job that is not urgent, what its plan counts on finding in any 60 s window, a second's worth
    # (its planned rate and one cycle more: `Scheduler._kept_per_second`).
    kept_per_second: Mapping[str, float] = field(default_factory=dict)


class Budget(Protocol):
    """What the scheduler asks of a budget: one client's `RateBudget`, or several as a `BudgetGroup`."""

    @property
    def per_second(self) -> float: ...

    @property
    def spent(self) -> Mapping[str, int]: ...

    def waiting(self, job: str) -> int: ...

    def set_shares(self, shares: Shares) -> None: ...


class RateBudget:
    def __init__(
        self, clock: Clock, requests_per_minute: float = 300, headroom: float = 0.10, concurrency: int = 8
    ) -> None:
        self._clock = clock
        self._headroom = headroom
        self._limit = max(1, math.floor(requests_per_minute * (1 - headroom)))
        self._starts: deque[float] = deque()
        self._others: deque[float] = deque()  # starts of the jobs that are not urgent
        self._paused_until = 0.0
        self._server_remaining: int | None = None
        self._server_seen_until = 0.0  # when the server's last reported window ends
        self._concurrency = concurrency
        self._in_flight = 0
        self._reserve = 0  # requests in any 60 s that only the urgent jobs may use
        self._urgent_cap = 0  # urgent starts in the window up to which they still go first
        self._flows: dict[str, deque[asyncio.Event]] = {}  # job -> its waiting requests, in arrival order
        self._heads: list[Ticket] = []  # each job's first waiting request, in fair-queue order
        self._sequence = itertools.count()
        self._virtual_time = 0.0
        self._finish: dict[str, float] = {}  # job -> tag of its last request
        self._weights: dict[str, float] = {}  # job -> fair-queue weight, from the planner
        self._kept: dict[str, int] = {}  # job -> starts in any window its plan counts on (`_kept_for_others`)
        self._job_starts: dict[str, deque[float]] = {}  # job -> its starts in the window
        self._unplanned: frozenset[str] = frozenset()  # jobs in their first cycle: capped
        self.spent: Counter[str] = Counter()  # requests admitted per job, since start
        self.rate_limited_total = 0

    @property
    def requests_per_minute(self) -> int:
        """The most requests that may start in any 60 s."""
        return self._limit

    @property
    def per_second(self) -> float:
        return self._limit / WINDOW_SECONDS

    @property
    def remaining(self) -> int:
        """Requests left: the server's count while its window lasts, else ours."""
        now = self._clock.monotonic()
        ours = self._limit - sum(1 for s in self._starts if s + WINDOW_SECONDS > now)
        if self._server_remaining is not None and now < self._server_seen_until:
            return max(0, min(ours, self._server_remaining))
        return max(0, ours)

    def set_shares(self, shares: Shares) -> None:
        """The planner's weights for the fair queue, the urgent jobs' reserve and largest cycle, the
        jobs whose cost is not known yet (`unplanned`: their first cycle), which are capped (`_job_cap`),
        and each planned job's part of the window, which the others leave it (`_kept_for_others`).

        Urgent requests go strictly first while the window holds fewer than their reserve plus one
        cycle of them (a cycle landing early, or late, stays first); beyond that they queue fairly, and
        never take more than half of what the reserve leaves the others.

        New shares may let the head go sooner (a smaller reserve once push takes the queues over, a
        first cycle's cap lifted): it is woken to look again, or it would sleep out the wait the old
        shares gave it, and everyone behind it too, for a room already free.
        """
        self._weights = {name: weight for name, weight in shares.weights.items() if weight > 0}
        self._unplanned = frozenset(shares.unplanned)
        kept = shares.kept_per_second.items()
        self._kept = {name: math.floor(rate * WINDOW_SECONDS) for name, rate in kept if rate > 0}
        self._reserve = min(self._limit - 1, math.floor(shares.reserve_per_second * WINDOW_SECONDS))
        self._urgent_cap = self._reserve + min(shares.burst, (self._limit - self._reserve) // 2)
        self._wake_head()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a place for one request: wait for the window, any pause and a concurrency place."""
        await self._admit(current_caller.get())
        try:
            yield
        finally:
            self._in_flight -= 1
            self._wake_head()

    async def _admit(self, caller: Caller) -> None:
        """Queue behind the job's earlier requests; start when this job's turn is first in the fair queue.

        Only the first waiting request of each job holds a fair-queueing tag, computed when it gets
        there, so a weight the planner changes applies to the next request, not to a stale backlog.
        """
        woken = asyncio.Event()  # set when this request may have become the first in line
        flow = self._flows.setdefault(caller.name, deque())
        flow.append(woken)
        if len(flow) == 1:
            self._enter(caller)
        try:
            while True:
                woken.clear()
                head = self._head(self._clock.monotonic())
                if head is None or self._flows[head.job][0] is not woken:
                    if head is not None:  # the head may be another job's request waiting to be told so
                        self._flows[head.job][0].set()
                    await woken.wait()
                    continue
                wait = self._wait(self._clock.monotonic(), caller)
                if wait <= 0:
                    self._heads.remove(head)
                    heapq.heapify(self._heads)
                    tag = head.tag
                    flow.popleft()
                    self._take(caller, tag)
                    if flow:
                        self._enter(caller)
                    return
                await self._sleep_or_woken(wait, woken)
        except BaseException:
            if woken in flow:
                was_first = flow[0] is woken
                flow.remove(woken)
                if was_first:
                    self._heads = [head for head in self._heads if head.job != caller.name]
                    heapq.heapify(self._heads)
                    if flow:
                        self._enter(caller)
            raise
        finally:
            if not flow:
                self._flows.pop(caller.name, None)
            self._wake_head()

    def _enter(self, caller: Caller) -> None:
        """Put the job's first waiting request in the fair queue, tagged by the job's current weight."""
        weight = self._weights.get(caller.name, 1.0)
        tag = max(self._virtual_time, self._finish.get(caller.name, 0.0)) + 1.0 / weight
        self._finish[caller.name] = tag
        urgent_job = caller.priority <= URGENT_PRIORITY
        if urgent_job and self._urgent_in_window() < self._urgent_cap:
            ticket = Ticket(0, caller.priority, tag, next(self._sequence), caller.name, urgent_job)
        else:  # the fair queue: an urgent job beyond its cap and a caller sent ahead share its front
            front = 0 if urgent_job or caller.ahead else 1
            ticket = Ticket(1, front, tag, next(self._sequence), caller.name, urgent_job)
        heapq.heappush(self._heads, ticket)

    def _urgent_in_window(self) -> int:
        """Starts of the urgent jobs in the window: an urgent job the budget cannot feed (tens of thousands
        of queues) must not starve every other job, however strictly it goes first."""
        now = self._clock.monotonic()
        _forget_old(self._starts, now)
        _forget_old(self._others, now)
        return len(self._starts) - len(self._others)

    def _head(self, now: float) -> Ticket | None:
        """Whose request goes next: the first in fair-queue order that is not over its own cap in the
        window, or, when all are, the first (it waits for its cap to free, see `_wait`)."""
        if not self._heads:
            return None
        ordered = sorted(self._heads)
        for head in ordered:
            if head.strict == 0 or self._own_wait(head.job, head.urgent, now) <= 0:
                return head
        return ordered[0]

    def _own_wait(self, job: str, urgent: bool, now: float) -> float:
        """Seconds until the job's own limits let it start: an unplanned job's cap of the window's starts,
        and for a job that is not urgent the room the other planned jobs' parts leave
        (`_kept_for_others`). A job held by its own limits does not hold the others behind it."""
        starts = self._job_starts.get(job)
        wait = _until_room(starts, self._job_cap(now), now) if starts and job in self._unplanned else 0.0
        return wait if urgent else max(wait, _until_room(self._others, self._room(job, now), now))

    def _job_cap(self, now: float) -> int:
        """A job whose cost is not known yet may start at most three quarters of what the window has
        left once the urgent jobs (their reserve, or more if they took more) and the jobs of known cost
        have had their starts. Fair queueing cannot hold back a job that is alone, and one that starts
        alone (a member listing of thousands of queues at start-up) would spend the window in
        seconds: the agents' first state polls, a moment behind, would find nothing left for a
        minute. The others' starts count too: the queue list, the queues' first poll and the
        channels' set-up go in the same seconds.
        Once its cost is known the planner paces it like any job.
        """
        _forget_old(self._starts, now)
        _forget_old(self._others, now)
        urgent = max(self._reserve, len(self._starts) - len(self._others))
        first_cycles = 0
        for name in self._unplanned:
            starts = self._job_starts.get(name)
            if starts:
                _forget_old(starts, now)
                first_cycles += len(starts)
        known = len(self._others) - first_cycles
        return max(1, (3 * (self._limit - urgent - known)) // 4)

    def waiting(self, job: str) -> int:
        """Requests of the job waiting for a place: the cost still to come of the cycle it is running."""
        return len(self._flows.get(job, ()))

    def unspent(self, job: str) -> int | None:
        """Starts of the job's kept part that this budget has neither made in the window nor holds
        waiting (less than 0: that many beyond it); None when it keeps no part for the job. The part is
        kept in each budget (`_kept_for_others`): the group sends the job's requests by this."""
        if job not in self._kept:
            return None
        starts = self._job_starts.get(job)
        if starts:
            _forget_old(starts, self._clock.monotonic())
        return self._kept[job] - (len(starts) if starts else 0) - self.waiting(job)

    def eta(self, caller: Caller) -> float:
        """Seconds until a request of `caller` sent now could start here, behind every one already
        waiting: what a `BudgetGroup` compares to send a request where it starts soonest.

        An estimate from the windows and any pause (the fair queue may let it pass requests of other
        jobs, a first cycle's cap hold it longer), but 0 only when the window has room for it and
        everyone ahead of it.
        """
        now = self._clock.monotonic()
        queued = sum(len(flow) for flow in self._flows.values())
        eta = max(0.0, self._paused_until - now, _until_start(self._starts, self._limit, queued, now))
        if caller.priority > URGENT_PRIORITY:
            eta = max(eta, _until_start(self._others, self._room(caller.name, now), queued, now))
        return eta

    @property
    def load(self) -> float:
        """Requests in flight or waiting per concurrency place: between budgets that would all start a
        request at once, the least loaded gets it, so a burst spreads instead of filling one first."""
        return (self._in_flight + sum(len(flow) for flow in self._flows.values())) / self._concurrency

    def _wait(self, now: float, caller: Caller) -> float:
        """Seconds until the head of the queue may start; inf while every concurrency place is taken.

        Any request waits for the window to hold fewer than `limit` starts; one of a job that is not
        urgent also for fewer than `limit - reserve` starts of such jobs, so the reserve stays free,
        and for its own starts to be under its cap (`_job_cap`).
        """
        if self._in_flight >= self._concurrency:
            return math.inf
        wait = max(self._paused_until - now, _until_room(self._starts, self._limit, now))
        if caller.priority > URGENT_PRIORITY:
            wait = max(wait, self._own_wait(caller.name, False, now))
        return wait

    def _room(self, job: str, now: float) -> int:
        """Starts the window may hold of the jobs that are not urgent before `job` waits: all but the
        urgent reserve and the other planned jobs' unspent parts, and never less than one."""
        return max(1, self._limit - self._reserve - self._kept_for_others(job, now))

    def _kept_for_others(self, job: str, now: float) -> int:
        """What the window keeps for the other planned jobs: the part of each one's planned starts it has
        not made in the window. Fair queueing lends an idle job's room to whoever is backlogged, and a
        60 s window makes the loan last a minute: a directory's pass of thousands of pages alone between
        two cycles of today's figures would spend their part and leave them waiting for it to slide."""
        kept = 0
        for name, planned in self._kept.items():
            if name != job:
                starts = self._job_starts.get(name)
                if starts:
                    _forget_old(starts, now)
                kept += max(0, planned - (len(starts) if starts else 0))
        return kept

    def _take(self, caller: Caller, tag: float) -> None:
        now = self._clock.monotonic()
        self._starts.append(now)
        if caller.priority > URGENT_PRIORITY:
            self._others.append(now)
            self._job_starts.setdefault(caller.name, deque()).append(now)
        self._in_flight += 1
        # Never back: a request served out of tag order (an urgent one within its cap, the fair queue's
        # front, a job past its own cap passed over) may carry a tag far from a backlogged job's. Set
        # back to the backlogged job's, the virtual time would leave a job tagged in between waiting
        # behind that whole backlog instead of sharing the starts by weight.
        self._virtual_time = max(self._virtual_time, tag)
        self.spent[caller.name] += 1

    def _wake_head(self) -> None:
        """Only the next in line can start next: wake it alone (not every waiter) to look again."""
        head = self._head(self._clock.monotonic())
        if head is not None:
            self._flows[head.job][0].set()

    async def _sleep_or_woken(self, seconds: float, woken: asyncio.Event) -> None:
        if math.isinf(seconds):
            await woken.wait()
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(woken.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read `inin-ratelimit-allowed/-count/-reset` (any case); wait for the reset if the window is spent."""
        lowered = {k.lower(): v for k, v in headers.items()}
        allowed = _header_int(lowered, "inin-ratelimit-allowed")
        count = _header_int(lowered, "inin-ratelimit-count")
        reset = _header_int(lowered, "inin-ratelimit-reset")
        if allowed is None or count is None:
            return
        now = self._clock.monotonic()
        self._server_remaining = allowed - count
        self._server_seen_until = now + (reset if reset is not None else WINDOW_SECONDS)
        self._limit = min(self._limit, max(1, math.floor(allowed * (1 - self._headroom))))
        reserve = max(1, math.ceil(allowed * self._headroom))
        if self._server_remaining <= reserve and reset is not None:
            self._paused_until = max(self._paused_until, now + reset)

    def rate_limited(self, retry_after: float) -> None:
        """A 429: count it, and make every request of every poller wait `retry_after` seconds."""
        self.rate_limited_total += 1
        self._paused_until = max(self._paused_until, self._clock.monotonic() + retry_after)
