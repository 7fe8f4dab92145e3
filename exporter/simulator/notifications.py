"""The Notifications API of the simulated org (https://developer.genesys.cloud/notificationsalerts/notifications/):
channels, subscriptions, sockets.

REST: `POST/GET /api/v2/notifications/channels`, `HEAD .../channels/{id}` and
`GET|PUT|POST|DELETE .../channels/{id}/subscriptions`, behind the org's usual middleware (token,
rate window, faults by route name). A channel belongs to the OAuth client of the token that made
it; each client has at most 20, and a 21st evicts the least recently used, unconnected ones first.
A channel lives 24 h (subscribing extends it) and holds at most 1,000 topics.

The socket, `ws://<simulator>/channels/{id}` (the id is the capability: no auth header), serves
one connection a channel: a second one drops the first. It sends the heartbeat, answers
`{"message": "ping"}`, warns with `v2.system.socket_closing` before the server closes it, and
publishes two topic families from the live model's change feed:

- `v2.users.{id}.activity`: one event per change of the agent's routing status or presence, with
  the state captured when the model made the change (not when the event is sent);
- `v2.analytics.queues.{id}.observations`: the observation query's groups for the queue, at most
  once a second per topic, computed only for queues that changed and have a connected subscriber.
  `observation_style` "changed" (default) sends only the groups and metrics that changed since the
  last event on that socket and topic (the first one carries everything); "full" sends every group.
  Which the real service does is Unconfirmed.

While any socket is open a ticker (on the injected clock, every 0.2 s) advances the model to the
clock's time and sends what is due. Socket faults (`faults.SOCKET_KINDS`) are drawn each tick.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from exporter.clock import Clock
from exporter.simulator.faults import SOCKET_ROUTE, Fault, Faults
from exporter.simulator.model import PRESENCE_NAMES, ROUTING_STATUSES, OrgModel, SimAgent
from exporter.simulator.observations import LongestStyle, observe
from exporter.simulator.wire import MAX_PREDICATES, ApiError, bad_request, iso, json_body

log = logging.getLogger(__name__)

ObservationStyle = Literal["changed", "full"]
MAX_CHANNELS = 20
MAX_TOPICS = 1000
TICK_SECONDS = 0.2
PUBLISH_EVERY_SECONDS = 1.0  # analytics topics: on change, at most once a second
QUEUES_PER_TICK = 500  # observation groups computed in one tick at most; the rest wait their turn
CLOSE_TIMEOUT_SECONDS = 2.0  # how long a server-side close waits for the client's close frame
QUEUE_TOPIC = re.compile(r"v2\.analytics\.queues\.([^.]+)\.observations")
USER_TOPIC = re.compile(r"v2\.users\.([^.]+)\.activity")
# The permission each topic family needs: Unconfirmed; the REST read's for queues.
TOPIC_PERMISSIONS = {"queue": "analytics:queueObservation:view", "user": "analytics:userObservation:view"}
ROUTE_PERMISSIONS = {"notification_subscriptions": (TOPIC_PERMISSIONS["queue"],)}  # what `forbid` names
# What an observation event carries: the query's user metrics (queueId group), conversation metrics
# (queueId + mediaType groups).
OBSERVED_METRICS = (
    "oUserRoutingStatuses",
    "oOnQueueUsers",
    "oMemberUsers",
    "oActiveUsers",
    "oWaiting",
    "oInteracting",
    "oAlerting",
    "oLongestWaiting",
)
HEARTBEAT = {"message": "WebSocket Heartbeat"}
PONG = {"message": "pong"}
ZERO = {"count": 0.0}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Set by the org's middleware on each request: the fault it drew, the OAuth client of the token.
FAULT_KEY = web.RequestKey[Fault | None]("fault")
CLIENT_KEY = web.RequestKey("client_id", str)
Stats = dict[str, float]
Rows = dict[tuple[str, str | None], Stats]  # (metric, qualifier) -> stats


class OrgSettings(Protocol):
    """What the room reads from the org, live (tests change these on a running org)."""

    model: OrgModel
    clock: Clock
    faults: Faults
    permissions: frozenset[str] | None
    longest_style: LongestStyle
    heartbeat_seconds: float
    channel_ttl: float
    closing_delay: float
    observation_style: ObservationStyle
    url: str


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


Outgoing = str | bytes | _Close  # a text frame, a protocol pong (its payload), or the close
Event = tuple[str, str, dict[str, Any]]  # topic kind (queues, agents), topic, event body


@dataclass(eq=False)
class Socket:
    """One open WebSocket. Frames go through a FIFO (`held`) so that lag never reorders them."""

    ws: web.WebSocketResponse
    channel: Channel | None
    next_heartbeat: float
    outbox: asyncio.Queue[Outgoing] = field(default_factory=asyncio.Queue)
    held: collections.deque[tuple[float, Outgoing]] = field(default_factory=collections.deque)
    last_due: float = -math.inf
    silent: bool = False  # the `silent` fault: nothing more is sent, not even a close
    close_at: float | None = None  # maintenance: when the announced close happens
    closing: bool = False  # the writer is closing the socket
    sent: int = 0  # text frames written
    writer: asyncio.Task[None] | None = None

    def push(self, item: Outgoing, now: float, delay: float = 0.0) -> None:
        due = max(now + delay, self.last_due)
        self.last_due = due
        if due <= now and not self.held:
            self.outbox.put_nowait(item)
        else:
            self.held.append((due, item))

    def flush(self, now: float) -> None:
        while self.held and self.held[0][0] <= now:
            self.outbox.put_nowait(self.held.popleft()[1])


@dataclass(eq=False)
class Channel:
    id: str
    client_id: str
    host: str  # host:port the connectUri names
    expires_at: float  # epoch seconds
    last_used: float  # monotonic seconds: the eviction order
    topics: dict[str, None] = field(default_factory=dict)  # permitted topics, in the order given
    socket: Socket | None = None
    sent: dict[str, dict[str | None, Rows]] = field(default_factory=dict)  # queue -> media -> rows last sent

    @property
    def connect_uri(self) -> str:
        return f"ws://{self.host}/channels/{self.id}"

    def body(self) -> dict[str, Any]:
        """Channel (SDK model)."""
        return {"connectUri": self.connect_uri, "id": self.id, "expires": iso(self.expires_at)}


def envelope(topic: str, body: dict[str, Any]) -> str:
    """A socket message as the service frames it: JSON text, a fresh correlation id each."""
    return json.dumps(
        {"topicName": topic, "version": "2", "eventBody": body, "metadata": {"CorrelationId": str(uuid.uuid4())}},
        separators=(",", ":"),
    )


def topic_target(model: OrgModel, topic: str) -> tuple[str, str] | None:
    """("queue"|"user", id) for a topic this org publishes, None for anything else."""
    if (match := QUEUE_TOPIC.fullmatch(topic)) and match[1] in model.queues:
        return "queue", match[1]
    if (match := USER_TOPIC.fullmatch(topic)) and match[1] in model.agents:
        return "user", match[1]
    return None


class Notifications:
    """Channels, subscriptions and sockets of every OAuth client, and the ticker that feeds them."""

    def __init__(self, org: OrgSettings) -> None:
        self.org = org
        self.max_channels = MAX_CHANNELS
        self.max_topics = MAX_TOPICS
        self.tick_seconds = TICK_SECONDS
        self.channels: dict[str, Channel] = {}
        self.sockets: set[Socket] = set()
        self._agent_subs: dict[str, set[Channel]] = {}
        self._queue_subs: dict[str, set[Channel]] = {}
        self._activity: list[tuple[str, dict[str, Any]]] = []  # (agent id, body) captured at change time
        self._dirty: set[str] = set()  # subscribed queues changed since their last publication
        self._published: dict[str, float] = {}  # queue -> monotonic time of its last publication
        self._ticker: asyncio.Task[None] | None = None
        self._queues_since = org.model.now  # joined queues never change in the model: since its start
        org.model.listeners.append(self)

    @property
    def unpublished(self) -> bool:
        """Some subscribed queue changed since its last publication (a test waits for this to clear)."""
        return bool(self._dirty)

    # ----- the model's change feed ------------------------------------------------------------
    def agent_changed(self, agent: SimAgent) -> None:
        channels = self._agent_subs.get(agent.id)
        if channels and any(c.socket is not None for c in channels):
            self._activity.append((agent.id, self.activity_body(agent)))
        for queue_id, joined in agent.queues.items():
            if joined and queue_id in self._queue_subs:
                self._dirty.add(queue_id)

    def queue_changed(self, queue_id: str) -> None:
        if queue_id in self._queue_subs:
            self._dirty.add(queue_id)

    def activity_body(self, agent: SimAgent) -> dict[str, Any]:
        """AgentActivityChangedTopicAgentActivity, spelt as `/api/v2/users?expand=` spells it."""
        return {
            "id": agent.id,
            "routingStatus": {"status": agent.routing_status, "startTime": iso(agent.status_since)},
            "presence": {
                "presenceDefinition": {
                    "id": self.org.model.presence_ids[agent.presence],
                    "systemPresence": PRESENCE_NAMES[agent.presence],
                },
                "presenceMessage": "",
                "modifiedDate": iso(agent.presence_since),
            },
            "activeQueueIds": sorted(q for q, joined in agent.queues.items() if joined),
            "dateActiveQueuesChanged": iso(self._queues_since),
        }

    # ----- channels ---------------------------------------------------------------------------
    def channels_of(self, client_id: str) -> list[Channel]:
        """The client's live channels, oldest first."""
        now = self.org.clock.time()
        return [c for c in self.channels.values() if c.client_id == client_id and c.expires_at > now]

    def create_channel(self, client_id: str, host: str = "") -> Channel:
        """A new channel for the client; its 21st evicts one (least recently used, unconnected first)."""
        self.expire()
        while len(self.channels_of(client_id)) >= self.max_channels and self.evict_one(client_id) is not None:
            pass
        clock = self.org.clock
        channel = Channel(
            id=f"streaming-0-{secrets.token_hex(13)}",
            client_id=client_id,
            host=host or urlsplit(self.org.url).netloc,
            expires_at=clock.time() + self.org.channel_ttl,
            last_used=clock.monotonic(),
        )
        self.channels[channel.id] = channel
        return channel

    def create_elsewhere(self, client_id: str, count: int = 1) -> list[Channel]:
        """Admin hook: channels the client makes from another process (for eviction tests)."""
        return [self.create_channel(client_id) for _ in range(count)]

    def evict_one(self, client_id: str) -> Channel | None:
        """Evict the channel a 21st would: the least recently used, unconnected ones first."""
        live = self.channels_of(client_id)
        if not live:
            return None
        victim = min(live, key=lambda c: (c.socket is not None, c.last_used))
        self._drop(victim, self._system_body(victim, "no_longer_subscribed", "another_channel_subscribed"))
        return victim

    def revoke(self, client_ids: Collection[str] | None = None) -> None:
        """Tokens revoked: the clients' sockets hear so and close; their channels are gone."""
        for channel in list(self.channels.values()):
            if client_ids is None or channel.client_id in client_ids:
                self._drop(channel, self._system_body(channel, "token_revoked", "user_tokens_revoked"))

    def maintenance(self, delay: float | None = None) -> None:
        """Every socket is told it closes for maintenance, and closes `delay` s later."""
        for sock in list(self.sockets):
            self._announce_close(sock, self.org.closing_delay if delay is None else delay)

    def expire(self) -> None:
        now = self.org.clock.time()
        for channel in [c for c in self.channels.values() if c.expires_at <= now]:
            self._drop(channel, None)

    def _drop(self, channel: Channel, message: dict[str, Any] | None) -> None:
        self.channels.pop(channel.id, None)
        self._index(channel, channel.topics, add=False)
        channel.topics.clear()
        if channel.socket is not None:
            self._close(channel.socket, message)

    def _forget(self, channel: Channel) -> None:
        """The channel is gone without a close: its socket says `{"result": "404"}` (as other clients of
        the service have seen for an expired or replaced channel), then carries nothing more, though it
        stays open and answers pings."""
        self.channels.pop(channel.id, None)
        self._index(channel, channel.topics, add=False)
        channel.topics.clear()
        sock = channel.socket
        if sock is not None:
            sock.push(
                json.dumps({"result": "404", "message": "The channel was not found."}), self.org.clock.monotonic()
            )
            sock.channel, channel.socket = None, None

    def _system_body(self, channel: Channel, kind: str | None, reason: str | None) -> dict[str, Any]:
        """SystemMessageSystemMessage for `v2.system.socket_closing`."""
        body: dict[str, Any] = {"channelId": channel.id}
        if kind is None:
            body["message"] = "The socket will close shortly for service maintenance: open a new one."
        else:
            body["systemTopicType"], body["reason"] = kind, reason
            body["message"] = {
                "no_longer_subscribed": "This channel is no longer subscribed: another channel took its place.",
                "token_revoked": "The tokens of this client were revoked.",
            }.get(kind, "The socket is closing.")
        body["oauthClientId"] = channel.client_id
        return body

    def _close(self, sock: Socket, message: dict[str, Any] | None, code: int = WSCloseCode.OK) -> None:
        """Send `message` (a socket_closing body) if any, then close; the socket leaves its channel."""
        now = self.org.clock.monotonic()
        if message is not None:
            sock.push(envelope("v2.system.socket_closing", message), now)
        sock.push(_Close(code, message["message"][:120] if message else "channel closed"), now)
        sock.close_at = None
        if sock.channel is not None and sock.channel.socket is sock:
            sock.channel.socket = None
        sock.channel = None

    def _announce_close(self, sock: Socket, delay: float) -> None:
        if sock.close_at is not None or sock.channel is None:
            return
        now = self.org.clock.monotonic()
        sock.push(envelope("v2.system.socket_closing", self._system_body(sock.channel, None, None)), now)
        sock.close_at = now + delay

    def _index(self, channel: Channel, topics: Iterable[str], *, add: bool) -> None:
        for topic in topics:
            target = topic_target(self.org.model, topic)
            if target is None:
                continue
            kind, target_id = target
            index = self._queue_subs if kind == "queue" else self._agent_subs
            if add:
                index.setdefault(target_id, set()).add(channel)
                continue
            if (subs := index.get(target_id)) is not None:
                subs.discard(channel)
                if not subs:
                    del index[target_id]
            channel.sent.pop(target_id, None)  # re-subscribed later, its first event is in full again

    def _set_topics(self, channel: Channel, topics: dict[str, None]) -> None:
        self._index(channel, [t for t in channel.topics if t not in topics], add=False)
        self._index(channel, [t for t in topics if t not in channel.topics], add=True)
        channel.topics = topics

    # ----- REST ---------------------------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, str, Handler]]:
        base = "/api/v2/notifications/channels"
        return [
            ("POST", base, "notification_channels", self._channels_handler),
            ("GET", base, "notification_channels", self._channels_handler),
            ("HEAD", base + "/{channelId}", "notification_channel", self._head),
            *(
                (method, base + "/{channelId}/subscriptions", "notification_subscriptions", self._subscriptions)
                for method in ("GET", "PUT", "POST", "DELETE")
            ),
            ("GET", "/channels/{channelId}", SOCKET_ROUTE, self._socket),
        ]

    def _own_channel(self, request: web.Request) -> Channel:
        """The caller's live channel named in the path, marked used; 404 for anyone else's."""
        channel = self.channels.get(request.match_info["channelId"])
        if (
            channel is None
            or channel.client_id != request.get(CLIENT_KEY)
            or channel.expires_at <= self.org.clock.time()
        ):
            raise ApiError(404, "not.found", "The requested channel was not found.")
        channel.last_used = self.org.clock.monotonic()
        return channel

    async def _channels_handler(self, request: web.Request) -> web.Response:
        client_id = request.get(CLIENT_KEY, "")
        if request.method == "POST":
            return web.json_response(self.create_channel(client_id, request.host).body())
        self.expire()
        return web.json_response({"entities": [c.body() for c in self.channels_of(client_id)]})

    async def _head(self, request: web.Request) -> web.Response:
        self._own_channel(request)
        return web.Response(status=200)

    async def _subscriptions(self, request: web.Request) -> web.Response:
        channel = self._own_channel(request)
        if request.method == "DELETE":
            self._set_topics(channel, {})
            return web.Response(status=204)
        rejected: list[dict[str, Any]] = []
        if request.method in ("PUT", "POST"):
            wanted, rejected = self._vet(request, await _topics_body(request))
            topics = wanted if request.method == "PUT" else {**channel.topics, **wanted}
            if len(topics) > self.max_topics:
                raise bad_request(
                    f"A channel can subscribe to at most {self.max_topics} topics; this would make {len(topics)}."
                )
            self._set_topics(channel, topics)
            channel.expires_at = self.org.clock.time() + self.org.channel_ttl
        permitted = [{"id": topic, "state": "Permitted"} for topic in channel.topics]
        return web.json_response({"entities": permitted + rejected})

    def _vet(self, request: web.Request, topics: list[str]) -> tuple[dict[str, None], list[dict[str, Any]]]:
        """Split the topics into permitted and Rejected entries, or refuse the call without ignoreErrors."""
        fault = request.get(FAULT_KEY)
        refuse_all = fault is not None and fault.kind == "reject"
        ignore = request.query.get("ignoreErrors", "false").lower() == "true" or refuse_all
        granted = self.org.permissions
        permitted: dict[str, None] = {}
        rejected: list[dict[str, Any]] = []
        for topic in dict.fromkeys(topics):
            target = topic_target(self.org.model, topic)
            if target is None:
                if not ignore:
                    raise bad_request(f"Unknown topic {topic!r}")
                rejected.append({"id": topic, "state": "Rejected", "rejectionReason": "unknown topic"})
                continue
            needed = TOPIC_PERMISSIONS[target[0]]
            if refuse_all or (granted is not None and needed not in granted):
                if not ignore:
                    raise ApiError(
                        403,
                        "missing.permissions",
                        f"You are missing the following permission(s): [{needed}]",
                        messageWithParams="You are missing the following permission(s): {permissions}",
                        messageParams={"permissions": needed},
                    )
                rejected.append(
                    {
                        "id": topic,
                        "state": "Rejected",
                        "rejectionReason": "missing permissions",
                        "missingPermissions": [needed],
                    }
                )
                continue
            permitted[topic] = None
        return permitted, rejected

    # ----- the socket ---------------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.StreamResponse:
        channel = self.channels.get(request.match_info["channelId"])
        if channel is None or channel.expires_at <= self.org.clock.time():
            raise ApiError(404, "not.found", "The requested channel was not found.")
        ws = web.WebSocketResponse(autoping=False, timeout=CLOSE_TIMEOUT_SECONDS)
        await ws.prepare(request)
        clock = self.org.clock
        sock = Socket(ws, None, clock.monotonic() + self.org.heartbeat_seconds)
        if channel.id in self.channels:  # still there after the handshake
            if channel.socket is not None:  # one socket a channel: the newer one wins
                self._close(
                    channel.socket,
                    self._system_body(channel, "no_longer_subscribed", "another_channel_subscribed"),
                )
            channel.socket, sock.channel = sock, channel
            channel.last_used = clock.monotonic()
            channel.sent.clear()  # nothing sent on this socket yet: the next events are in full
        else:
            sock.push(_Close(WSCloseCode.OK, "channel closed"), clock.monotonic())
        self.sockets.add(sock)
        sock.writer = asyncio.create_task(self._write(sock))
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick_while_open())
        try:
            async for message in ws:
                self._on_message(sock, message)
        finally:
            self.sockets.discard(sock)
            if sock.channel is not None and sock.channel.socket is sock:
                sock.channel.socket = None
            sock.channel = None
            if sock.closing:
                with contextlib.suppress(Exception):
                    await sock.writer  # finishing the close handshake
            else:
                sock.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sock.writer
        return ws

    def _on_message(self, sock: Socket, message: WSMessage) -> None:
        now = self.org.clock.monotonic()
        if message.type is WSMsgType.PING:
            sock.push(bytes(message.data), now)
        elif message.type is WSMsgType.TEXT:
            try:
                data = json.loads(message.data)
            except ValueError:
                return
            if isinstance(data, dict) and data.get("message") == "ping":
                sock.push(envelope("channel.metadata", PONG), now)
            if sock.channel is not None:
                sock.channel.last_used = now

    async def _write(self, sock: Socket) -> None:
        ws = sock.ws
        while True:
            item = await sock.outbox.get()
            if sock.silent:
                continue
            try:
                if isinstance(item, _Close):
                    sock.closing = True
                    await ws.close(code=item.code, message=item.reason.encode())
                    return
                if isinstance(item, bytes):
                    await ws.pong(item)
                else:
                    await ws.send_str(item)
                    sock.sent += 1
            except (ConnectionError, RuntimeError):
                return

    async def close(self, _: web.Application | None = None) -> None:
        """Stop the ticker and close every socket (the app's on_shutdown)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await asyncio.gather(*(self._shut(sock) for sock in list(self.sockets)))

    @staticmethod
    async def _shut(sock: Socket) -> None:
        if sock.writer is not None:
            sock.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sock.writer
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sock.ws.close(code=WSCloseCode.GOING_AWAY), CLOSE_TIMEOUT_SECONDS)

    # ----- the ticker ---------------------------------------------------------------------------
    async def _tick_while_open(self) -> None:
        while self.sockets:
            await self.org.clock.sleep(self.tick_seconds)
            try:
                await self.tick()
            except Exception:  # a bug must not silence every socket
                log.exception("notifications tick failed")

    async def tick(self) -> None:
        """Advance the model to now, then send what is due on every socket."""
        org = self.org
        now, mono = org.clock.time(), org.clock.monotonic()
        org.model.advance(now)
        self.expire()
        for sock, channel in [(s, s.channel) for s in self.sockets if s.channel is not None]:
            fault = org.faults.pick(SOCKET_ROUTE, mono, ("silent", "closing", "evict", "result_404"), channel.client_id)
            if fault is None:
                continue
            if fault.kind == "silent":
                sock.silent = True
            elif fault.kind == "closing":
                self._announce_close(sock, fault.delay or org.closing_delay)
            elif fault.kind == "result_404":
                self._forget(channel)
            else:
                self.evict_one(channel.client_id)
        events: dict[Socket, list[Event]] = collections.defaultdict(list)
        activity, self._activity = self._activity, []
        for agent_id, body in activity:
            for channel in self._agent_subs.get(agent_id, ()):
                if channel.socket is not None:
                    events[channel.socket].append(("agents", f"v2.users.{agent_id}.activity", body))
        await self._observations(now, mono, events)
        for sock, frames in events.items():
            self._deliver(sock, frames, mono)
        for sock in list(self.sockets):
            if sock.close_at is not None and sock.close_at <= mono + 1e-6:
                self._close(sock, None, WSCloseCode.GOING_AWAY)
            elif sock.channel is not None and mono >= sock.next_heartbeat - 1e-6:  # float ticks
                sock.push(envelope("channel.metadata", HEARTBEAT), mono)
                sock.next_heartbeat = max(sock.next_heartbeat + org.heartbeat_seconds, mono)
            sock.flush(mono)

    def _deliver(self, sock: Socket, events: list[Event], now: float) -> None:
        """The tick's events for one socket, as the `drop` or `event_shape` fault (for their topic
        kind) and the `duplicate`, `reorder` or `lag` fault have them."""
        owner = sock.channel.client_id if sock.channel is not None else None
        wrong = self.org.faults.pick(SOCKET_ROUTE, now, ("drop", "event_shape"), owner)
        frames = []
        for kind, topic, body in events:
            if wrong is None or wrong.topics not in (None, kind):
                frames.append(envelope(topic, body))
            elif wrong.kind == "event_shape":
                frames.append(envelope(topic, misshapen(kind, body)))
        fault = self.org.faults.pick(SOCKET_ROUTE, now, ("duplicate", "reorder", "lag"), owner)
        delay = 0.0
        if fault is not None and fault.kind == "duplicate":
            frames = [f for frame in frames for f in (frame, frame)]
        elif fault is not None and fault.kind == "reorder":
            frames = frames[::-1]
        elif fault is not None:
            delay = fault.delay
        for frame in frames:
            sock.push(frame, now, delay)

    async def _observations(self, now: float, mono: float, events: dict[Socket, list[Event]]) -> None:
        """Publish the changed queues that are due (a second since their last), oldest first."""
        due = [
            q
            for q in self._dirty
            if mono - self._published.get(q, -math.inf) >= PUBLISH_EVERY_SECONDS
            and any(c.socket is not None for c in self._queue_subs.get(q, ()))
        ]
        due.sort(key=lambda q: self._published.get(q, -math.inf))
        interval = f"{iso(now)}/{iso(now)}"
        style = self.org.observation_style
        for start in range(0, min(len(due), QUEUES_PER_TICK), MAX_PREDICATES):
            batch = due[start : start + MAX_PREDICATES]
            query = {
                "metrics": list(OBSERVED_METRICS),
                "filter": {"type": "or", "predicates": [{"dimension": "queueId", "value": q} for q in batch]},
            }
            groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
            for result in observe(self.org.model, query, self.org.longest_style)["results"]:
                groups[result["group"]["queueId"]].append(result)
            for queue_id in batch:
                self._dirty.discard(queue_id)
                self._published[queue_id] = mono
                topic = f"v2.analytics.queues.{queue_id}.observations"
                for channel in self._queue_subs.get(queue_id, ()):
                    if channel.socket is not None:
                        for body in _observation_bodies(channel, queue_id, groups[queue_id], interval, style):
                            events[channel.socket].append(("queues", topic, body))
            await asyncio.sleep(0)  # a big org's tick yields between batches


def misshapen(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """An event body in a shape third-party documentation shows and the SDK's models do not: an
    observation's metric rows straight in `data`, an activity's parts as bare strings."""
    if kind == "queues":
        return {"group": body["group"], "data": [row for interval in body["data"] for row in interval["metrics"]]}
    return {
        "id": body["id"],
        "routingStatus": body["routingStatus"]["status"],
        "presence": body["presence"]["presenceDefinition"]["systemPresence"],
    }


def _observation_bodies(
    channel: Channel, queue_id: str, results: list[dict[str, Any]], interval: str, style: ObservationStyle
) -> list[dict[str, Any]]:
    """StatEventQueueTopicStatsNotification bodies for one queue, and the channel's new baseline.

    oOnQueueUsers carries every routing status, zero counts included (the query answers only those
    with someone in them): a client that merges events into what a poll told it must not keep a
    count the event leaves out because it is zero. In "changed" style only the rows whose value
    changed since the channel's last event on the topic are sent (the first event sends them all).
    """
    before = channel.sent.get(queue_id)
    after: dict[str | None, Rows] = {}
    bodies: list[dict[str, Any]] = []
    for result in results:
        group: dict[str, str] = result["group"]
        media = group.get("mediaType")
        rows: Rows = {
            (row["metric"], row.get("qualifier")): {k: float(v) for k, v in row["stats"].items()}
            for row in result["data"]
        }
        if media is None:  # an event is a whole picture of what it carries: no qualifier left to mean zero
            rows = {**{("oOnQueueUsers", s): ZERO for s in ROUTING_STATUSES}, **rows}
        previous = before.get(media) if before is not None else None
        if style == "full" or previous is None:
            send = rows
        else:
            rows = {**rows, **{key: ZERO for key in previous if key not in rows}}
            send = {key: stats for key, stats in rows.items() if previous.get(key) != stats}
        after[media] = rows
        if send:
            metrics = [
                {"metric": metric, **({"qualifier": qualifier} if qualifier is not None else {}), "stats": stats}
                for (metric, qualifier), stats in send.items()
            ]
            bodies.append({"group": dict(group), "data": [{"interval": interval, "metrics": metrics}]})
    channel.sent[queue_id] = after
    return bodies


async def _topics_body(request: web.Request) -> list[str]:
    """`[{"id": topic}, ...]`, the body of PUT/POST subscriptions."""
    body = await json_body(request)
    if not isinstance(body, list) or not all(isinstance(t, dict) and isinstance(t.get("id"), str) for t in body):
        raise bad_request('The body must be a list of topics: [{"id": "v2.users.<id>.activity"}, ...]')
    return [t["id"] for t in body]
