"""What the simulated Notifications API sends, against the official SDK models (brief §5, §7).

REST bodies (Channel, ChannelEntityListing, ChannelTopicEntityListing, ErrorBody) and event bodies
(AgentActivityChangedTopicAgentActivity, StatEventQueueTopicStatsNotification,
SystemMessageSystemMessage) round-trip through the SDK with no problems. The socket envelope and
the `channel.metadata` bodies (heartbeat, pong) have no model in the Python SDK; they are checked
against sdk-net's NotificationData field names by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from exporter.clock import FakeClock
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.simulator.faults import SOCKET_ROUTE, Fault
from exporter.simulator.wire import OBSERVATION_METRICS
from tests.contract.oracle import allowed_values, problems
from tests.harness.notification_client import CHANNELS, Client, Stream, connected, queue_topic, user_topic
from tests.harness.waiting import tick_for, tick_until

pytestmark = pytest.mark.contract

ROUTING_STATUSES = allowed_values("RoutingStatus", "status")
CLOSING = "v2.system.socket_closing"


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[tuple[SimulatedOrg, Client]]:
    async with (
        serve_simulator(queues=6, agents=60, seed=11, clock=clock, heartbeat_seconds=1) as org,
        aiohttp.ClientSession() as http,
    ):
        client = Client(org, http)
        await client.login()
        yield org, client


async def test_rest_bodies_fit_the_sdk_models(sim):
    org, client = sim
    channel = await client.channel()
    assert problems(channel, "Channel") == []
    status, listing, _ = await client.call("GET", CHANNELS + "?includechannels=oauthclient")
    assert status == 200 and listing["entities"]
    assert problems(listing, "ChannelEntityListing") == []

    org.permissions = frozenset({"analytics:userObservation:view"})
    queue_id, agent_id = next(iter(org.model.queues)), next(iter(org.model.agents))
    status, topics = await client.subscribe(
        channel["id"], [user_topic(agent_id), queue_topic(queue_id), "v2.nothing"], ignore=True
    )
    assert status == 200
    assert {e["state"] for e in topics["entities"]} == {"Permitted", "Rejected"}
    assert problems(topics, "ChannelTopicEntityListing") == []
    status, listed, _ = await client.call("GET", f"{CHANNELS}/{channel['id']}/subscriptions")
    assert problems(listed, "ChannelTopicEntityListing") == []

    errors = [
        await client.subscribe(channel["id"], [queue_topic(queue_id)]),  # 403
        await client.subscribe(channel["id"], ["v2.nothing"]),  # 400
        (await client.call("GET", f"{CHANNELS}/streaming-0-gone/subscriptions"))[:2],  # 404
    ]
    assert [status for status, _ in errors] == [403, 400, 404]
    for _, body in errors:
        assert problems(body, "ErrorBody") == []


async def test_the_official_sdk_can_use_the_notifications_api(sim):
    """The SDK as a client: create, list, probe, subscribe; its own deserializer reads every answer."""
    org, _ = sim
    import PureCloudPlatformClientV2 as sdk

    agent_id = next(iter(org.model.agents))

    def use_sdk() -> tuple[str, int, list[tuple[str, str]], int]:
        api_client = sdk.ApiClient(host=org.url).get_client_credentials_token(org.client_id, org.client_secret)
        api = sdk.NotificationsApi(api_client)
        channel = api.post_notifications_channels()
        listing = api.get_notifications_channels(includechannels="oauthclient")
        api.head_notifications_channel(channel.id)
        wanted = [sdk.ChannelTopic(), sdk.ChannelTopic()]
        wanted[0].id, wanted[1].id = user_topic(agent_id), "v2.nothing"
        topics = api.put_notifications_channel_subscriptions(channel.id, wanted, ignore_errors=True)
        api.delete_notifications_channel_subscriptions(channel.id)
        try:
            api.head_notifications_channel("streaming-0-gone")
        except sdk.rest.ApiException as gone:
            return channel.connect_uri, len(listing.entities), [(t.id, t.state) for t in topics.entities], gone.status
        raise AssertionError("HEAD of a missing channel succeeded")

    uri, listed, topics, missing = await asyncio.to_thread(use_sdk)
    assert uri.startswith("ws://127.0.0.1:")
    assert listed == 1
    assert topics == [(user_topic(agent_id), "Permitted"), ("v2.nothing", "Rejected")]
    assert missing == 404


def _check_envelopes(stream: Stream) -> None:
    for message in stream.messages:
        assert set(message) == {"topicName", "version", "eventBody", "metadata"}  # sdk-net NotificationData
        assert set(message["metadata"]) == {"CorrelationId"} and message["version"] == "2"


async def test_event_bodies_fit_the_sdk_models(sim, clock):
    org, client = sim
    queue = max(org.model.queues.values(), key=lambda q: len(q.members))
    await client.scenario(action="unstaff", queue=queue.id)
    agent = next(a for a in org.model.agents.values() if a.conversation is None and a.presence != "BREAK")
    channel, stream = await connected(client, [queue_topic(queue.id), user_topic(agent.id)])
    await stream.ping()
    await client.scenario(action="wait", queue=queue.id, count=3)
    await client.scenario(action="presence", agent=agent.id, presence="BREAK")
    await client.scenario(action="presence", agent=agent.id, presence="ON_QUEUE")
    await tick_for(clock, 2.2, land=0.05)

    activity = stream.bodies(user_topic(agent.id))
    observations = stream.bodies(queue_topic(queue.id))
    metadata = stream.bodies("channel.metadata")
    assert len(activity) >= 2 and observations
    for body in activity:
        assert problems(body, "AgentActivityChangedTopicAgentActivity") == []
        assert body["routingStatus"]["status"] in ROUTING_STATUSES
    groups = {tuple(sorted(b["group"])) for b in observations}
    assert groups == {("queueId",), ("mediaType", "queueId")}
    for body in observations:
        assert problems(body, "StatEventQueueTopicStatsNotification") == []
        for metric in body["data"][0]["metrics"]:
            assert metric["metric"] in OBSERVATION_METRICS
            if metric["metric"] in ("oUserRoutingStatuses", "oOnQueueUsers"):
                assert metric["qualifier"] in ROUTING_STATUSES
            assert all(isinstance(v, float) for v in metric["stats"].values())
    longest = [m["stats"] for b in observations for m in b["data"][0]["metrics"] if m["metric"] == "oLongestWaiting"]
    assert any("calculatedMetricValue" in stats for stats in longest)
    assert {"message": "pong"} in metadata and {"message": "WebSocket Heartbeat"} in metadata
    assert all(set(b) == {"message"} for b in metadata)
    _check_envelopes(stream)

    closings: list[dict[str, Any]] = []
    org.notifications.maintenance(delay=0.4)
    await tick_until(clock, stream.closed.is_set, within=2)
    closings += stream.bodies(CLOSING)
    stream = await Stream.open(client.http, channel["connectUri"])
    org.faults.arm(Fault("evict", route=SOCKET_ROUTE, limit=1))
    await tick_until(clock, stream.closed.is_set, within=2)
    closings += stream.bodies(CLOSING)
    _, stream = await connected(client, [])
    org.revoke_tokens()
    await tick_until(clock, stream.closed.is_set, within=2)
    closings += stream.bodies(CLOSING)
    assert [c.get("systemTopicType") for c in closings] == [None, "no_longer_subscribed", "token_revoked"]
    for body in closings:
        assert problems(body, "SystemMessageSystemMessage") == []
    _check_envelopes(stream)
