"""The retry rules as a table: each row is one rule, stated in its id, for client "a" of a request."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.genesys.retry import (
    Answer,
    Backoff,
    Decision,
    LoginFailed,
    NoAnswer,
    Outcome,
    Pause,
    RequestState,
    SetAside,
    Then,
    backoff,
    decide,
)

ALONE = RequestState(("a",), max_retries=3)  # the exporter's only client
SHARED = RequestState(("a", "b"), max_retries=3)  # "b" could take the request
B_FAILED = SHARED.failed_by("b")  # "b" failed it already: nobody left
PINNED = RequestState(("a", "b"), max_retries=3, pinned=True)  # "b" is there, but the request is "a"'s
LAST = SHARED.retried().retried().retried()  # every retry spent

RENEWED = "HTTP 401 with a new token"
DAILY_CAP = SetAside("daily cap", at_least=3600)


def row(outcome: Outcome, state: RequestState, expected: Decision, rule: str) -> object:
    return pytest.param(outcome, state, expected, id=rule)


ROWS = [
    row(Answer(200), SHARED, Decision(Then.DELIVER), "2xx: the body is the answer"),
    row(Answer(204), LAST, Decision(Then.DELIVER), "2xx after every retry is still the answer"),
    # 401
    row(Answer(401), SHARED, Decision(Then.RENEW), "401 first time: a new token and one replay"),
    row(
        Answer(401),
        SHARED.renewed_by("b"),
        Decision(Then.RENEW),
        "401 renews once per client: another client's renewal does not count",
    ),
    row(
        Answer(401),
        LAST,
        Decision(Then.RENEW),
        "401 renewal is not a retry: it happens with retries spent",
    ),
    row(
        Answer(401),
        SHARED.renewed_by("a"),
        Decision(Then.ELSEWHERE, aside=SetAside(RENEWED)),
        "401 after renewal: the client is set aside and another client takes it",
    ),
    row(
        Answer(401),
        ALONE.renewed_by("a"),
        Decision(Then.RAISE, aside=SetAside(RENEWED)),
        "401 after renewal with no other client: set aside all the same, and raised",
    ),
    row(
        Answer(401),
        B_FAILED.renewed_by("a"),
        Decision(Then.RAISE, aside=SetAside(RENEWED)),
        "401 after renewal when the other client failed the request too: raised",
    ),
    # 429
    row(
        Answer(429, retry_after=7),
        SHARED,
        Decision(Then.RETRY, pause=Pause(7, retry_after=7)),
        "429 with Retry-After: the client's budget pauses that long and the request is retried",
    ),
    row(
        Answer(429),
        SHARED,
        Decision(Then.RETRY, pause=Pause(3, retry_after=3)),
        "429 without Retry-After pauses 3 s, as the official SDKs do",
    ),
    row(
        Answer(429, retry_after=180),
        SHARED,
        Decision(Then.RETRY, pause=Pause(180, retry_after=180)),
        "429 of exactly 180 s is a window, not a daily cap: waited out",
    ),
    row(
        Answer(429, retry_after=7),
        LAST,
        Decision(Then.RAISE, pause=Pause(7, retry_after=7)),
        "429 on the last attempt: the budget still pauses, and the request is raised",
    ),
    row(
        Answer(429, retry_after=3600),
        SHARED,
        Decision(Then.ELSEWHERE, pause=Pause(180, retry_after=3600), aside=DAILY_CAP),
        "429 over 180 s is a daily cap: not waited out, another client takes it",
    ),
    row(
        Answer(429, retry_after=3600),
        LAST,
        Decision(Then.ELSEWHERE, pause=Pause(180, retry_after=3600), aside=DAILY_CAP),
        "429 daily cap goes elsewhere with retries spent: moving is not a retry",
    ),
    row(
        Answer(429, retry_after=3600),
        ALONE,
        Decision(Then.RAISE, pause=Pause(180, retry_after=3600), aside=DAILY_CAP),
        "429 daily cap with no other client: raised at once, the client set aside until it ends",
    ),
    row(
        Answer(429, retry_after=3600),
        B_FAILED,
        Decision(Then.RAISE, pause=Pause(180, retry_after=3600), aside=DAILY_CAP),
        "429 daily cap when the other client failed the request too: raised",
    ),
    # 5xx
    *(
        row(
            Answer(status, retry_after=5),
            SHARED,
            Decision(Then.RETRY, wait=5),
            f"{status} with Retry-After: this request waits it, then is retried",
        )
        for status in (502, 503, 504)
    ),
    *(
        row(
            Answer(status),
            SHARED,
            Decision(Then.RETRY, wait=Backoff(1)),
            f"{status} without Retry-After: a jittered backoff for the first retry",
        )
        for status in (502, 503, 504)
    ),
    row(
        Answer(503),
        SHARED.retried().retried(),
        Decision(Then.RETRY, wait=Backoff(3)),
        "5xx backoff grows with the retries spent",
    ),
    row(
        Answer(503, retry_after=0),
        SHARED,
        Decision(Then.RETRY, wait=0),
        "5xx with Retry-After 0: retried without waiting, not backed off",
    ),
    *(
        row(Answer(status), LAST, Decision(Then.RAISE), f"{status} after every retry is raised")
        for status in (502, 503, 504)
    ),
    row(Answer(500), SHARED, Decision(Then.RAISE), "500 is raised at once: only 502, 503 and 504 are passing faults"),
    # other 4xx
    *(
        row(Answer(status), SHARED, Decision(Then.RAISE), f"{status} is the request's fault: never retried")
        for status in (400, 403, 404)
    ),
    row(
        Answer(403, retry_after=5),
        SHARED,
        Decision(Then.RAISE),
        "403 is never retried, whatever its Retry-After",
    ),
    # no answer
    row(NoAnswer(), SHARED, Decision(Then.RETRY, wait=Backoff(1)), "no answer: retried after a backoff"),
    row(
        NoAnswer(),
        SHARED.retried().retried(),
        Decision(Then.RETRY, wait=Backoff(3)),
        "no answer under max retries: the last retry backs off longest",
    ),
    row(NoAnswer(), LAST, Decision(Then.RAISE), "no answer at max retries: raised"),
    # login
    row(
        LoginFailed("refused"),
        SHARED,
        Decision(Then.ELSEWHERE, aside=SetAside("login failed: refused")),
        "login failed: the client is set aside and another client takes the request",
    ),
    row(
        LoginFailed("refused"),
        ALONE,
        Decision(Then.RAISE, aside=SetAside("login failed: refused")),
        "login failed with no other client: the login's error is raised",
    ),
    # pinned
    row(
        Answer(401),
        PINNED,
        Decision(Then.RENEW),
        "pinned 401 first time: renewed on its own client",
    ),
    row(
        Answer(401),
        PINNED.renewed_by("a"),
        Decision(Then.RAISE, aside=SetAside(RENEWED)),
        "pinned 401 after renewal never goes elsewhere: set aside, and raised",
    ),
    row(
        Answer(429, retry_after=3600),
        PINNED,
        Decision(Then.RAISE, pause=Pause(180, retry_after=3600), aside=DAILY_CAP),
        "pinned daily cap never goes elsewhere: raised",
    ),
    row(
        LoginFailed("refused"),
        PINNED,
        Decision(Then.RAISE, aside=SetAside("login failed: refused")),
        "pinned login failure never goes elsewhere: raised",
    ),
    row(
        Answer(503),
        PINNED,
        Decision(Then.RETRY, wait=Backoff(1)),
        "pinned 5xx is retried like any other, on its own client",
    ),
]


@pytest.mark.parametrize(("outcome", "state", "expected"), ROWS)
def test_retry_rules(outcome: Outcome, state: RequestState, expected: Decision) -> None:
    assert decide(outcome, "a", state) == expected


@given(attempt=st.integers(0, 12), cap=st.sampled_from([1.0, 30.0, 60.0, math.inf]), least=st.sampled_from([0.0, 0.5]))
def test_backoff_doubles_up_to_its_cap_and_jitters_down_to_its_least_share(attempt: int, cap: float, least: float):
    step = min(cap, 2.0**attempt)
    assert least * step <= backoff(attempt, cap=cap, least=least) <= step


def test_an_api_retry_backs_off_at_most_30_s_and_never_zero():
    assert all(0.5 <= Backoff(retry).seconds() <= 30 for retry in range(12))
    assert all(Backoff(retry).seconds() >= 15 for retry in range(5, 12))  # capped: 30 s, half of it at least
