"""The client's rules from the brief (§1, §3, §4), against mocked responses on a fake clock."""

from __future__ import annotations

import asyncio
import base64
import re
import sys
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TypeVar

import pytest
from aioresponses import aioresponses
from pydantic import SecretStr
from yarl import URL

from exporter.clock import FakeClock
from exporter.config import OAuthClient
from exporter.genesys.client import GenesysClient, retry_after_seconds
from exporter.genesys.endpoints import (
    CONVERSATION_AGGREGATES,
    NOTIFICATION_CHANNELS,
    QUEUE_MEMBERS,
    QUEUE_OBSERVATIONS,
    ROUTING_QUEUES,
)
from exporter.genesys.errors import (
    BadRequest,
    CredentialsRejected,
    GenesysError,
    MalformedResponse,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    TokenRejected,
    TransportError,
)
from exporter.genesys.models import AGGREGATE_RESPONSE
from exporter.genesys.notifications import create_channel
from exporter.scheduling.budget import RateBudget

API = "https://api.example.test"
LOGIN = "https://login.example.test"
TOKEN_URL = f"{LOGIN}/oauth/token"
OBS_URL = f"{API}/api/v2/analytics/queues/observations/query"
SECRET = "MARKER-client-secret-91c2"
T = TypeVar("T")


@pytest.fixture
def mocked() -> Any:
    with aioresponses() as m:
        yield m


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[GenesysClient]:
    c = GenesysClient(
        api_url=API,
        login_url=LOGIN,
        clients=[(OAuthClient("cid", SecretStr(SECRET)), RateBudget(clock, requests_per_minute=300, headroom=0.1))],
        clock=clock,
    )
    yield c
    await c.close()


def give_token(m: Any, token: str = "tok-1", expires_in: int = 86400, repeat: bool = False) -> None:
    m.post(TOKEN_URL, payload={"access_token": token, "token_type": "bearer", "expires_in": expires_in}, repeat=repeat)


def calls(m: Any, method: str, url: str) -> list[Any]:
    return [c for (meth, u), cs in m.requests.items() if meth == method and str(u).split("?")[0] == url for c in cs]


async def run(clock: FakeClock, work: Awaitable[T], step: float = 0.5, limit: float = 900) -> T:
    """Drive fake time forward until `work` finishes."""
    task = asyncio.ensure_future(work)
    waited = 0.0
    while not task.done() and waited < limit:
        await clock.advance(step)
        waited += step
    return await task


async def test_token_is_reused_then_renewed_at_90_percent(client, mocked, clock):
    give_token(mocked, "tok-1", expires_in=100)
    give_token(mocked, "tok-2", expires_in=100)
    mocked.post(OBS_URL, payload={"results": []}, repeat=True)
    await client.post(QUEUE_OBSERVATIONS, {})
    await clock.advance(89)
    await client.post(QUEUE_OBSERVATIONS, {})
    assert len(calls(mocked, "POST", TOKEN_URL)) == 1
    await clock.advance(2)
    await client.post(QUEUE_OBSERVATIONS, {})
    token_calls = calls(mocked, "POST", TOKEN_URL)
    assert len(token_calls) == 2
    auth = [c.kwargs["headers"]["Authorization"] for c in calls(mocked, "POST", OBS_URL)]
    assert auth == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert token_calls[0].kwargs["data"] == {"grant_type": "client_credentials"}
    assert (
        token_calls[0].kwargs["headers"]["Authorization"]
        == "Basic " + base64.b64encode(f"cid:{SECRET}".encode()).decode()
    )


async def test_one_token_request_however_many_callers_wait(client, mocked):
    give_token(mocked)
    mocked.post(OBS_URL, payload={"results": []}, repeat=True)
    await asyncio.gather(*(client.post(QUEUE_OBSERVATIONS, {}) for _ in range(20)))
    assert len(calls(mocked, "POST", TOKEN_URL)) == 1
    assert len(calls(mocked, "POST", OBS_URL)) == 20


async def test_401_renews_once_and_replays_once(client, mocked):
    give_token(mocked, "old")
    give_token(mocked, "new")
    mocked.post(OBS_URL, status=401, payload={"code": "credentials.expired", "status": 401})
    mocked.post(OBS_URL, payload={"results": [1]})
    assert await client.post(QUEUE_OBSERVATIONS, {}) == {"results": [1]}
    auth = [c.kwargs["headers"]["Authorization"] for c in calls(mocked, "POST", OBS_URL)]
    assert auth == ["Bearer old", "Bearer new"]


async def test_a_second_401_is_a_credentials_problem(client, mocked):
    give_token(mocked, repeat=True)
    mocked.post(OBS_URL, status=401, payload={"code": "bad.credentials", "contextId": "ctx-1"}, repeat=True)
    with pytest.raises(TokenRejected, match="revoked") as caught:
        await client.post(QUEUE_OBSERVATIONS, {})
    assert caught.value.context_id == "ctx-1"
    assert len(calls(mocked, "POST", OBS_URL)) == 2


async def test_bad_credentials_say_what_to_check(client, mocked):
    mocked.post(TOKEN_URL, status=401, payload={"error": "invalid_client", "description": "client not found"})
    with pytest.raises(CredentialsRejected) as caught:
        await client.post(QUEUE_OBSERVATIONS, {})
    message = str(caught.value)
    assert "client id and secret" in message and "region" in message and "client not found" in message
    assert client.stats.requests[("oauth_token", "401")] == 1


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [({"Retry-After": "7"}, 7.0), ({}, 3.0)],
)
async def test_429_waits_retry_after_then_succeeds(client, mocked, clock, headers, expected_wait):
    give_token(mocked)
    mocked.post(OBS_URL, status=429, headers=headers, payload={"code": "too.many.requests.retry.after"})
    mocked.post(OBS_URL, payload={"ok": True})
    started = clock.monotonic()
    assert await run(clock, client.post(QUEUE_OBSERVATIONS, {}), step=0.25) == {"ok": True}
    assert expected_wait <= clock.monotonic() - started <= expected_wait + 0.5
    assert client.budget.rate_limited_total == 1
    assert client.stats.requests[("queue_observations", "429")] == 1


def test_retry_after_as_http_date():
    now = datetime(2026, 5, 14, 10, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 5, 14, 10, 0, 42, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds(later, now.timestamp()) == 42.0
    assert retry_after_seconds("nonsense", now.timestamp()) is None


async def test_daily_cap_429_is_not_waited_out(client, mocked, clock):
    give_token(mocked)
    mocked.post(OBS_URL, status=429, headers={"Retry-After": "3600"}, payload={"code": "too.many.requests.retry.after"})
    started = clock.monotonic()
    with pytest.raises(RateLimited, match="daily cap") as caught:
        await client.post(QUEUE_OBSERVATIONS, {})
    assert caught.value.retry_after == 3600
    assert clock.monotonic() == started
    assert len(calls(mocked, "POST", OBS_URL)) == 1


async def test_a_429_pauses_every_other_request(client, mocked, clock):
    give_token(mocked)
    mocked.post(OBS_URL, status=429, headers={"Retry-After": "10"})
    mocked.post(OBS_URL, payload={"first": True})
    mocked.get(re.compile(rf"{re.escape(API)}/api/v2/routing/queues.*"), payload={"entities": []})
    first = asyncio.ensure_future(client.post(QUEUE_OBSERVATIONS, {}))
    await clock.advance(0.1)
    other = asyncio.ensure_future(client.get(ROUTING_QUEUES))
    await clock.advance(9)
    assert not other.done()  # still held by the pause
    await clock.advance(1.5)
    assert await other == {"entities": []}
    assert await first == {"first": True}


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_5xx_backs_off_then_gives_up(client, mocked, clock, status):
    give_token(mocked)
    mocked.post(OBS_URL, status=status, payload={"code": "service.unavailable"}, repeat=True)
    with pytest.raises(ServerError):
        await run(clock, client.post(QUEUE_OBSERVATIONS, {}))
    assert len(calls(mocked, "POST", OBS_URL)) == 4  # first try + 3 retries


async def test_lost_connections_are_retried_then_reported(client, mocked, clock):
    give_token(mocked)
    mocked.post(OBS_URL, exception=ConnectionResetError("reset by peer"), repeat=True)
    with pytest.raises(TransportError, match="no answer"):
        await run(clock, client.post(QUEUE_OBSERVATIONS, {}))
    assert client.stats.requests[("queue_observations", "error")] == 4


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (
            400,
            {"code": "bad.request", "message": "metric oBogus unknown"},
            BadRequest,
            "rejected the queue_observations",
        ),
        (
            403,
            {
                "code": "missing.permissions",
                "message": "You are missing the following permission(s): analytics:queueObservation:view",
                "messageParams": {"permissions": "analytics:queueObservation:view"},
            },
            PermissionDenied,
            "lacks analytics:queueObservation:view (needed for live queue metrics",
        ),
        (
            403,
            {"code": "missing.permissions", "message": "denied"},
            PermissionDenied,
            "lacks analytics:queueObservation",
        ),
        (404, {"code": "not.found", "message": "queue gone"}, NotFound, "not found"),
    ],
)
async def test_client_errors_are_typed_and_never_retried(client, mocked, status, body, error, text):
    give_token(mocked)
    mocked.post(OBS_URL, status=status, payload={**body, "status": status, "contextId": "ctx-9"}, repeat=True)
    with pytest.raises(error) as caught:
        await client.post(QUEUE_OBSERVATIONS, {})
    assert text in str(caught.value)
    assert "ctx-9" in str(caught.value)
    assert len(calls(mocked, "POST", OBS_URL)) == 1


async def test_missing_any_permission_lists_the_alternatives(client, mocked):
    give_token(mocked)
    url = re.compile(rf"{re.escape(API)}/api/v2/routing/queues/q1/members.*")
    mocked.get(url, status=403, payload={"code": "missing.any.permissions", "message": "no"})
    with pytest.raises(PermissionDenied) as caught:
        await client.get(QUEUE_MEMBERS, queueId="q1")
    assert caught.value.permissions == QUEUE_MEMBERS.permissions
    assert "any of routing:queue:view, routing:queue:edit" in str(caught.value)


async def test_non_json_success_is_malformed(client, mocked):
    give_token(mocked)
    mocked.post(OBS_URL, body="<html>maintenance</html>", status=200)
    with pytest.raises(MalformedResponse):
        await client.post(QUEUE_OBSERVATIONS, {})


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("<html>maintenance</html>", "response is not JSON"),
        (
            '{"results": [{"data": [{"metrics": [{"metric": "tHandle", "stats": {"count": "2"}}]}]}]}',
            "the wrong shape at results[0].data[0].metrics[0].stats.count: Expected `int | null`, got `str`",
        ),
    ],
)
async def test_an_aggregate_answer_that_does_not_fit_is_malformed_and_says_where(client, mocked, answer, reason):
    """The aggregates are checked by msgspec, not pydantic: the same error, counted the same way."""
    give_token(mocked)
    mocked.post(f"{API}{CONVERSATION_AGGREGATES.path}", body=answer, status=200)
    with pytest.raises(MalformedResponse) as caught:
        await client.post_as(CONVERSATION_AGGREGATES, {}, AGGREGATE_RESPONSE)
    assert reason in str(caught.value)
    assert client.stats.parse_errors[CONVERSATION_AGGREGATES.name] == 1


async def test_numbered_pages_come_concurrently_and_all_arrive(client, mocked):
    give_token(mocked)
    url = re.compile(rf"{re.escape(API)}/api/v2/routing/queues\?.*")
    for n in (1, 2, 3):
        mocked.get(url, payload={"entities": [{"id": f"q{n}"}], "pageNumber": n, "pageCount": 3})
    pages = [p async for p in client.pages(ROUTING_QUEUES, params={"divisionId": ["d1", "d2"]}, page_size=100)]
    assert sorted(p["entities"][0]["id"] for p in pages) == ["q1", "q2", "q3"]
    sent = [URL(str(u)) for (meth, u) in mocked.requests if meth == "GET"]
    assert sorted(u.query["pageNumber"] for u in sent) == ["1", "2", "3"]
    assert all(u.query.getall("divisionId") == ["d1", "d2"] and u.query["pageSize"] == "100" for u in sent)


async def test_next_uri_is_followed_until_absent(client, mocked):
    give_token(mocked)
    base = f"{API}/api/v2/routing/queues/q1/members"
    mocked.get(
        f"{base}?pageSize=100",
        payload={"entities": [1], "nextUri": "/api/v2/routing/queues/q1/members?pageSize=100&pageNumber=2"},
    )
    mocked.get(
        f"{base}?pageNumber=2&pageSize=100",
        payload={"entities": [2], "nextUri": "/api/v2/routing/queues/q1/members?pageSize=100&pageNumber=3"},
    )
    mocked.get(f"{base}?pageNumber=3&pageSize=100", payload={"entities": [3]})
    pages = [p async for p in client.pages_by_next_uri(QUEUE_MEMBERS, queueId="q1")]
    assert [p["entities"] for p in pages] == [[1], [2], [3]]


async def test_a_page_handed_on_is_not_held_by_the_listing_while_the_next_is_asked_for(client, mocked):
    """Thousands of listings wait for their next page at once (a member listing per queue)."""
    give_token(mocked)
    base = f"{API}/api/v2/routing/queues/q1/members"
    handed: list[Any] = []
    holders: list[int] = []

    def asked(*_: Any, **__: Any) -> None:  # references to the page handed last, besides `handed`'s and the call's
        holders.append(sys.getrefcount(handed[-1]) - 2)

    after = "/api/v2/routing/queues/q1/members?pageSize=100&pageNumber="
    mocked.get(f"{base}?pageSize=100", payload={"entities": [1], "nextUri": f"{after}2"})
    mocked.get(f"{base}?pageNumber=2&pageSize=100", payload={"entities": [2], "nextUri": f"{after}3"}, callback=asked)
    mocked.get(f"{base}?pageNumber=3&pageSize=100", payload={"entities": [3]}, callback=asked)
    async for page in client.pages_by_next_uri(QUEUE_MEMBERS, queueId="q1"):
        handed.append(page)
        del page
    assert [p["entities"] for p in handed] == [[1], [2], [3]]
    assert holders == [0, 0]


async def test_next_uri_to_another_host_is_refused(client, mocked):
    give_token(mocked)
    base = f"{API}/api/v2/routing/queues/q1/members"
    mocked.get(f"{base}?pageSize=100", payload={"entities": [1], "nextUri": "https://evil.example/steal?pageNumber=2"})
    with pytest.raises(MalformedResponse, match="away from the API host"):
        _ = [p async for p in client.pages_by_next_uri(QUEUE_MEMBERS, queueId="q1")]
    assert not any("evil" in str(u) for (_, u) in mocked.requests)


async def test_secret_and_token_never_in_errors_or_reprs(client, mocked):
    mocked.post(TOKEN_URL, status=401, payload={"error": "invalid_client"})
    with pytest.raises(CredentialsRejected) as caught:
        await client.post(QUEUE_OBSERVATIONS, {})
    for text in (str(caught.value), repr(caught.value), repr(client), repr(client.tokens), repr(client.budget)):
        assert SECRET not in text


async def test_a_401_with_a_new_token_sets_the_client_aside_and_another_client_answers(clock, mocked):
    budgets = [RateBudget(clock) for _ in range(2)]
    clients = [(OAuthClient(name, SecretStr(SECRET)), budget) for name, budget in zip("ab", budgets, strict=True)]
    async with GenesysClient(api_url=API, login_url=LOGIN, clients=clients, clock=clock) as client:
        give_token(mocked, repeat=True)
        mocked.post(OBS_URL, status=401, payload={"code": "bad.credentials"})  # client a
        mocked.post(OBS_URL, status=401, payload={"code": "bad.credentials"})  # client a, its new token
        mocked.post(OBS_URL, payload={"ok": True})  # client b
        assert await client.post(QUEUE_OBSERVATIONS, {}) == {"ok": True}
        assert client.budget.in_use() == ("b",)
        assert client.stats.by_client[("queue_observations", "401", "a")] == 2
        assert client.stats.by_client[("queue_observations", "200", "b")] == 1
        assert len(calls(mocked, "POST", TOKEN_URL)) == 3  # a, a renewed, b


async def test_channel_calls_go_to_the_client_they_name_and_only_to_it(clock, mocked):
    clients = [(OAuthClient(name, SecretStr(SECRET)), RateBudget(clock)) for name in "abc"]
    async with GenesysClient(api_url=API, login_url=LOGIN, clients=clients, clock=clock) as client:
        give_token(mocked, repeat=True)
        mocked.post(f"{API}{NOTIFICATION_CHANNELS.path}", payload={"id": "c", "connectUri": "ws://x"}, repeat=True)
        await asyncio.gather(*(create_channel(client, as_client="b") for _ in range(4)))
        assert client.stats.by_client[("notification_channels", "200", "b")] == 4
        assert not client.stats.by_client[("notification_channels", "200", "a")]
        with pytest.raises(ValueError, match="as_client"):  # whose channel? with several clients, it must say
            await client.post(NOTIFICATION_CHANNELS, None)


async def test_a_pinned_request_that_fails_is_never_moved_to_another_client(clock, mocked):
    clients = [(OAuthClient(name, SecretStr(SECRET)), RateBudget(clock)) for name in "ab"]
    async with GenesysClient(api_url=API, login_url=LOGIN, clients=clients, clock=clock) as client:
        give_token(mocked, repeat=True)
        mocked.post(f"{API}{NOTIFICATION_CHANNELS.path}", status=401, payload={"code": "bad.credentials"}, repeat=True)
        with pytest.raises(GenesysError):
            await create_channel(client, as_client="a")
        assert client.stats.by_client[("notification_channels", "401", "a")] == 2  # the first token, and a new one
        assert not any(key[2] == "b" for key in client.stats.by_client)
        assert client.budget.in_use() == ("b",)  # set aside all the same: its polls go to b
