"""The one way the exporter talks to the Genesys Cloud API.

Every request: a valid token, a place in a budget, one `aiohttp` session, and the retry rules of
`exporter.genesys.retry` (https://developer.genesys.cloud/platform/api/rate-limits). With several
OAuth clients of the org, each has its own token and budget (a `Lane`), and each request goes to the
one its `BudgetGroup` picks: where it starts soonest, away from a client that failed
(`exporter.scheduling.group`). A notification channel is the client's own: a `per_client` endpoint
is pinned to the client the caller names (`as_client=`, its label), and a failure there stays that
client's (it is never retried on another, whose token cannot see the channel).

Each response counts in `stats` (by client) and feeds its client's budget the rate-limit headers.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
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
from exporter.genesys.errors import GenesysError, MalformedResponse, TransportError, error_from_response
from exporter.genesys.retry import (
    Answer,
    Backoff,
    Decision,
    LoginFailed,
    NoAnswer,
    RequestState,
    Then,
    decide,
    retry_after_seconds,
)
from exporter.scheduling.budget import RateBudget, current_caller
from exporter.scheduling.group import BudgetGroup

log = structlog.get_logger(__name__)

Params = Mapping[str, str | int | Sequence[str]]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Shape = type[T] | msgspec.json.Decoder[T]  # a model, or a decoder of structs (the large aggregate answers)
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
        page_count = first.get("pageCount") if isinstance(first, Mapping) else None
        after = _next_uri(first)
        yield first
        del first  # the caller has it
        if not isinstance(page_count, int):
            async for page in self._follow(endpoint, after):  # no totals after all: follow nextUri
                yield page
                del page
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
        after = _next_uri(first)
        yield first
        del first  # the caller has it
        async for page in self._follow(endpoint, after):
            yield page
            del page

    async def _follow(self, endpoint: Endpoint, next_uri: str | None) -> AsyncIterator[Any]:
        """The pages from `next_uri` on. A page handed on is not held (here or by the listings that pass
        it on) while the next one waits its turn in the budget: thousands of listings may be waiting at
        once (a member listing per queue)."""
        seen: set[str] = set()
        while next_uri:
            url = urljoin(self._api_url + "/", next_uri)
            if urlsplit(url)[:2] != self._origin:
                raise MalformedResponse(endpoint.name, "nextUri points away from the API host; not followed")
            if url in seen or len(seen) >= MAX_PAGES:
                raise MalformedResponse(endpoint.name, "nextUri paging does not end; stopped")
            seen.add(url)
            raw, context_id = await self._send(endpoint, url, [], None)
            page = self._json(endpoint, raw, context_id)
            next_uri = _next_uri(page)
            yield page
            del page

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
        """The body of a 2xx answer and its `inin-correlation-id`, after the retry rules (`retry.decide`).

        Each attempt goes to the client the group picks, or the one the request is `pinned` to; what
        follows each outcome is `decide`'s, and this only carries it out.
        """
        state = RequestState(self.labels, self._max_retries, pinned=pinned is not None)
        while True:
            lane = self._lanes[pinned] if pinned is not None else self._lane(state.failed)
            try:
                token = await lane.tokens.token()
            except GenesysError as error:
                state = self._login_failed(lane, state, error)
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
                    decision = decide(NoAnswer(), lane.label, state)
                    if decision.then is Then.RAISE:
                        raise TransportError(endpoint.name, f"no answer from Genesys ({reason})") from None
                    state = state.retried()
                    await self._wait(endpoint, decision.wait, reason=reason, attempt=state.retries)
                    continue
            self.stats.count(endpoint.name, str(status), lane.label)
            lane.budget.observe(headers)
            context_id = headers.get("inin-correlation-id")
            retry_after = retry_after_seconds(headers.get("Retry-After"), self._clock.time())
            decision = decide(Answer(status, retry_after), lane.label, state)
            if decision.pause is not None:
                self.budget.rate_limited(lane.label, decision.pause.seconds)  # its requests wait, this one too
                log.warning(
                    "rate limited by Genesys",
                    endpoint=endpoint.name,
                    client=lane.label,
                    retry_after_s=decision.pause.retry_after,
                    allowed=headers.get("inin-ratelimit-allowed"),
                    context_id=context_id,
                )
            state = self._set_aside(lane, state, decision)
            match decision.then:
                case Then.DELIVER:
                    self.budget.succeeded(lane.label)
                    return raw, context_id
                case Then.RENEW:  # the replay goes on this client's new token or, if its login failed, another client
                    state = state.renewed_by(lane.label)
                    try:
                        await lane.tokens.renew(token)
                    except GenesysError as error:
                        state = self._login_failed(lane, state, error)
                case Then.RETRY:
                    state = state.retried()
                    why = {"reason": f"HTTP {status}", "attempt": state.retries, "context_id": context_id}
                    await self._wait(endpoint, decision.wait, **why)
                case Then.ELSEWHERE:
                    pass  # the client is set aside: the next attempt goes to another
                case Then.RAISE:
                    raise error_from_response(endpoint, status, _json_or_none(raw), context_id, retry_after)

    def _login_failed(self, lane: Lane, state: RequestState, error: GenesysError) -> RequestState:
        """The state once the client that got no token is set aside; the login's error when no other
        client can take the request."""
        decision = decide(LoginFailed(str(error)), lane.label, state)
        state = self._set_aside(lane, state, decision)
        if decision.then is Then.RAISE:
            raise error
        return state

    def _set_aside(self, lane: Lane, state: RequestState, decision: Decision) -> RequestState:
        """The client set aside if it failed the request for good (pinned or not: its other requests
        go to the other clients)."""
        if decision.aside is None:
            return state
        self.budget.set_aside(lane.label, decision.aside.reason, decision.aside.at_least)
        return state.failed_by(lane.label)

    def _lane(self, failed: Collection[str]) -> Lane:
        """The client for the next attempt of a request not pinned: the group's pick (`decide` gives
        the request up before none is left)."""
        label = self.budget.choose(current_caller.get(), exclude=failed)
        assert label is not None
        return self._lanes[label]

    async def _wait(self, endpoint: Endpoint, wait: float | Backoff | None, **why: Any) -> None:
        """A retry's own wait; a 429's retry has none, its client's paused budget holds it instead."""
        if wait is None:
            return
        seconds = wait.seconds() if isinstance(wait, Backoff) else wait
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


def _next_uri(page: Any) -> str | None:
    """A page's `nextUri`, None when it has none (the last page)."""
    next_uri = page.get("nextUri") if isinstance(page, Mapping) else None
    return next_uri if isinstance(next_uri, str) and next_uri else None
