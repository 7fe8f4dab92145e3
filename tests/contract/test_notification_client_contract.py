"""The exporter reads what the official SDK's models write: every notification body the client parses.

Each body is built as an SDK model, serialized to wire JSON by the SDK itself, and read by the
exporter's own models and readers. The simulator's bodies are refereed the other way round
(test_notification_contract.py): the SDK stands between the two, so neither can agree with the
other on a misreading of the API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import PureCloudPlatformClientV2 as sdk
import pytest

from exporter.genesys.notifications import (
    AgentActivity,
    Channel,
    ChannelListing,
    QueueStats,
    TopicListing,
    closing_of,
)
from exporter.sources.agent_states import agent_state
from exporter.sources.queue_states import QueueDraft

pytestmark = pytest.mark.contract

_client = sdk.ApiClient()
AT = datetime(2026, 5, 14, 10, 0, 1, 250000, tzinfo=UTC)


def wire(model: Any) -> Any:
    return _client.sanitize_for_serialization(model)


def test_channel_and_its_listing() -> None:
    channel = sdk.Channel()
    channel.connect_uri = "wss://streaming.mypurecloud.com/channels/streaming-0-abc"
    channel.id = "streaming-0-abc"
    channel.expires = AT
    ours = Channel.model_validate(wire(channel))
    assert ours.id == "streaming-0-abc" and ours.connect_uri.startswith("wss://")
    assert ours.expires_at() == AT.timestamp()
    assert "streaming-0-abc" not in repr(ours)  # a capability: never in a repr or a traceback
    listing = sdk.ChannelEntityListing()
    listing.entities = [channel]
    assert [c.id for c in ChannelListing.model_validate(wire(listing)).entities] == ["streaming-0-abc"]


def test_subscription_answer_with_a_rejected_topic() -> None:
    permitted, rejected = sdk.ChannelTopic(), sdk.ChannelTopic()
    permitted.id, permitted.state = "v2.users.u1.activity", "Permitted"
    rejected.id, rejected.state = "v2.analytics.queues.q1.observations", "Rejected"
    rejected.rejection_reason = "missing permissions"
    rejected.missing_permissions = ["analytics:queueObservation:view"]
    listing = sdk.ChannelTopicEntityListing()
    listing.entities = [permitted, rejected]
    states = TopicListing.model_validate(wire(listing)).entities
    assert [s.permitted for s in states] == [True, False]
    assert states[1].missing_permissions == ["analytics:queueObservation:view"]


def test_agent_activity_reads_into_the_same_state_as_a_poll() -> None:
    routing = sdk.AgentActivityChangedTopicRoutingStatus()
    routing.status, routing.start_time = "INTERACTING", AT
    definition = sdk.AgentActivityChangedTopicOrganizationPresence()
    definition.id, definition.system_presence = "p-1", "On Queue"
    presence = sdk.AgentActivityChangedTopicPresence()
    presence.presence_definition, presence.modified_date = definition, AT
    body = sdk.AgentActivityChangedTopicAgentActivity()
    body.id, body.routing_status, body.presence, body.active_queue_ids = "u1", routing, presence, ["q1"]
    event = AgentActivity.model_validate(wire(body))
    state = agent_state(event.routing_status, event.presence)
    assert (state.routing_status, state.presence) == ("interacting", "on_queue")
    assert state.status_since == state.presence_since == AT.timestamp()


def test_queue_observation_event_reads_like_an_observation_row() -> None:
    waiting = sdk.StatEventQueueTopicMetricStats()
    waiting.metric, waiting.stats = "oWaiting", {"count": 3.0}
    longest = sdk.StatEventQueueTopicMetricStats()
    longest.metric, longest.stats = "oLongestWaiting", {"count": 3.0, "calculatedMetricValue": AT.timestamp() * 1000}
    interval = sdk.StatEventQueueTopicIntervalMetrics()
    interval.interval, interval.metrics = "2026-05-14T10:00:00.000Z/2026-05-14T10:00:01.000Z", [waiting, longest]
    body = sdk.StatEventQueueTopicStatsNotification()
    body.group, body.data = {"queueId": "q1", "mediaType": "voice"}, [interval]
    event = QueueStats.model_validate(wire(body))
    draft = QueueDraft()
    for row in event.rows():
        draft.read(event.group.get("mediaType"), row, AT.timestamp() + 30)
    state = draft.freeze(AT.timestamp() + 30)
    assert state.waiting == {"voice": 3}
    assert state.oldest_waiting_seconds == {"voice": pytest.approx(30.0)}


@pytest.mark.parametrize(
    ("topic_type", "reason", "expected"),
    [
        ("no_longer_subscribed", "another_channel_subscribed", "another_channel_subscribed"),
        ("token_revoked", "user_tokens_revoked", "user_tokens_revoked"),
        (None, None, "maintenance"),
    ],
)
def test_socket_closing_notice(topic_type: str | None, reason: str | None, expected: str) -> None:
    notice = sdk.SystemMessageSystemMessage()
    notice.channel_id = "streaming-0-abc"
    if topic_type:
        notice.system_topic_type = topic_type
    if reason:
        notice.reason = reason
    notice.message = "closing"
    assert closing_of(wire(notice)).reason == expected
