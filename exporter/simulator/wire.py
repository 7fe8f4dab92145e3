"""Wire-format pieces the simulated API shares: error bodies, timestamps, paging links, validation lists.

Written from Genesys's public documentation and the official SDK models, independently of `exporter.genesys`: if the
exporter misread the API, the simulator should not repeat the misreading.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

# QueueObservationQuery.metrics per SDK 270; detailMetrics lack the oLongest* pair.
OBSERVATION_METRICS = frozenset(
    {
        "oActiveUsers",
        "oAlerting",
        "oInteracting",
        "oLongestInteracting",
        "oLongestWaiting",
        "oMemberUsers",
        "oOffQueueUsers",
        "oOnQueueUsers",
        "oUserPresences",
        "oUserRoutingStatuses",
        "oWaiting",
    }
)
DETAIL_METRICS = OBSERVATION_METRICS - {"oLongestInteracting", "oLongestWaiting"}
OBSERVATION_DIMENSIONS = frozenset({"queueId", "mediaType"})
AGGREGATE_METRICS = frozenset(
    {
        "nOffered",
        "nConnected",
        "tAnswered",
        "tAbandon",
        "tTalk",
        "tTalkComplete",
        "tHeld",
        "tAcw",
        "tHandle",
        "nTransferred",
        "oServiceLevel",
        "tWait",
        "tAlert",
        "nOverSla",
    }
)
AGGREGATE_DIMENSIONS = frozenset({"queueId", "mediaType", "userId"})
MAX_PREDICATES = 100
MAX_BODY_BYTES = 512_000
MAX_PAGE_SIZE = 100


def iso(epoch: float) -> str:
    """`2026-05-14T10:00:01.123Z`: milliseconds and a Z, as Genesys writes them."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def error(status: int, code: str, message: str, context_id: str, **extra: Any) -> web.Response:
    """ErrorBody (https://developer.genesys.cloud/platform/api/rest-api-errors) with `contextId` equal to
    the correlation id header."""
    body = {
        "message": message,
        "code": code,
        "status": status,
        "contextId": context_id,
        "details": [],
        "errors": [],
        **extra,
    }
    return web.json_response(body, status=status)


class ApiError(Exception):
    """Raised by handlers; the error middleware turns it into an ErrorBody response."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad.request", message)


def page_size(request: web.Request, default: int = 25) -> tuple[int, int]:
    try:
        size = int(request.query.get("pageSize", default))
        number = int(request.query.get("pageNumber", 1))
    except ValueError:
        raise bad_request("pageSize and pageNumber must be integers") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise bad_request(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
    if number < 1:
        raise bad_request("pageNumber must be 1 or more")
    return size, number


def page_uri(request: web.Request, number: int, size: int) -> str:
    """A relative URI to another page of the same listing, other query parameters kept."""
    query = [(k, v) for k, v in request.query.items() if k not in ("pageNumber", "pageSize")]
    return f"{request.path}?{urlencode([('pageSize', size), ('pageNumber', number), *query])}"


def numbered_listing(
    request: web.Request,
    entities: Sequence[Any],
    size: int,
    number: int,
    render: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Numbered paging with totals, as `/routing/queues` and `/users` answer.

    `render` builds the wire form of the page's items only: a page of a 50,000-user org costs 100.
    """
    total = len(entities)
    count = max(1, -(-total // size))
    page = entities[(number - 1) * size : number * size]
    body: dict[str, Any] = {
        "entities": [render(item) for item in page] if render else list(page),
        "pageSize": size,
        "pageNumber": number,
        "total": total,
        "pageCount": count,
        "firstUri": page_uri(request, 1, size),
        "selfUri": page_uri(request, number, size),
        "lastUri": page_uri(request, count, size),
    }
    if number < count:
        body["nextUri"] = page_uri(request, number + 1, size)
    if number > 1:
        body["previousUri"] = page_uri(request, number - 1, size)
    return body


def cursor_listing(request: web.Request, entities: Sequence[Any], size: int) -> dict[str, Any]:
    """Cursor paging, as `/teams` and `/teams/{id}/members` answer: `after` from the last page's `nextUri`,
    no page numbers, no totals. The cursor is opaque to clients (here an offset, encoded)."""
    after = request.query.get("after", "")
    try:
        start = int(base64.urlsafe_b64decode(after.encode()).decode()) if after else 0
    except ValueError:
        raise bad_request("invalid cursor in after") from None
    body: dict[str, Any] = {"entities": list(entities[start : start + size]), "selfUri": str(request.rel_url)}
    if start + size < len(entities):
        cursor = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        body["nextUri"] = f"{request.path}?pageSize={size}&after={cursor}"
    return body


def next_uri_listing(request: web.Request, entities: list[Any], size: int, number: int) -> dict[str, Any]:
    """`nextUri` paging with no totals, as `/routing/queues/{id}/members` answers."""
    body: dict[str, Any] = {
        "entities": entities[(number - 1) * size : number * size],
        "pageSize": size,
        "pageNumber": number,
        "firstUri": page_uri(request, 1, size),
        "selfUri": page_uri(request, number, size),
    }
    if number * size < len(entities):
        body["nextUri"] = page_uri(request, number + 1, size)
    if number > 1:
        body["previousUri"] = page_uri(request, number - 1, size)
    return body


async def json_body(request: web.Request) -> Any:
    """A request's JSON body, checked as the real API checks it: content type, size, syntax."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported.media.type", f"Unsupported content type {request.content_type!r}")
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "request.entity.too.large", f"Request body over {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except ValueError:
        raise bad_request("The request body is not valid JSON") from None
