"""Several OAuth clients' rate budgets as one: one plan over their sum, each request through one of them.

Genesys gives each OAuth client of an org its own request budget. An exporter with several clients
plans with their sum, but every request still goes through exactly one client's `RateBudget`, so no
client's window ever holds more than its own limit. A request goes to the client where it would
start soonest (`RateBudget.eta`), ties to the least loaded, so a burst spreads over the clients in
proportion to what each has free; a job whose part of the window the clients keep goes first where
most of its part is unspent. Fair queueing stays per budget, each with the planner's weights, its
part of the urgent reserve and of each kept part.

A client that fails (credentials rejected, a 401 with a new token, a 429 storm, a daily cap) is set
aside: new requests go to the others and the plan counts only theirs, so its share moves to them
within their budgets. It is tried again after a back-off (30 s, doubling to 10 minutes, or the
daily cap's Retry-After) and is back in full on its first success. When every client is set aside
the group uses them all: a request has nowhere better to go, and its error is the poller's to
report, as with one client.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

import structlog

from exporter.clock import Clock
from exporter.scheduling.budget import Caller, RateBudget, Shares

log = structlog.get_logger(__name__)

FIRST_BACKOFF_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 600.0
STORM_429S = 3  # this many 429s in a row (no success between) and a client is set aside


@dataclass(slots=True)
class _Health:
    failures: int = 0  # since its last success: the back-off doubles with each
    aside_until: float = 0.0  # monotonic; in use again from then on
    rate_limited: int = 0  # 429s since its last success


class BudgetGroup:
    """The clients' budgets by label (`OAuthClient.label`), in the order configured."""

    def __init__(self, clock: Clock, members: Mapping[str, RateBudget]) -> None:
        if not members:
            raise ValueError("a budget group needs at least one budget")
        self._clock = clock
        self.members = dict(members)
        self._health = {label: _Health() for label in members}
        self._shares = Shares()
        self._applied_to: tuple[str, ...] = ()  # the members in use when the shares were last applied

    def in_use(self) -> tuple[str, ...]:
        """The clients not set aside, or all of them when every one is."""
        now = self._clock.monotonic()
        healthy = tuple(label for label, health in self._health.items() if health.aside_until <= now)
        return healthy or tuple(self.members)

    @property
    def per_second(self) -> float:
        """The plan's budget: the sum of the clients in use."""
        return sum(self.members[label].per_second for label in self._current())

    @property
    def requests_per_minute(self) -> int:
        return sum(self.members[label].requests_per_minute for label in self._current())

    @property
    def spent(self) -> Counter[str]:
        """Requests admitted per job, over every client."""
        total: Counter[str] = Counter()
        for budget in self.members.values():
            total.update(budget.spent)
        return total

    @property
    def rate_limited_total(self) -> int:
        return sum(budget.rate_limited_total for budget in self.members.values())

    def waiting(self, job: str) -> int:
        return sum(budget.waiting(job) for budget in self.members.values())

    def set_shares(self, shares: Shares) -> None:
        """The planner's weights go to every client as they are (they are relative); the urgent reserve
        and burst are split in proportion to the budgets of the clients in use."""
        self._shares = shares
        self._apply(self.in_use())

    def choose(self, caller: Caller, exclude: Collection[str] = ()) -> str | None:
        """Of the clients in use and not in `exclude` (the ones that failed this request), else of those
        set aside: one that can start the caller's request now; else, for a job whose part of the
        window each client keeps, the one with the most of it unspent (`RateBudget.unspent`); else the
        one that would start it soonest. Ties to the least loaded. None when every one is excluded.

        While every client is backlogged (a directory's pass), a cycle then spreads as its part is kept,
        a third on each of three clients; sent where it would start soonest alone, it crowded onto the
        client whose backlog was a lap shorter, past the part kept for it there, and waited for that
        window to slide. A client that can start it now goes first all the same: a job beyond its part
        sent to wait for it elsewhere would leave that client's room unused."""
        candidates = [label for label in self._current() if label not in exclude]
        candidates = candidates or [label for label in self.members if label not in exclude]
        if not candidates:
            return None

        def order(label: str) -> tuple[bool, int, float, float]:
            budget = self.members[label]
            eta = budget.eta(caller)
            return (eta > 0, -max(0, budget.unspent(caller.name) or 0), eta, budget.load)

        return min(candidates, key=order)

    def rate_limited(self, label: str, retry_after: float) -> None:
        """A 429 for the client: its budget pauses; the third in a row sets it aside (a storm)."""
        self.members[label].rate_limited(retry_after)
        health = self._health[label]
        health.rate_limited += 1
        if health.rate_limited >= STORM_429S:
            self.set_aside(label, f"{health.rate_limited} responses in a row were HTTP 429")

    def set_aside(self, label: str, reason: str, at_least: float = 0.0) -> None:
        """No new request goes to the client for a back-off (longer each time), or `at_least` seconds."""
        health = self._health[label]
        now = self._clock.monotonic()
        if health.aside_until <= now:  # its requests in flight fail together: one failure, not several
            health.failures += 1
        seconds = max(at_least, min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (health.failures - 1)))
        was_aside = health.aside_until > now
        health.aside_until = max(health.aside_until, now + seconds)
        if not was_aside and len(self.members) > 1:
            log.warning(
                "OAuth client set aside; its requests go to the others",
                client=label,
                reason=reason,
                retry_in_s=round(health.aside_until - now),
                in_use=len(self.in_use()),
            )
        self._current()

    def succeeded(self, label: str) -> None:
        """A 2xx from the client: back in full, its back-off forgotten."""
        health = self._health[label]
        if health.failures or health.rate_limited:
            if health.failures and len(self.members) > 1:
                log.info("OAuth client back in use", client=label, after_failures=health.failures)
            self._health[label] = _Health()
            self._current()

    def _current(self) -> tuple[str, ...]:
        """The clients in use, the shares re-split first if that set changed (a set-aside ended)."""
        in_use = self.in_use()
        if in_use != self._applied_to:
            self._apply(in_use)
        return in_use

    def _apply(self, in_use: tuple[str, ...]) -> None:
        shares = self._shares
        total = sum(self.members[label].per_second for label in in_use)
        for label, budget in self.members.items():
            part = budget.per_second / total if label in in_use and total > 0 else 0.0
            budget.set_shares(
                replace(
                    shares,
                    reserve_per_second=shares.reserve_per_second * part,
                    burst=math.ceil(shares.burst * part),
                    kept_per_second={name: rate * part for name, rate in shares.kept_per_second.items()},
                )
            )
        self._applied_to = in_use
