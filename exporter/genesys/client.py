"""The one way the exporter talks to the Genesys Cloud API.

Every request: a valid token, a place in a budget, one `aiohttp` session, and the rules of
brief §3-4. With several OAuth clients of the org, each has its own token and budget (a `Lane`),
and each request goes to the one its `BudgetGroup` picks: where it starts soonest, away from a
client that failed (`exporter.scheduling.group`). A notification channel is the client's own: a
`per_client` endpoint is pinned to the client the caller names (`as_client=`, its label), and a
failure there stays that client's (it is never retried on another, whose token cannot see the channel).

429/502/503/504 and lost connections are retried (our requests are idempotent reads) on
`Retry-After` or a jittered exponential backoff; a Retry-After over 180 s is a daily cap and is
not waited out; 4xx are never retried; a 401 gets one new token and one replay. Each response
counts in `stats` (by client) and feeds its client's budget the rate-limit headers.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
import msgspec
import structlog
from pydantic import BaseModel, ValidationError

from exporter import __version__, logs
from exporter.clock import Clock
from exporter.config import OAuthClient
from exporter.genesys.auth import TokenProvider
from exporter.genesys.endpoints import Endpoint
from exporter.genesys.errors import (
    DAILY_CAP_SECONDS,
    GenesysError,
    MalformedResponse,
    TransportError,
    error_from_response,
)
from exporter.scheduling.budget import RateBudget, current_caller
from exporter.scheduling.group import BudgetGroup

log = structlog.get_logger(__name__)

Params = Mapping[str, str | int | Sequence[str]]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Shape = type[T] | msgspec.json.Decoder[T]  # a model, or a decoder of structs (the large aggregate answers)
RETRYABLE = frozenset({429, 502, 503, 504})
DEFAULT_RETRY_AFTER = 3.0  # what the official SDKs wait on a 429 without Retry-After
MAX_BACKOFF = 30.0
NOT_JSON = "response is not JSON"
MAX_PAGES = 10_000  # a guard against a nextUri that never ends


@dataclass
class ApiStats:
    by_client: collections.Counter[tuple[str, str, str]] = field(default_factory=collections.Counter)
    parse_errors: collections.Counter[str] = field(default_factory=collections.Counter)  # by endpoint

    def count(self, endpoint: str, code: str, client: str) -> None:
        self.by_client[(endpoint, code, client)] += 1

    @property
    def requests(self) -> collections.Counter[tuple[str, str]]:
        """Responses by (endpoint, code), every client's together."""
        total: collections.Counter[tuple[str, str]] = collections.Counter()
        for (endpoint, code, _), n in self.by_client.items():
            total[(endpoint, code)] += n
        return total


@dataclass(frozen=True, slots=True)
class Lane:
    """One OAuth client's way to the API: its label (the `client` of the metrics), token and budget."""

    label: str
    tokens: TokenProvider
    budget: RateBudget


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


def backoff(attempt: int) -> float:
    """Jittered exponential: ~1, 2, 4 ... s, never zero, at most 30 s."""
    return random.uniform(0.5, 1.0) * min(MAX_BACKOFF, 2.0**attempt)


def _query(params: Params | None) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        if isinstance(value, str | int):
            pairs.append((key, str(value)))
        else:
            pairs.extend((key, str(v)) for v in value)
    return pairs


class GenesysClient:
    def __init__(
        self,
        *,
        api_url: str,
        login_url: str,
        clients: Sequence[tuple[OAuthClient, RateBudget]],
        clock: Clock,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        user_agent: str = f"genesys-exporter/{__version__}",
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._origin = urlsplit(self._api_url)[:2]
        self._clock = clock
        self._max_retries = max_retries
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(10.0, timeout))
        self._own_session = session is None
        self._session = session or aiohttp.ClientSession(headers={"User-Agent": user_agent})
        self.stats = ApiStats()
        self.lanes = tuple(
            Lane(
                oauth.label,
                TokenProvider(
                    self._session,
                    login_url,
                    oauth.client_id,
                    oauth.client_secret,
                    clock,
                    timeout=timeout,
                    on_response=functools.partial(self.stats.count, client=oauth.label),
                    on_token=logs.redact,
                ),
                budget,
            )
            for oauth, budget in clients
        )
        for oauth, _ in clients:
            logs.redact(oauth.client_secret.get_secret_value())
        self._lanes = {lane.label: lane for lane in self.lanes}
        self.budget = BudgetGroup(clock, {lane.label: lane.budget for lane in self.lanes})

    def __repr__(self) -> str:
        return f"GenesysClient(api_url={self._api_url!r}, clients={len(self.lanes)})"

    @property
    def tokens(self) -> TokenProvider:
        """The first client's token: the one `check` logs in with."""
        return self.lanes[0].tokens

    @property
    def labels(self) -> tuple[str, ...]:
        """The clients' labels in the order configured: what `as_client=` names."""
        return tuple(lane.label for lane in self.lanes)

    async def close(self) -> None:
        if self._own_session and not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> GenesysClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def get(self, endpoint: Endpoint, *, params: Params | None = None, **path_params: str) -> Any:
        url = self._url(endpoint, path_params)
        raw, context_id = await self._send(endpoint, url, _query(params), None, self._pin(endpoint, None))
        return self._json(endpoint, raw, context_id)

    async def post(self, endpoint: Endpoint, body: Any, **path_params: str) -> Any:
        url = self._url(endpoint, path_params)
        raw, context_id = await self._send(endpoint, url, [], body, self._pin(endpoint, None))
        return self._json(endpoint, raw, context_id)

    async def get_as(
        self, endpoint: Endpoint, shape: Shape[T], *, params: Params | None = None, **path_params: str
    ) -> T:
        """GET, checked against `shape`: a page of the wrong shape is counted and raised, never half-read."""
        return await self._send_as(endpoint, shape, None, params, path_params)

    async def post_as(self, endpoint: Endpoint, body: Any, shape: Shape[T], **path_params: str) -> T:
        return await self._send_as(endpoint, shape, body, None, path_params)

    async def send_as(
        self,
        endpoint: Endpoint,
        shape: Shape[T],
        *,
        body: Any = None,
        params: Params | None = None,
        as_client: str | None = None,
        **path_params: str,
    ) -> T:
        """The endpoint's own method with a query and a body, the answer checked against `shape`;
        `as_client` pins it to one client (required for a `per_client` endpoint when there are several)."""
        return await self._send_as(endpoint, shape, body, params, path_params, as_client)

    async def _send_as(
        self,
        endpoint: Endpoint,
        shape: Shape[T],
        body: Any,
        params: Params | None,
        path_params: Mapping[str, str],
        as_client: str | None = None,
    ) -> T:
        url = self._url(endpoint, path_params)
        raw, context_id = await self._send(endpoint, url, _query(params), body, self._pin(endpoint, as_client))
        return self._checked(endpoint, lambda: _validate_json(shape, raw or b"null"), context_id)

    def websocket(self, url: str, *, heartbeat: float | None = None) -> Any:
        """A WebSocket on the client's session (a notification channel's `connectUri`), outside the budget:
        a socket is not a request. Used as `async with client.websocket(url) as ws`."""
        return self._session.ws_connect(url, heartbeat=heartbeat, timeout=aiohttp.ClientWSTimeout(ws_close=2.0))

    def validate(self, endpoint: Endpoint, data: Any, model: type[M], context_id: str | None = None) -> M:
        """A page already decoded (paging reads its totals first), checked against `model`."""
        return self._checked(endpoint, lambda: model.model_validate(data), context_id)

    def _checked(self, endpoint: Endpoint, parse: Callable[[], T], context_id: str | None) -> T:
        try:
            return parse()
        except ValidationError as error:
            first = error.errors(include_input=False, include_url=False)[0]
            if first["type"] == "json_invalid":
                reason = NOT_JSON
            else:
                where = ".".join(str(part) for part in first["loc"]) or "the body"
                reason = f"response of the wrong shape at {where}: {first['msg']}"
        except msgspec.ValidationError as error:  # "Expected `int`, got `str` - at `$.results[0]...`"
            message, _, where = str(error).partition(" - at ")
            reason = f"response of the wrong shape at {where.strip('`').removeprefix('$.') or 'the body'}: {message}"
        except msgspec.DecodeError:
            reason = NOT_JSON
        self.stats.parse_errors[endpoint.name] += 1
        raise MalformedResponse(endpoint.name, reason, status=200, context_id=context_id) from None

    def _json(self, endpoint: Endpoint, raw: bytes, context_id: str | None) -> Any:
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            self.stats.parse_errors[endpoint.name] += 1
            raise MalformedResponse(endpoint.name, NOT_JSON, status=200, context_id=context_id) from None

    async def pages(
        self, endpoint: Endpoint, *, params: Params | None = None, page_size: int = 100, **path_params: str
    ) -> AsyncGenerator[Any, None]:
        """Numbered paging (`pageNumber` -> `pageCount`): page 1, then all the others at once, as they arrive."""
        base = {**(params or {}), "pageSize": page_size}
        first = await self.get(endpoint, params={**base, "pageNumber": 1}, **path_params)
        yield first
        page_count = first.get("pageCount") if isinstance(first, Mapping) else None
        if not isinstance(page_count, int):
            async for page in self._follow(endpoint, first):  # no totals after all: follow nextUri
                yield page
            return
        tasks = [
            asyncio.ensure_future(self.get(endpoint, params={**base, "pageNumber": n}, **path_params))
            for n in range(2, min(page_count, MAX_PAGES) + 1)
        ]
        try:
            for next_page in asyncio.as_completed(tasks):
                yield await next_page
        finally:
            for task in tasks:
                task.cancel()

    async def pages_by_next_uri(
        self, endpoint: Endpoint, *, params: Params | None = None, page_size: int = 100, **path_params: str
    ) -> AsyncIterator[Any]:
        """`nextUri` paging without totals: one page after another until a page has no `nextUri`."""
        first = await self.get(endpoint, params={**(params or {}), "pageSize": page_size}, **path_params)
        yield first
        async for page in self._follow(endpoint, first):
            yield page

    async def _follow(self, endpoint: Endpoint, page: Any) -> AsyncIterator[Any]:
        seen: set[str] = set()
        while isinstance(page, Mapping) and isinstance(next_uri := page.get("nextUri"), str) and next_uri:
            url = urljoin(self._api_url + "/", next_uri)
            if urlsplit(url)[:2] != self._origin:
                raise MalformedResponse(endpoint.name, "nextUri points away from the API host; not followed")
            if url in seen or len(seen) >= MAX_PAGES:
                raise MalformedResponse(endpoint.name, "nextUri paging does not end; stopped")
            seen.add(url)
            raw, context_id = await self._send(endpoint, url, [], None)
            page = self._json(endpoint, raw, context_id)
            yield page

    def _url(self, endpoint: Endpoint, path_params: Mapping[str, str]) -> str:
        return self._api_url + endpoint.url_path(**path_params)

    def _pin(self, endpoint: Endpoint, as_client: str | None) -> str | None:
        """The client a request is pinned to: the one named, or for a `per_client` endpoint the only one."""
        if as_client is not None:
            if as_client not in self._lanes:
                raise ValueError(f"no OAuth client {as_client!r} in this exporter")
            return as_client
        if endpoint.per_client:
            if len(self.lanes) > 1:
                raise ValueError(f"{endpoint.name} answers for one OAuth client: name it (as_client=)")
            return self.lanes[0].label
        return None

    async def _send(
        self, endpoint: Endpoint, url: str, query: list[tuple[str, str]], body: Any, pinned: str | None = None
    ) -> tuple[bytes, str | None]:
        """The body of a 2xx answer and its `inin-correlation-id`, after the retry rules.

        Each attempt goes to the client the group picks. A client that fails this request for good
        (its login refused, a 401 with a new token, a daily cap) is set aside and the request goes
        to another, without counting as a retry; with none left, the error is raised as it came. A
        request `pinned` to a client stays on it: it is set aside all the same, and the error raised.
        """
        attempt = 0
        renewed: set[str] = set()  # clients whose token this request has renewed after a 401
        failed: set[str] = set()  # clients that failed it for good
        while True:
            lane = self._lanes[pinned] if pinned is not None else self._lane(failed)
            token = await self._token(lane, failed, pinned)
            if token is None:
                continue
            async with lane.budget.slot():
                try:
                    async with self._session.request(
                        endpoint.method,
                        url,
                        params=query,
                        json=body,
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                        timeout=self._timeout,
                    ) as response:
                        status, headers, raw = response.status, response.headers, await response.read()
                except (aiohttp.ClientError, OSError, TimeoutError) as error:
                    self.stats.count(endpoint.name, "error", lane.label)
                    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                    if attempt >= self._max_retries:
                        raise TransportError(endpoint.name, f"no answer from Genesys ({reason})") from None
                    attempt += 1
                    await self._wait(endpoint, backoff(attempt), reason=reason, attempt=attempt)
                    continue
            self.stats.count(endpoint.name, str(status), lane.label)
            lane.budget.observe(headers)
            context_id = headers.get("inin-correlation-id")
            if 200 <= status < 300:
                self.budget.succeeded(lane.label)
                return raw, context_id
            payload = _json_or_none(raw)
            if status == 401 and lane.label not in renewed:
                renewed.add(lane.label)
                await self._token(lane, failed, pinned, rejected=token)
                continue  # the replay, on this client's new token or, if its login failed, another client
            retry_after = retry_after_seconds(headers.get("Retry-After"), self._clock.time())
            if status == 401 and self._elsewhere(lane, failed, pinned, "HTTP 401 with a new token"):
                continue
            if status == 429:
                wait = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
                self.budget.rate_limited(lane.label, min(wait, DAILY_CAP_SECONDS))  # its requests wait, this one too
                log.warning(
                    "rate limited by Genesys",
                    endpoint=endpoint.name,
                    client=lane.label,
                    retry_after_s=wait,
                    allowed=headers.get("inin-ratelimit-allowed"),
                    context_id=context_id,
                )
                if wait > DAILY_CAP_SECONDS and self._elsewhere(lane, failed, pinned, "daily cap", at_least=wait):
                    continue
                if wait <= DAILY_CAP_SECONDS and attempt < self._max_retries:
                    attempt += 1
                    continue  # to the client that starts it soonest: this one's slot() holds it until the pause ends
            elif status in RETRYABLE and attempt < self._max_retries:
                attempt += 1
                wait = retry_after if retry_after is not None else backoff(attempt)
                await self._wait(endpoint, wait, reason=f"HTTP {status}", attempt=attempt, context_id=context_id)
                continue
            raise error_from_response(endpoint, status, payload, context_id, retry_after)

    async def _token(self, lane: Lane, failed: set[str], pinned: str | None, rejected: str | None = None) -> str | None:
        """The client's token (a new one after a 401 to `rejected`); None when its login failed and
        another client can take the request, which the client is set aside for."""
        try:
            return await (lane.tokens.token() if rejected is None else lane.tokens.renew(rejected))
        except GenesysError as error:
            if self._elsewhere(lane, failed, pinned, f"login failed: {error}"):
                return None
            raise

    def _lane(self, failed: Collection[str]) -> Lane:
        """The client for the next attempt of a request not pinned: the group's pick (the request
        gives up when none is left: `_elsewhere`)."""
        label = self.budget.choose(current_caller.get(), exclude=failed)
        assert label is not None
        return self._lanes[label]

    def _elsewhere(
        self, lane: Lane, failed: set[str], pinned: str | None, reason: str, *, at_least: float = 0.0
    ) -> bool:
        """Set the client aside after it failed this request; whether another client can take it
        (never for a pinned request)."""
        self.budget.set_aside(lane.label, reason, at_least)
        failed.add(lane.label)
        if pinned is not None:
            return False
        return self.budget.choose(current_caller.get(), exclude=failed) is not None

    async def _wait(self, endpoint: Endpoint, seconds: float, **why: Any) -> None:
        log.warning("request failed, retrying", endpoint=endpoint.name, wait_s=round(seconds, 2), **why)
        await self._clock.sleep(seconds)


def _validate_json(shape: Shape[T], raw: bytes) -> T:
    """Bytes straight to checked objects (pydantic-core or msgspec): no intermediate dicts from `json.loads`."""
    if isinstance(shape, msgspec.json.Decoder):
        return shape.decode(raw)
    return shape.model_validate_json(raw)  # type: ignore[attr-defined, no-any-return]


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
