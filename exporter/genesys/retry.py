"""When a request to Genesys Cloud is tried again, and how long it waits first: the retry rules as a table.

`decide` reads one outcome of an attempt (an HTTP answer, no answer, or a failed login) and what the
request has been through (`RequestState`), and says what to do next (`Decision`); it does no I/O, so
every rule is a row of a test. The rules follow https://developer.genesys.cloud/platform/api/rate-limits
and https://developer.genesys.cloud/forum/t/normalized-platform-api-429-responses/12028 : a 429 waits
its `Retry-After` (a daily cap, over 180 s, is not waited out), 502/503/504 and lost connections are
retried (our requests are idempotent reads), other 4xx never are, and a 401 gets one new token.

`backoff` is the one jittered exponential backoff of the exporter: the API's retries, the token
endpoint's and the notification channels' reopening all wait by it.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime

from exporter.genesys.errors import DAILY_CAP_SECONDS

RETRIED_5XX = frozenset({502, 503, 504})
DEFAULT_RETRY_AFTER = 3.0  # what the official SDKs wait on a 429 without Retry-After
MAX_BACKOFF = 30.0  # an API retry's longest wait


def backoff(attempt: int, *, cap: float, least: float = 0.5) -> float:
    """`2**attempt` seconds, at most `cap`, times a random factor from `least` to 1: callers that
    failed together do not come back together."""
    return min(cap, 2.0**attempt) * random.uniform(least, 1.0)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds: whole seconds per Genesys, or an HTTP date per RFC 9110."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer, reduced to what the rules read: the status and `Retry-After` in seconds."""

    status: int
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """No HTTP answer: a connection refused or reset, or a timeout."""


@dataclass(frozen=True, slots=True)
class LoginFailed:
    """The client got no token (its credentials refused, or its token endpoint down after its own retries)."""

    reason: str


Outcome = Answer | NoAnswer | LoginFailed


@dataclass(frozen=True, slots=True)
class RequestState:
    """What one request has been through: the decision's memory between attempts."""

    clients: tuple[str, ...]  # every OAuth client of the exporter, by label
    max_retries: int
    pinned: bool = False  # it must stay on its client (a `per_client` endpoint, or `as_client=`)
    retries: int = 0
    renewed: frozenset[str] = frozenset()  # clients whose token it renewed after a 401
    failed: frozenset[str] = frozenset()  # clients that failed it for good

    def another_than(self, client: str) -> bool:
        """Whether a client other than `client` could still take the request."""
        return not self.pinned and any(c != client and c not in self.failed for c in self.clients)

    def retried(self) -> RequestState:
        return replace(self, retries=self.retries + 1)

    def renewed_by(self, client: str) -> RequestState:
        return replace(self, renewed=self.renewed | {client})

    def failed_by(self, client: str) -> RequestState:
        return replace(self, failed=self.failed | {client})


class Then(enum.Enum):
    """The request's next step."""

    DELIVER = "return the body"
    RENEW = "renew the client's token and replay"
    RETRY = "try again, counting one retry"
    ELSEWHERE = "another client takes it, not counted as a retry"
    RAISE = "raise the typed error"


@dataclass(frozen=True, slots=True)
class Backoff:
    """A jittered exponential wait before the request's `retry`-th retry: drawn only when it is waited,
    so `decide` stays pure and its decisions compare equal."""

    retry: int

    def seconds(self) -> float:
        return backoff(self.retry, cap=MAX_BACKOFF)


@dataclass(frozen=True, slots=True)
class Pause:
    """A 429: the client's budget stops for `seconds`, so its other requests wait too, not just this
    one; `retry_after` is what Genesys asked, longer than the pause when it is a daily cap."""

    seconds: float
    retry_after: float


@dataclass(frozen=True, slots=True)
class SetAside:
    """The client failed the request for good: it is not asked again for it, and the group sends it
    no new request for a back-off (or `at_least` seconds)."""

    reason: str
    at_least: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    """The next step and what comes with it, as data: the client carries it out, so the rules are
    tested without a request."""

    then: Then
    wait: float | Backoff | None = None  # this request's own wait before a retry; None: none at all
    pause: Pause | None = None
    aside: SetAside | None = None


def decide(outcome: Outcome, client: str, state: RequestState) -> Decision:
    """What follows `outcome` from `client` for a request in `state`; no I/O, no clock, no randomness."""
    match outcome:
        case NoAnswer():
            if state.retries >= state.max_retries:
                return Decision(Then.RAISE)
            return Decision(Then.RETRY, wait=Backoff(state.retries + 1))
        case LoginFailed(reason):
            return _failed_for_good(client, state, SetAside(f"login failed: {reason}"))
        case Answer(status, retry_after):
            return _after_answer(status, retry_after, client, state)


def _after_answer(status: int, retry_after: float | None, client: str, state: RequestState) -> Decision:
    retries_left = state.retries < state.max_retries
    if 200 <= status < 300:
        return Decision(Then.DELIVER)
    if status == 401:
        if client not in state.renewed:
            return Decision(Then.RENEW)
        return _failed_for_good(client, state, SetAside("HTTP 401 with a new token"))
    if status == 429:
        asked = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
        pause = Pause(min(asked, DAILY_CAP_SECONDS), asked)
        if asked > DAILY_CAP_SECONDS:
            return replace(_failed_for_good(client, state, SetAside("daily cap", at_least=asked)), pause=pause)
        # No wait of its own: the budget's pause holds it, on this client or the one that starts it soonest.
        return Decision(Then.RETRY if retries_left else Then.RAISE, pause=pause)
    if status in RETRIED_5XX and retries_left:
        return Decision(Then.RETRY, wait=Backoff(state.retries + 1) if retry_after is None else retry_after)
    return Decision(Then.RAISE)


def _failed_for_good(client: str, state: RequestState, aside: SetAside) -> Decision:
    """The client is set aside; another takes the request if one can (never for a pinned one)."""
    return Decision(Then.ELSEWHERE if state.another_than(client) else Then.RAISE, aside=aside)
