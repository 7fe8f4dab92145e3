"""The one way the exporter talks to the Genesys Cloud API.

Every request: a valid token, a place in the shared budget, one `aiohttp` session, and the rules of
brief §3-4. 429/502/503/504 and lost connections are retried (our requests are idempotent reads)
on `Retry-After` or a jittered exponential backoff; a Retry-After over 180 s is a daily cap and is
not waited out; 4xx are never retried; a 401 gets one new token and one replay. Each response
counts in `stats` and feeds the budget its rate-limit headers.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
import structlog
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from exporter import __version__
from exporter import logging as exporter_logging
from exporter.clock import Clock
from exporter.genesys.auth import TokenProvider
from exporter.genesys.budget import RateBudget
from exporter.genesys.endpoints import Endpoint
from exporter.genesys.errors import DAILY_CAP_SECONDS, MalformedResponse, TransportError, error_from_response

log = structlog.get_logger(__name__)

Params = Mapping[str, str | int | Sequence[str]]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Shape = type[T] | TypeAdapter[T]  # a model, or an adapter for plain checked dicts (the large aggregate answers)
RETRYABLE = frozenset({429, 502, 503, 504})
DEFAULT_RETRY_AFTER = 3.0  # what the official SDKs wait on a 429 without Retry-After
MAX_BACKOFF = 30.0
MAX_PAGES = 10_000  # a guard against a nextUri that never ends


@dataclass
class ApiStats:
    requests: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    parse_errors: collections.Counter[str] = field(default_factory=collections.Counter)  # by endpoint

    def count(self, endpoint: str, code: str) -> None:
        self.requests[(endpoint, code)] += 1


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
        client_id: str,
        client_secret: SecretStr,
        clock: Clock,
        budget: RateBudget,
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
        self.budget = budget
        self.stats = ApiStats()
        self.tokens = TokenProvider(
            self._session,
            login_url,
            client_id,
            client_secret,
            clock,
            timeout=timeout,
            on_response=self.stats.count,
            on_token=exporter_logging.redact,
        )
        exporter_logging.redact(client_secret.get_secret_value())

    def __repr__(self) -> str:
        return f"GenesysClient(api_url={self._api_url!r})"

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
        raw, context_id = await self._send(endpoint, self._url(endpoint, path_params), _query(params), None)
        return self._json(endpoint, raw, context_id)

    async def post(self, endpoint: Endpoint, body: Any, **path_params: str) -> Any:
        raw, context_id = await self._send(endpoint, self._url(endpoint, path_params), [], body)
        return self._json(endpoint, raw, context_id)

    async def get_as(
        self, endpoint: Endpoint, shape: Shape[T], *, params: Params | None = None, **path_params: str
    ) -> T:
        """GET, checked against `shape`: a page of the wrong shape is counted and raised, never half-read."""
        return await self._send_as(endpoint, shape, None, params, path_params)

    async def post_as(self, endpoint: Endpoint, body: Any, shape: Shape[T], **path_params: str) -> T:
        return await self._send_as(endpoint, shape, body, None, path_params)

    async def send_as(
        self, endpoint: Endpoint, shape: Shape[T], *, body: Any = None, params: Params | None = None, **path_params: str
    ) -> T:
        """The endpoint's own method with a query and a body, the answer checked against `shape`."""
        return await self._send_as(endpoint, shape, body, params, path_params)

    async def _send_as(
        self, endpoint: Endpoint, shape: Shape[T], body: Any, params: Params | None, path_params: Mapping[str, str]
    ) -> T:
        raw, context_id = await self._send(endpoint, self._url(endpoint, path_params), _query(params), body)
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
            self.stats.parse_errors[endpoint.name] += 1
            first = error.errors(include_input=False, include_url=False)[0]
            if first["type"] == "json_invalid":
                reason = "response is not JSON"
            else:
                where = ".".join(str(part) for part in first["loc"]) or "the body"
                reason = f"response of the wrong shape at {where}: {first['msg']}"
            raise MalformedResponse(endpoint.name, reason, status=200, context_id=context_id) from None

    def _json(self, endpoint: Endpoint, raw: bytes, context_id: str | None) -> Any:
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            self.stats.parse_errors[endpoint.name] += 1
            raise MalformedResponse(endpoint.name, "response is not JSON", status=200, context_id=context_id) from None

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

    async def _send(
        self, endpoint: Endpoint, url: str, query: list[tuple[str, str]], body: Any
    ) -> tuple[bytes, str | None]:
        """The body of a 2xx answer and its `inin-correlation-id`, after the retry rules."""
        attempt = 0
        renewed = False
        while True:
            token = await self.tokens.token()
            async with self.budget.slot():
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
                    self.stats.count(endpoint.name, "error")
                    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                    if attempt >= self._max_retries:
                        raise TransportError(endpoint.name, f"no answer from Genesys ({reason})") from None
                    attempt += 1
                    await self._wait(endpoint, backoff(attempt), reason=reason, attempt=attempt)
                    continue
            self.stats.count(endpoint.name, str(status))
            self.budget.observe(headers)
            context_id = headers.get("inin-correlation-id")
            if 200 <= status < 300:
                return raw, context_id
            payload = _json_or_none(raw)
            if status == 401 and not renewed:
                renewed = True
                await self.tokens.renew(token)
                continue
            retry_after = retry_after_seconds(headers.get("Retry-After"), self._clock.time())
            if status == 429:
                wait = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
                self.budget.rate_limited(min(wait, DAILY_CAP_SECONDS))  # every request waits, this one too
                log.warning(
                    "rate limited by Genesys",
                    endpoint=endpoint.name,
                    retry_after_s=wait,
                    allowed=headers.get("inin-ratelimit-allowed"),
                    context_id=context_id,
                )
                if wait <= DAILY_CAP_SECONDS and attempt < self._max_retries:
                    attempt += 1
                    continue  # slot() holds the request until the pause ends
            elif status in RETRYABLE and attempt < self._max_retries:
                attempt += 1
                wait = retry_after if retry_after is not None else backoff(attempt)
                await self._wait(endpoint, wait, reason=f"HTTP {status}", attempt=attempt, context_id=context_id)
                continue
            raise error_from_response(endpoint, status, payload, context_id, retry_after)

    async def _wait(self, endpoint: Endpoint, seconds: float, **why: Any) -> None:
        log.warning("request failed, retrying", endpoint=endpoint.name, wait_s=round(seconds, 2), **why)
        await self._clock.sleep(seconds)


def _validate_json(shape: Shape[T], raw: bytes) -> T:
    """Bytes straight to checked objects in pydantic-core: no intermediate dicts from `json.loads`."""
    if isinstance(shape, TypeAdapter):
        return shape.validate_json(raw)
    return shape.model_validate_json(raw)  # type: ignore[attr-defined, no-any-return]


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
