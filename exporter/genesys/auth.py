"""OAuth client credentials (https://developer.genesys.cloud/authorization/platform-auth/use-client-credentials):
one token at a time, renewed before it runs out.

The grant issues no refresh token, so a new token is simply requested: after 90 % of `expires_in`
has passed, or when the API answers 401. However many requests wait at that moment, one token
request is in flight (an `asyncio.Lock`), and the others reuse its answer.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog
from pydantic import SecretStr

from exporter.clock import Clock
from exporter.genesys.endpoints import OAUTH_TOKEN
from exporter.genesys.errors import CredentialsRejected, GenesysError, ServerError, TransportError
from exporter.genesys.retry import backoff

log = structlog.get_logger(__name__)

TOKEN_ATTEMPTS = 3


def _oauth_error(body: Any) -> str:
    """The OAuth error body is Unconfirmed: read `error`, `error_description` and `description`."""
    if not isinstance(body, dict):
        return ""
    parts = [str(body[k]) for k in ("error", "error_description", "description", "message") if body.get(k)]
    return ": ".join(dict.fromkeys(parts))


class TokenProvider:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        login_url: str,
        client_id: str,
        client_secret: SecretStr,
        clock: Clock,
        *,
        refresh_at: float = 0.9,
        timeout: float = 30.0,
        on_response: Callable[[str, str], None] | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> None:
        self._session = session
        self._url = f"{login_url.rstrip('/')}/oauth/token"
        credentials = f"{client_id}:{client_secret.get_secret_value()}".encode()
        self._headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode("ascii")}
        self._clock = clock
        self._refresh_at = refresh_at
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._on_response = on_response or (lambda endpoint, code: None)
        self._on_token = on_token or (lambda token: None)
        self._token: str | None = None
        self._renew_after = 0.0
        self._lock = asyncio.Lock()
        self.requests = 0

    def __repr__(self) -> str:
        return f"TokenProvider(url={self._url!r}, has_token={self._token is not None})"

    async def token(self) -> str:
        """A valid access token, fetched only when there is none or it is due for renewal."""
        if self._token is not None and self._clock.monotonic() < self._renew_after:
            return self._token
        async with self._lock:
            if self._token is None or self._clock.monotonic() >= self._renew_after:
                await self._fetch()
            assert self._token is not None
            return self._token

    async def renew(self, rejected: str) -> str:
        """After a 401: a new token, unless another caller already replaced the rejected one."""
        async with self._lock:
            if self._token is None or self._token == rejected:
                await self._fetch()
            assert self._token is not None
            return self._token

    async def _fetch(self) -> None:
        for attempt in range(1, TOKEN_ATTEMPTS + 1):
            try:
                await self._request()
                return
            except (ServerError, TransportError) as error:
                if attempt == TOKEN_ATTEMPTS:
                    raise
                wait = backoff(attempt, cap=math.inf, least=0.0)  # full jitter; three attempts need no cap
                log.warning("token request failed, retrying", attempt=attempt, wait_s=round(wait, 2), error=str(error))
                await self._clock.sleep(wait)

    async def _request(self) -> None:
        self.requests += 1
        try:
            async with self._session.post(
                self._url, data={"grant_type": "client_credentials"}, headers=self._headers, timeout=self._timeout
            ) as response:
                status = response.status
                context_id = response.headers.get("inin-correlation-id")
                try:
                    body: Any = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    body = None
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            self._on_response(OAUTH_TOKEN.name, "error")
            raise TransportError(OAUTH_TOKEN.name, f"token endpoint unreachable: {type(error).__name__}") from None
        self._on_response(OAUTH_TOKEN.name, str(status))
        if status in (400, 401, 403):
            detail = _oauth_error(body)
            raise CredentialsRejected(
                OAUTH_TOKEN.name,
                "OAuth client credentials rejected: check the client id and secret, that the client uses the "
                "Client Credentials grant, and that the region is the org's (a client exists in one region only)"
                + (f" [{detail}]" if detail else ""),
                status=status,
                code=detail.split(":")[0] if detail else None,
                context_id=context_id,
            )
        if status >= 500 or status == 429:
            raise ServerError(OAUTH_TOKEN.name, "token endpoint failed", status=status, context_id=context_id)
        token = body.get("access_token") if isinstance(body, dict) else None
        if status != 200 or not isinstance(token, str) or not token:
            raise GenesysError(
                OAUTH_TOKEN.name, "token endpoint gave no access_token", status=status, context_id=context_id
            )
        try:
            lifetime = float(body.get("expires_in") or 86400)
        except (TypeError, ValueError):
            lifetime = 86400.0
        self._token = token
        self._on_token(token)
        self._renew_after = self._clock.monotonic() + self._refresh_at * max(lifetime, 1.0)
