"""The Genesys Cloud Notifications API: channels, topic subscriptions, and the socket that carries events.

A channel is opened with a REST call and read over one WebSocket at its `connectUri`; topics are
subscribed to it with REST calls that take budget like any request
(https://developer.genesys.cloud/notificationsalerts/notifications/). The channel id is a
capability (whoever holds it can read the stream), so it is registered for redaction the moment it
is known and is never logged, shown or exported: callers name a channel by its place in their pool.

`ChannelSocket` is the protocol on the wire and nothing more: it answers for the channel's health
(heartbeats about every 30 s, pongs to our pings when it is quiet, dead after `dead_after` seconds
of silence), hands over every event envelope as it arrives, and says why the socket ended. What
the events mean is the push room's business (`exporter.push`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporter import logs
from exporter.clock import Clock
from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import NOTIFICATION_CHANNEL_LIST, NOTIFICATION_CHANNELS, NOTIFICATION_SUBSCRIPTIONS
from exporter.genesys.models import Group, MetricRow, PresencePart, RoutingStatusPart, Stats
from exporter.logs import shape_of

log = structlog.get_logger(__name__)

MAX_TOPICS_PER_CHANNEL = (
    1_000  # more is a 400 (https://developer.genesys.cloud/forum/t/notifications-service-limits-concepts/10312)
)
MAX_CHANNELS_PER_CLIENT = 20  # a 21st evicts the least recently used channel
HEARTBEAT_TOPIC = "channel.metadata"
CLOSING_TOPIC = "v2.system.socket_closing"

TopicKind = Literal["queues", "agents"]
TOPIC_KINDS: tuple[TopicKind, ...] = get_args(TopicKind)  # queues first: the order topic capacity goes in
_TOPIC_SHAPES: dict[TopicKind, tuple[str, str]] = {
    "queues": ("v2.analytics.queues.", ".observations"),
    "agents": ("v2.users.", ".activity"),
}


def topic_for(kind: TopicKind, item_id: str) -> str:
    """The topic that pushes one queue's observations or one agent's routing status and presence."""
    prefix, suffix = _TOPIC_SHAPES[kind]
    return f"{prefix}{item_id}{suffix}"


def item_of(topic: str) -> tuple[TopicKind, str] | None:
    """The inverse of `topic_for`; None for a topic the exporter never subscribes."""
    for kind, (prefix, suffix) in _TOPIC_SHAPES.items():
        if topic.startswith(prefix) and topic.endswith(suffix) and len(topic) > len(prefix) + len(suffix):
            return kind, topic[len(prefix) : -len(suffix)]
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Channel(_Model):
    """Channel: `id` is the capability; `connectUri` holds it too."""

    id: str
    connect_uri: str = Field(alias="connectUri")
    expires: str | None = None

    def __repr__(self) -> str:  # never the id, even in a traceback
        return "Channel(<redacted>)"

    __str__ = __repr__

    def expires_at(self) -> float | None:
        """Epoch seconds the channel ends, when the API said (24 h after the last subscription)."""
        try:
            return datetime.fromisoformat(self.expires).timestamp() if self.expires else None
        except ValueError:
            return None


class ChannelListing(_Model):
    entities: list[Channel] = []


class TopicState(_Model):
    """ChannelTopic: whether one topic was granted, and if not, why."""

    id: str
    state: str | None = None  # Permitted or Rejected
    rejection_reason: str | None = Field(None, alias="rejectionReason")
    missing_permissions: list[str] = Field(default_factory=list, alias="missingPermissions")

    @property
    def permitted(self) -> bool:
        return (self.state or "").lower() == "permitted"


class TopicListing(_Model):
    entities: list[TopicState] = []


# ----- event bodies ----------------------------------------------------------------------------
class Envelope(_Model):
    topic_name: str = Field(alias="topicName")
    event_body: Any = Field(None, alias="eventBody")


class AgentActivity(_Model):
    """AgentActivityChangedTopicAgentActivity (`v2.users.{id}.activity`)."""

    id: str
    routing_status: RoutingStatusPart | None = Field(None, alias="routingStatus")
    presence: PresencePart | None = None


class QueueStatMetric(_Model):
    """StatEventQueueTopicMetricStats: `stats` is a map of doubles (`{"count": 1.0}`)."""

    metric: str
    qualifier: str | None = None
    stats: dict[str, float | None] = {}

    def row(self) -> MetricRow:
        """The same row a queue observation query answers, so one reader serves both paths."""
        stats = {k: v for k, v in self.stats.items() if v is not None}
        count = stats.get("count")
        return MetricRow(
            metric=self.metric,
            qualifier=self.qualifier,
            stats=Stats(
                count=round(count) if count is not None else None,
                max=stats.get("max"),
                calculated_metric_value=stats.get("calculatedMetricValue"),
            ),
        )


class QueueStatInterval(_Model):
    interval: str | None = None
    metrics: list[QueueStatMetric] = []


class QueueStats(_Model):
    """StatEventQueueTopicStatsNotification (`v2.analytics.queues.{id}.observations`)."""

    group: Group
    data: list[QueueStatInterval] = []

    def rows(self) -> list[MetricRow]:
        return [metric.row() for interval in self.data for metric in interval.metrics]


class SystemMessage(_Model):
    """SystemMessageSystemMessage (`v2.system.socket_closing`)."""

    system_topic_type: str | None = Field(None, alias="systemTopicType")
    reason: str | None = None
    message: str | None = None


# ----- REST ------------------------------------------------------------------------------------
# A channel is the OAuth client's that made it: every call about one names that client (`as_client`,
# its label), and may leave it out only when the exporter has one client.
async def create_channel(client: GenesysClient, as_client: str | None = None) -> Channel:
    channel = await client.send_as(NOTIFICATION_CHANNELS, Channel, as_client=as_client)
    _keep_secret(channel)
    return channel


async def list_channels(client: GenesysClient, as_client: str | None = None) -> list[Channel]:
    """The OAuth client's channels, such as those a previous run of this exporter left behind."""
    listing = await client.send_as(
        NOTIFICATION_CHANNEL_LIST, ChannelListing, params={"includechannels": "oauthclient"}, as_client=as_client
    )
    for channel in listing.entities:
        _keep_secret(channel)
    return listing.entities


async def subscribe(
    client: GenesysClient, channel: Channel, topics: Sequence[str], as_client: str | None = None
) -> list[TopicState]:
    """Replace the channel's topics; a topic we lack permission for comes back Rejected, not a 403."""
    if len(topics) > MAX_TOPICS_PER_CHANNEL:
        raise ValueError(f"a channel holds at most {MAX_TOPICS_PER_CHANNEL} topics, got {len(topics)}")
    listing = await client.send_as(
        NOTIFICATION_SUBSCRIPTIONS,
        TopicListing,
        body=[{"id": topic} for topic in topics],
        params={"ignoreErrors": "true"},
        as_client=as_client,
        channelId=channel.id,
    )
    return listing.entities


def _keep_secret(channel: Channel) -> None:
    logs.redact(channel.id)
    logs.redact(channel.connect_uri)


# ----- the socket ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Closing:
    """The service said the socket is about to close (maintenance, eviction, revoked tokens)."""

    reason: str  # the bounded label: maintenance, another_channel_subscribed, user_tokens_revoked, ...
    detail: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The socket is gone; `reason` is a bounded label (silent, closed, error, ...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """A frame of no shape the protocol knows: not heard from the channel, and reported by its shape."""

    shape: Any


Message = Envelope | Closing | Unknown


def ended_by_result(frame: Any) -> Ended | None:
    """A `{"result": "404", ...}` frame, which other clients of the service take for "this channel
    has expired or been replaced", ends the channel; a non-2xx `result` of any code does. A 2xx one
    is an acknowledgement. None for a frame that is not a result."""
    if not isinstance(frame, dict) or "result" not in frame or "topicName" in frame:
        return None
    code = str(frame["result"]).strip()
    if code.startswith("2"):
        return Ended("")
    return Ended("result_404" if code == "404" else "result_error")


CLOSING_REASONS = frozenset({"another_channel_subscribed", "user_tokens_revoked"})  # the SDK's enum


def closing_of(body: Any) -> Closing:
    """The notice's reason as a bounded label: the SDK's reasons, `maintenance` without one, else `other`."""
    try:
        notice = SystemMessage.model_validate(body)
    except ValidationError:
        return Closing("maintenance", "socket_closing")
    if notice.reason in CLOSING_REASONS:
        reason = notice.reason
    elif notice.reason is None and notice.system_topic_type in (None, "subscription_changed"):
        reason = "maintenance"
    elif notice.system_topic_type == "token_revoked":
        reason = "user_tokens_revoked"
    else:
        reason = "other"
    return Closing(reason, notice.message or notice.system_topic_type or "socket_closing")


class ChannelSocket:
    """One WebSocket on one channel, with its health: heard from recently, or dead.

    A healthy channel is one we hear from: heartbeats come about every 30 s, and when it has been
    quiet for `ping_after` seconds we ping, which the service answers on the metadata topic. A ping
    unanswered for `pong_within` seconds, or `dead_after` seconds of silence, and the socket is
    treated as dead and closed, whatever TCP thinks: a socket that goes silent without a close frame
    would otherwise look healthy forever, its data shown as current. With the defaults a silent
    socket is dead 30 s after its last word.
    """

    def __init__(
        self,
        client: GenesysClient,
        channel: Channel,
        clock: Clock,
        *,
        ping_after: float = 20.0,
        pong_within: float = 10.0,
        dead_after: float = 60.0,
    ) -> None:
        self._client = client
        self._channel = channel
        self._clock = clock
        self._ping_after = ping_after
        self._pong_within = pong_within
        self._dead_after = dead_after
        self.last_heard = clock.monotonic()
        self.ended: Ended | None = None

    async def messages(self, on_open: Callable[[], None] = lambda: None) -> AsyncIterator[Message]:
        """Every event envelope and closing notice, in arrival order, until the socket ends (`ended` says why).

        `on_open` is called once the socket is connected, before the first message is read. A
        non-2xx `result` frame ends the socket (`ended` says which).
        """
        try:
            async with self._client.websocket(self._channel.connect_uri) as ws:
                self.last_heard = self._clock.monotonic()
                on_open()
                watchdog = asyncio.create_task(self._watch(ws), name="channel-watchdog")
                try:
                    async for frame in ws:
                        if frame.type != aiohttp.WSMsgType.TEXT:
                            continue
                        message = self._read(frame.data)
                        if isinstance(message, Ended):
                            self.ended = message
                            log.warning("notification channel ended by the service", reason=message.reason)
                            await ws.close()
                            break
                        if message is not None:
                            yield message
                finally:
                    watchdog.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watchdog
                if self.ended is None:
                    self.ended = Ended("closed")
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            self.ended = Ended("error")
            log.warning("notification socket failed", error_type=type(error).__name__, error=str(error))

    def _read(self, text: str) -> Message | Ended | None:
        """What a frame says. Only a frame the protocol knows (an envelope, a result) counts as
        hearing from the channel: anything else could come from a broken path that no longer
        carries events, and must not keep a dead channel looking alive."""
        try:
            frame = json.loads(text)
        except ValueError:
            return Unknown("not JSON")
        result = ended_by_result(frame)
        if result is not None:
            self.last_heard = self._clock.monotonic()
            return result if result.reason else None
        try:
            envelope = Envelope.model_validate(frame)
        except ValidationError:
            return Unknown(shape_of(frame))
        self.last_heard = self._clock.monotonic()
        if envelope.topic_name == HEARTBEAT_TOPIC:
            return None
        if envelope.topic_name == CLOSING_TOPIC:
            return closing_of(envelope.event_body)
        return envelope

    async def _watch(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Ping when quiet; close the socket when a ping goes unanswered for `pong_within` seconds,
        or after `dead_after` seconds without a word, whichever comes first."""
        pinged_at: float | None = None
        step = min(5.0, self._ping_after / 4, self._pong_within / 2)
        while not ws.closed:
            await self._clock.sleep(step)
            now = self._clock.monotonic()
            quiet = now - self.last_heard
            unanswered = pinged_at is not None and self.last_heard < pinged_at and now - pinged_at >= self._pong_within
            if quiet >= self._dead_after or unanswered:
                self.ended = Ended("silent")
                await ws.close()
                return
            if quiet >= self._ping_after and (pinged_at is None or self.last_heard >= pinged_at):
                pinged_at = now
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str('{"message":"ping"}')
