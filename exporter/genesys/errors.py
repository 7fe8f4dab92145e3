"""Typed errors from Genesys Cloud, each worded for the operator who reads the log.

The error body and codes: https://developer.genesys.cloud/platform/api/rest-api-errors

Every error carries the HTTP status, the Genesys `code`, its message and the `contextId` that
Genesys support asks for. They are built from response bodies and endpoint names only, never from
request headers, so no token or secret can reach a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from exporter.genesys.endpoints import Endpoint

DAILY_CAP_SECONDS = 180  # a Retry-After beyond this is a daily cap, not a window: stop, don't wait


class GenesysError(Exception):
    """A request to Genesys Cloud that did not give a usable answer."""

    def __init__(
        self,
        endpoint: str,
        message: str,
        *,
        status: int = 0,
        code: str | None = None,
        context_id: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.message = message
        self.status = status
        self.code = code
        self.context_id = context_id
        super().__init__(message)

    def __str__(self) -> str:
        facts = [f"HTTP {self.status}" if self.status else "no response"]
        if self.code:
            facts.append(f"code {self.code}")
        if self.context_id:
            facts.append(f"contextId {self.context_id}")
        return f"{self.message} ({self.endpoint}; {', '.join(facts)})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self!s})"


class BadRequest(GenesysError):
    """4xx other than 401/403/404/429: the request itself is wrong (likely an exporter bug)."""


class CredentialsRejected(GenesysError):
    """The token endpoint refused the client id and secret."""


class TokenRejected(GenesysError):
    """The API refused a freshly issued token too."""


class PermissionDenied(GenesysError):
    """403: the OAuth client's role lacks a permission; `permissions` names the candidates."""

    def __init__(self, endpoint: str, message: str, *, permissions: tuple[str, ...], **kw: Any) -> None:
        self.permissions = permissions
        super().__init__(endpoint, message, **kw)


class NotFound(GenesysError):
    """404: a queue was deleted, or (when every call gets it) the API base or region is wrong."""


class RateLimited(GenesysError):
    """429 given up on: a daily cap (Retry-After over 180 s) or retries exhausted."""

    def __init__(self, endpoint: str, message: str, *, retry_after: float | None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(endpoint, message, **kw)


class ServerError(GenesysError):
    """5xx after retries."""


class TransportError(GenesysError):
    """No HTTP answer (connection refused or reset, timeout) after retries."""


class MalformedResponse(GenesysError):
    """A 2xx whose body is not the JSON we expect."""


_PERMISSION = re.compile(r"[a-zA-Z]+:[a-zA-Z]+:[a-zA-Z]+")


def _permissions_named(body: Mapping[str, Any], endpoint: Endpoint) -> tuple[str, ...]:
    """Permissions from the error body (messageParams, then message text), else from our endpoint table."""
    found: list[str] = []
    params = body.get("messageParams")
    texts = [str(v) for v in params.values()] if isinstance(params, Mapping) else []
    texts.append(str(body.get("message") or ""))
    for text in texts:
        found.extend(p for p in _PERMISSION.findall(text) if p not in found)
    return tuple(found) or endpoint.permissions


def error_from_response(
    endpoint: Endpoint, status: int, body: Any, context_id: str | None, retry_after: float | None = None
) -> GenesysError:
    """The typed error for a non-2xx API response (not the token endpoint's)."""
    fields: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    code = str(fields["code"]) if fields.get("code") else None
    text = str(fields.get("message") or "").strip() or f"HTTP {status}"
    common: dict[str, Any] = {
        "status": status,
        "code": code,
        "context_id": str(fields.get("contextId") or context_id or "") or None,
    }
    name = endpoint.name
    if status == 403:
        permissions = _permissions_named(fields, endpoint)
        if code == "not.authorized":
            message = f"not authorized for {endpoint.purpose}: check the role's division scope ({text})"
        elif code == "missing.any.permissions" or len(permissions) > 1:
            message = f"the OAuth client's role lacks any of {', '.join(permissions)} (needed for {endpoint.purpose})"
        else:
            message = f"the OAuth client's role lacks {permissions[0]} (needed for {endpoint.purpose})"
        return PermissionDenied(name, message, permissions=permissions, **common)
    if status == 401:
        return TokenRejected(name, "token rejected; the OAuth client may be deleted or its tokens revoked", **common)
    if status == 404:
        return NotFound(name, f"not found: {text}", **common)
    if status == 429:
        if retry_after is not None and retry_after > DAILY_CAP_SECONDS:
            message = f"rate limited with Retry-After {retry_after:.0f} s: a daily cap was hit; giving up"
        else:
            message = f"rate limited by Genesys, retries exhausted: {text}"
        return RateLimited(name, message, retry_after=retry_after, **common)
    if status >= 500:
        return ServerError(name, f"Genesys server error: {text}", **common)
    return BadRequest(name, f"Genesys rejected the {name} request: {text}", **common)
