"""The simulated Genesys Cloud API: an aiohttp app in front of the live `OrgModel`.

It behaves like the real service where the exporter can tell: OAuth client credentials with
expiring tokens, a rate limit with the `inin-ratelimit-*` headers and the normalized 429,
ErrorBody errors whose `contextId` is the `inin-correlation-id`, permissions per client, the three
paging styles, and bodies checked as strictly as the real API is documented to check them. The
Notifications API (channels, subscriptions, the WebSocket) is its own room, `notifications.py`.

The org may have several OAuth clients, as a large contact centre's integrations do. Each has its
own credentials, its own rate window (one 60 s window for all of the client's tokens, so a new token
does not buy a fresh minute, and another client's requests never use it up) and its own 20
channels; the counters `client_requests` and `rate_limited_by` tell them apart for tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import ipaddress
import json
import math
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from exporter.clock import Clock, SystemClock
from exporter.simulator.aggregates import aggregate
from exporter.simulator.faults import REQUEST_KINDS, SOCKET_ROUTE, Fault, Faults, drifted, wrong_shape
from exporter.simulator.model import (
    MEDIA_SETTING_KEY,
    PRESENCE_NAMES,
    SYSTEM_PRESENCES,
    OrgModel,
    SimAgent,
    SimConfig,
    SimQueue,
)
from exporter.simulator.notifications import (
    CLIENT_KEY,
    FAULT_KEY,
    ROUTE_PERMISSIONS,
    Notifications,
    ObservationStyle,
)
from exporter.simulator.observations import LongestStyle, observe
from exporter.simulator.wire import (
    MAX_BODY_BYTES,
    ApiError,
    bad_request,
    cursor_listing,
    error,
    iso,
    json_body,
    next_uri_listing,
    numbered_listing,
    page_size,
)

DEMO_CLIENT_ID = "demo-client"
DEMO_CLIENT_SECRET = "demo-secret"  # noqa: S105 - the simulator's published demo credentials
WINDOW_SECONDS = 60.0
NOT_API = ("oauth_token", "admin", SOCKET_ROUTE)  # routes `api_requests` does not count

# Route name -> the permission the real API wants (any one of them), per the SDK's API docs
# (https://github.com/MyPureCloud/platform-client-sdk-python/tree/master/build/docs).
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "routing_queues": ("routing:queue:view",),
    "queue_observations": ("analytics:queueObservation:view",),
    "queue_members": (
        "routing:queue:view",
        "routing:queue:edit",
        "routing:queue:readonly",
        "routing:queueMember:manage",
    ),
    "users": (),
    "conversation_aggregates": ("analytics:conversationAggregate:view",),
    "teams": ("groups:team:view",),
    "team_members": ("groups:team:view",),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def demo_credentials(number: int) -> tuple[str, str]:
    """The published credentials of the simulator's `number`th own client (1 is the demo client)."""
    suffix = "" if number == 1 else f"-{number}"
    return DEMO_CLIENT_ID + suffix, DEMO_CLIENT_SECRET + suffix


def is_demo_client(client_id: str, secret: str) -> bool:
    """Credentials the simulator made up and prints, as opposed to ones it was given (never printed)."""
    match = re.fullmatch(rf"{re.escape(DEMO_CLIENT_ID)}(-\d+)?", client_id)
    return match is not None and secret == DEMO_CLIENT_SECRET + (match[1] or "")


@dataclass
class _Token:
    expires_at: float
    client_id: str  # whose rate window it draws on, whose channels its notification calls see


@dataclass
class _Window:
    """One OAuth client's rate window: it opens with the first request after the last one ended."""

    start: float = -math.inf
    count: int = 0


@dataclass
class SimulatedOrg:
    """The org's API state around the model: who may log in, tokens, limits, switches for tests.

    `clients` (client id -> secret) are the OAuth clients that may log in; when it is not given
    the org has the one client `client_id`/`client_secret`, and when it is those two name its first,
    for callers that know one client.
    """

    model: OrgModel
    clock: Clock
    client_id: str = DEMO_CLIENT_ID
    client_secret: str = DEMO_CLIENT_SECRET
    clients: dict[str, str] = field(default_factory=dict)
    token_ttl: float = 86400.0
    rate_limit: int = 300
    permissions: frozenset[str] | None = None  # None: every permission
    longest_style: LongestStyle = "epoch"
    expand_presence: bool = True  # False: `/users` leaves out routingStatus/presence (best effort expand)
    # Seconds from a metric's event to the aggregates answering with it, as the real analytics pipeline
    # processes conversations before it counts them (its delay is Unconfirmed; queries see none of it
    # when 0).
    analytics_delay: float = 5.0
    faults: Faults = field(default_factory=Faults)
    tokens: dict[str, _Token] = field(default_factory=dict)
    windows: dict[str, _Window] = field(default_factory=dict)  # client id -> its rate window
    requests: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)
    # (client id, route, status): the requests that named a client (a bearer token it was given, or
    # its id at the token endpoint), faults and refusals included.
    client_requests: collections.Counter[tuple[str, str, int]] = field(default_factory=collections.Counter)
    rate_limited: int = 0  # requests refused by the real per-client limit (injected 429s not counted)
    rate_limited_by: collections.Counter[str] = field(default_factory=collections.Counter)  # the same, by client
    url: str = ""
    # Notifications API (see notifications.py); read live, so a test may change them on a running org.
    heartbeat_seconds: float = 30.0
    channel_ttl: float = 86400.0
    closing_delay: float = 60.0  # maintenance: socket_closing, then the close this much later
    observation_style: ObservationStyle = "changed"
    notifications: Notifications = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.clients:
            self.client_id, self.client_secret = next(iter(self.clients.items()))
        else:
            self.clients = {self.client_id: self.client_secret}
        self.notifications = Notifications(self)

    @property
    def demo_clients(self) -> dict[str, str]:
        """The clients whose credentials are the simulator's own published ones: safe to print."""
        return {client: secret for client, secret in self.clients.items() if is_demo_client(client, secret)}

    def revoke_tokens(self, client_id: str | None = None) -> None:
        """Revoke every token (or one client's); their notification sockets hear so and close."""
        self.tokens = {v: t for v, t in self.tokens.items() if client_id not in (None, t.client_id)}
        self.notifications.revoke(None if client_id is None else {client_id})

    def api_requests(self, route: str | None = None, client: str | None = None) -> int:
        """Requests answered on `/api/v2` (all, one route's, one client's, or both), whatever their status."""
        answered = (
            ((name, n) for (name, _), n in self.requests.items())
            if client is None
            else ((name, n) for (who, name, _), n in self.client_requests.items() if who == client)
        )
        return sum(n for name, n in answered if name not in NOT_API and route in (None, name))

    def create_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES * 2)
        routes = [
            ("POST", "/oauth/token", "oauth_token", self._token),
            ("GET", "/api/v2/routing/queues", "routing_queues", self._queues),
            ("POST", "/api/v2/analytics/queues/observations/query", "queue_observations", self._observations),
            ("GET", "/api/v2/routing/queues/{queueId}/members", "queue_members", self._members),
            ("GET", "/api/v2/users", "users", self._users),
            ("POST", "/api/v2/analytics/conversations/aggregates/query", "conversation_aggregates", self._aggregates),
            ("GET", "/api/v2/teams", "teams", self._teams),
            ("GET", "/api/v2/teams/{teamId}/members", "team_members", self._team_members),
            *self.notifications.routes(),
        ]
        for method, path, name, handler in routes:
            app.router.add_route(method, path, handler, name=name)
        app.router.add_post("/__admin/scenario", self._scenario, name="admin")
        app.on_shutdown.append(self.notifications.close)
        return app

    # ----- the cross-cutting rules --------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        context_id = str(uuid.uuid4())
        route = request.match_info.route.name or "unknown"
        extra_headers: dict[str, str] = {}
        if (token := self._bearer(request)) is not None:  # known before any fault: counted as the client's
            request[CLIENT_KEY] = token.client_id
        client = token.client_id if token is not None else None
        fault = self.faults.pick(route, self.clock.monotonic(), REQUEST_KINDS, client) if route != "admin" else None
        request[FAULT_KEY] = fault  # the `reject` fault is the subscriptions handler's to apply
        try:
            if fault is not None:
                await self._fault_before(fault, route)
            if request.path.startswith("/api/"):
                extra_headers = self._admit(request, route)
            self.model.advance(self.clock.time())
            response = await handler(request)
            if fault is not None:
                response = await self._fault_after(fault, request, response)
        except ApiError as problem:
            response = error(problem.status, problem.code, problem.message, context_id, **problem.extra)
            response.headers.update(problem.headers)
        except web.HTTPException as http:
            status = http.status
            code = {404: "not.found", 405: "method.not.allowed"}.get(status, "bad.request")
            response = error(status, code, http.reason, context_id)
        if not response.prepared:  # a reset fault has already sent its half body
            response.headers["inin-correlation-id"] = context_id
            response.headers.update(extra_headers)
        self.requests[(route, response.status)] += 1
        if (client := request.get(CLIENT_KEY)) is not None:
            self.client_requests[(client, route, response.status)] += 1
        return response

    async def _fault_before(self, fault: Fault, route: str) -> None:
        """Faults that replace the answer or change the org before it is given."""
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        elif fault.kind == "revoke":
            self.revoke_tokens()
        elif fault.kind == "forbid":
            needed = ", ".join(PERMISSIONS.get(route, ROUTE_PERMISSIONS.get(route, ("unknown",))))
            raise ApiError(
                403,
                "missing.permissions",
                f"You are missing the following permission(s): [{needed}]",
                messageParams={"permissions": needed},
            )
        elif fault.kind == "status":
            code = {
                429: "too.many.requests.retry.after",
                500: "internal.server.error",
                502: "bad.gateway",
                503: "service.unavailable",
                504: "request.timeout",
            }.get(fault.status, "bad.request")
            headers = {"Retry-After": str(round(fault.retry_after))} if fault.retry_after is not None else {}
            if fault.status == 429 and not headers:
                headers = {"Retry-After": "2"}
            raise ApiError(fault.status, code, f"simulated fault: HTTP {fault.status}", headers=headers)

    async def _fault_after(
        self, fault: Fault, request: web.Request, response: web.StreamResponse
    ) -> web.StreamResponse:
        """Faults that spoil an answer that was otherwise right."""
        if not isinstance(response, web.Response) or response.status != 200:
            return response
        if fault.kind == "malformed":
            return web.Response(status=200, text='{"results": [{"group": ', content_type="application/json")
        if fault.kind in ("wrong_shape", "drift"):
            body = json.loads(response.text or "null")
            return web.json_response(wrong_shape(body) if fault.kind == "wrong_shape" else drifted(body))
        if fault.kind == "reset":
            raw = response.body if isinstance(response.body, bytes) else b""
            cut = web.StreamResponse(
                status=200, headers={"Content-Type": "application/json", "Content-Length": str(len(raw))}
            )
            await cut.prepare(request)
            await cut.write(raw[: len(raw) // 2])
            if request.transport is not None:
                request.transport.close()  # the connection drops halfway through the body
            return cut
        return response

    def _bearer(self, request: web.Request) -> _Token | None:
        header = request.headers.get("Authorization", "")
        return self.tokens.get(header[7:]) if header[:7].lower() == "bearer " else None

    def _admit(self, request: web.Request, route: str) -> dict[str, str]:
        """Bearer token, then its client's rate window, then the route's permission."""
        token = self._bearer(request)
        now = self.clock.monotonic()
        if token is None:
            raise ApiError(
                401, "authentication.required", "No authentication bearer token specified in authorization header."
            )
        if now >= token.expires_at:
            raise ApiError(401, "credentials.expired", "The bearer token has expired.")
        window = self.windows.setdefault(token.client_id, _Window())
        if now >= window.start + WINDOW_SECONDS:
            window.start, window.count = now, 0
        reset = max(1, math.ceil(window.start + WINDOW_SECONDS - now))
        if window.count >= self.rate_limit:
            self.rate_limited += 1
            self.rate_limited_by[token.client_id] += 1
            raise ApiError(
                429,
                "too.many.requests.retry.after",
                f"Rate limit exceeded the maximum. Retry the request in [{reset}] seconds",
                headers={"Retry-After": str(reset)},
            )
        window.count += 1
        needed = PERMISSIONS.get(route, ())
        if needed and self.permissions is not None and not self.permissions.intersection(needed):
            code = "missing.any.permissions" if len(needed) > 1 else "missing.permissions"
            listed = ", ".join(needed)
            raise ApiError(
                403,
                code,
                f"You are missing the following permission(s): [{listed}]",
                messageWithParams="You are missing the following permission(s): {permissions}",
                messageParams={"permissions": listed},
            )
        return {
            "inin-ratelimit-allowed": str(self.rate_limit),
            "inin-ratelimit-count": str(window.count),
            "inin-ratelimit-reset": str(reset),
        }

    async def _json_body(self, request: web.Request) -> Any:
        return await json_body(request)

    # ----- endpoints ----------------------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        try:
            user, _, password = (
                base64.b64decode(header[6:]).decode().partition(":") if header[:6] == "Basic " else ("", "", "")
            )
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        form = await request.post()
        secret = self.clients.get(user)
        if secret is not None:
            request[CLIENT_KEY] = user  # its login attempts count as its requests, failed ones too
        if secret is None or not secrets.compare_digest(password, secret):
            return web.json_response(
                {
                    "error": "invalid_client",
                    "description": "client not found or bad secret",
                    "error_description": "client not found or bad secret",
                },
                status=401,
            )
        if form.get("grant_type") != "client_credentials":
            return web.json_response(
                {"error": "unsupported_grant_type", "description": "use client_credentials"}, status=400
            )
        value = secrets.token_urlsafe(32)
        self.tokens[value] = _Token(expires_at=self.clock.monotonic() + self.token_ttl, client_id=user)
        return web.json_response({"access_token": value, "token_type": "bearer", "expires_in": int(self.token_ttl)})

    async def _queues(self, request: web.Request) -> web.Response:
        size, number = page_size(request)
        ids = set(request.query.getall("id", []))
        divisions = set(request.query.getall("divisionId", []))
        name = request.query.get("name", "").lower()
        queues = sorted(
            self.model.queues.values(), key=lambda q: q.name.lower(), reverse=request.query.get("sortOrder") == "desc"
        )
        selected = []
        for queue in queues:
            lowered = queue.name.lower()
            if (ids and queue.id not in ids) or (divisions and queue.division[0] not in divisions):
                continue
            if name and not _name_matches(lowered, name):
                continue
            selected.append(queue)
        return web.json_response(numbered_listing(request, selected, size, number, self._queue))

    async def _observations(self, request: web.Request) -> web.Response:
        return web.json_response(observe(self.model, await self._json_body(request), self.longest_style))

    async def _aggregates(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        return web.json_response(aggregate(self.model, body, processed_until=self.clock.time() - self.analytics_delay))

    def _user(self, agent: SimAgent, expand: set[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": agent.id,
            "name": agent.name,
            "state": "active",
            "username": f"{agent.id[:8]}@example.test",
            "division": {"id": agent.division[0], "name": agent.division[1]},
            "selfUri": f"/api/v2/users/{agent.id}",
        }
        if "routingStatus" in expand and self.expand_presence:
            body["routingStatus"] = {
                "userId": agent.id,
                "status": agent.routing_status,
                "startTime": iso(agent.status_since),
            }
        team = self.model.teams.get(agent.team or "")
        if "team" in expand and self.expand_presence and team is not None:
            body["team"] = {"id": team.id, "name": team.name, "selfUri": f"/api/v2/teams/{team.id}"}
        if "presence" in expand and self.expand_presence:
            body["presence"] = {
                "source": "PURECLOUD",
                "primary": True,
                "presenceDefinition": {
                    "id": self.model.presence_ids[agent.presence],
                    "systemPresence": PRESENCE_NAMES[agent.presence],
                },
                "modifiedDate": iso(agent.presence_since),
            }
        return body

    def _queue(self, queue: SimQueue) -> dict[str, Any]:
        joined = sum(1 for a in queue.members if self.model.agents[a].queues[queue.id])
        return {
            "id": queue.id,
            "name": queue.name,
            "division": {
                "id": queue.division[0],
                "name": queue.division[1],
                "selfUri": f"/api/v2/authorization/divisions/{queue.division[0]}",
            },
            "memberCount": len(queue.members),
            "userMemberCount": len(queue.members),
            "joinedMemberCount": joined,
            "mediaSettings": {
                MEDIA_SETTING_KEY[m]: {
                    "alertingTimeoutSeconds": 8,
                    "serviceLevel": {"percentage": 0.8, "durationMs": 20000},
                }
                for m in queue.media
            },
            "dateCreated": "2025-01-06T09:00:00.000Z",
            "selfUri": f"/api/v2/routing/queues/{queue.id}",
        }

    async def _users(self, request: web.Request) -> web.Response:
        size, number = page_size(request)
        ids = request.query.getall("id", [])
        if request.query.get("state", "active") not in ("active", "any"):
            return web.json_response(numbered_listing(request, [], size, number))
        expand = set(",".join(request.query.getall("expand", [])).split(","))
        agents = (
            [self.model.agents[i] for i in dict.fromkeys(ids) if i in self.model.agents]
            if ids
            else self.model.agents_by_name()
        )
        return web.json_response(numbered_listing(request, agents, size, number, lambda a: self._user(a, expand)))

    async def _teams(self, request: web.Request) -> web.Response:
        size, _ = page_size(request)
        teams = sorted(self.model.teams.values(), key=lambda team: team.name)
        entities = [
            {
                "id": team.id,
                "name": team.name,
                "division": {"id": team.division[0], "name": team.division[1]},
                "memberCount": len(team.members),
                "selfUri": f"/api/v2/teams/{team.id}",
            }
            for team in teams
        ]
        return web.json_response(cursor_listing(request, entities, size))

    async def _team_members(self, request: web.Request) -> web.Response:
        team = found(self.model.teams, request.match_info["teamId"], "team")
        size, _ = page_size(request)
        members = sorted(team.members)
        entities = [{"id": a, "name": self.model.agents[a].name, "selfUri": f"/api/v2/users/{a}"} for a in members]
        return web.json_response(cursor_listing(request, entities, size))

    async def _members(self, request: web.Request) -> web.Response:
        queue = found(self.model.queues, request.match_info["queueId"], "queue")
        size, number = page_size(request)
        joined = request.query.get("joined")
        expand = set(",".join(request.query.getall("expand", [])).split(","))
        entities = []
        for agent_id in sorted(queue.members, key=lambda a: self.model.agents[a].name):
            agent = self.model.agents[agent_id]
            is_joined = agent.queues[queue.id]
            if joined is not None and is_joined != (joined == "true"):
                continue
            member: dict[str, Any] = {
                "id": agent.id,
                "name": agent.name,
                "joined": is_joined,
                "memberBy": "user",
                "ringNumber": 1,
                "user": {
                    "id": agent.id,
                    "name": agent.name,
                    "division": {"id": agent.division[0], "name": agent.division[1]},
                    "selfUri": f"/api/v2/users/{agent.id}",
                },
                "selfUri": f"/api/v2/users/{agent.id}",
            }
            if "routingStatus" in expand:
                member["routingStatus"] = {
                    "userId": agent.id,
                    "status": agent.routing_status,
                    "startTime": iso(agent.status_since),
                }
            entities.append(member)
        return web.json_response(next_uri_listing(request, entities, size, number))

    async def _scenario(self, request: web.Request) -> web.Response:
        """Steer the org for a test or a demo. Loopback callers only, whatever address we listen on."""
        if not is_loopback(request.remote):
            raise ApiError(403, "not.authorized", "the scenario endpoint answers loopback callers only")
        body = await self._json_body(request)
        action = body.get("action") if isinstance(body, dict) else None
        model = self.model
        queue_id = _queue_id(model, str(body.get("queue", ""))) if action in ("unstaff", "wait") else ""
        if action == "unstaff":
            return web.json_response({"queue_id": queue_id, "agents": model.unstaff(queue_id)})
        if action == "wait":
            model.add_waiting(queue_id, str(body.get("media", "voice")), int(body.get("count", 1)))
            return web.json_response({"queue_id": queue_id, "waiting": model.queue_truth(queue_id).waiting})
        if action == "staff" and str(body.get("agent")) in model.agents:
            model.staff(str(body["agent"]))
            agent = model.agents[str(body["agent"])]
            return web.json_response({"agent": agent.id, "routing_status": agent.routing_status})
        if action == "presence" and str(body.get("agent")) in model.agents:
            presence = str(body.get("presence", "")).upper().replace(" ", "_")
            if presence not in SYSTEM_PRESENCES:
                raise bad_request(f"presence must be one of {', '.join(SYSTEM_PRESENCES)}")
            agent = model.agents[str(body["agent"])]
            model.set_presence(agent.id, presence)
            return web.json_response(
                {"agent": agent.id, "routing_status": agent.routing_status, "presence": agent.presence, "at": model.now}
            )
        if action == "closed":  # what a probe of today's figures waits to see: not a Genesys API
            since, day_start = float(body.get("since", model.now)), float(body.get("day_start", 0.0))
            return web.json_response(
                {"closed": model.ledger.closed_since(since, day_start, int(body.get("limit", 20))), "now": model.now}
            )
        raise bad_request(
            "action must be unstaff {queue}, wait {queue, media, count}, staff {agent}, presence {agent, presence}"
            " or closed {since, day_start, limit}"
        )


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


T = TypeVar("T")


def found(items: Mapping[str, T], item_id: str, kind: str) -> T:
    """The item of that id, or the 404 Genesys answers for an unknown one."""
    item = items.get(item_id)
    if item is None:
        raise ApiError(404, "not.found", f"The requested {kind} was not found.")
    return item


def _queue_id(model: OrgModel, name_or_id: str) -> str:
    for queue in model.queues.values():
        if name_or_id in (queue.id, queue.name):
            return queue.id
    raise ApiError(404, "not.found", f"no queue {name_or_id!r}")


def _name_matches(name: str, pattern: str) -> bool:
    """The API's name filter: exact, or `*` at the start and/or end."""
    core = pattern.strip("*")
    if pattern.startswith("*") and pattern.endswith("*") and len(pattern) > 1:
        return core in name
    if pattern.endswith("*"):
        return name.startswith(core)
    if pattern.startswith("*"):
        return name.endswith(core)
    return name == pattern


@asynccontextmanager
async def serve_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    queues: int = 20,
    agents: int = 200,
    seed: int = 1,
    rate_limit: int = 300,
    clock: Clock | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    clients: int = 1,
    others: int = 0,
    **options: Any,
) -> AsyncIterator[SimulatedOrg]:
    """Run the simulated org on `host:port` (port 0: any free port) until the block ends.

    Besides its `agents` it has `others` active users who are no queue's member.

    It has `clients` OAuth clients: the first logs in with `client_id`/`client_secret` (the demo
    credentials when not given), the others with the simulator's own (`demo_credentials(2)`, ...).
    """
    if clients < 1:
        raise ValueError(f"an org needs at least one OAuth client, not {clients}")
    credentials = {client_id or DEMO_CLIENT_ID: client_secret or DEMO_CLIENT_SECRET}
    number = 1
    while len(credentials) < clients:
        number += 1
        credentials.setdefault(*demo_credentials(number))  # skips an id the first client already has
    clock = clock or SystemClock()
    model = OrgModel(SimConfig(queues=queues, agents=agents, seed=seed, others=others), clock.time())
    org = SimulatedOrg(model, clock, clients=credentials, rate_limit=rate_limit, **options)
    runner = web.AppRunner(org.create_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    org.url = f"http://{'[' + bound_host + ']' if ':' in bound_host else bound_host}:{bound_port}"
    try:
        yield org
    finally:
        await runner.cleanup()
