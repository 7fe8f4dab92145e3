"""The simulated org's Notifications API: channels, subscriptions, the socket, limits and faults (brief §5, §6.8)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from exporter.clock import FakeClock
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.simulator.faults import SOCKET_KINDS, SOCKET_ROUTE, Fault, parse_fault
from exporter.simulator.model import SimAgent
from exporter.simulator.wire import iso, parse_iso
from tests.harness.notification_client import CHANNELS, Client, Stream, connected, queue_topic, user_topic
from tests.harness.waiting import eventually, loopback, tick_for, tick_until

CLOSING = "v2.system.socket_closing"


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[tuple[SimulatedOrg, Client]]:
    async with (
        serve_simulator(queues=6, agents=60, seed=7, clock=clock, heartbeat_seconds=600) as org,
        aiohttp.ClientSession() as http,
    ):
        client = Client(org, http)
        await client.login()
        yield org, client


def free_agents(org: SimulatedOrg, count: int = 1) -> list[SimAgent]:
    """Agents with no interaction and not on break: a presence change of theirs is a change at once."""
    found = [a for a in org.model.agents.values() if a.conversation is None and a.presence != "BREAK"]
    assert len(found) >= count
    return found[:count]


# ----- channels --------------------------------------------------------------------------------
async def test_channels_are_created_listed_and_probed(sim, clock):
    org, client = sim
    channel = await client.channel()
    assert set(channel) == {"id", "connectUri", "expires"}
    assert channel["connectUri"] == f"{org.url.replace('http://', 'ws://')}/channels/{channel['id']}"
    assert channel["expires"] == iso(clock.time() + 86400)
    for query in ("?includechannels=oauthclient", ""):
        status, listing, _ = await client.call("GET", CHANNELS + query)
        assert status == 200
        assert [c["id"] for c in listing["entities"]] == [channel["id"]]
    assert await client.head(channel["id"]) == 200
    assert await client.head("streaming-0-nope") == 404
    (theirs,) = org.notifications.create_elsewhere("another-client")
    assert await client.head(theirs.id) == 404  # another client's channel is not ours to see
    status, _, _ = await client.call("GET", f"{CHANNELS}/{theirs.id}/subscriptions")
    assert status == 404
    assert len((await client.call("GET", CHANNELS))[1]["entities"]) == 1
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.http.ws_connect(f"{org.url}/channels/streaming-0-nope")
    assert refused.value.status == 404


async def test_channel_calls_count_against_the_token_rate_window(clock):
    async with (
        serve_simulator(queues=2, agents=5, clock=clock, rate_limit=6) as org,
        aiohttp.ClientSession() as http,
    ):
        client = Client(org, http)
        await client.login()
        channel = await client.channel()
        counts = []
        for method, path in (
            ("GET", CHANNELS),
            ("HEAD", f"{CHANNELS}/{channel['id']}"),
            ("GET", f"{CHANNELS}/{channel['id']}/subscriptions"),
            ("DELETE", f"{CHANNELS}/{channel['id']}/subscriptions"),
        ):
            status, _, headers = await client.call(method, path)
            assert status in (200, 204)
            counts.append(headers["inin-ratelimit-count"])
        assert counts == ["2", "3", "4", "5"]
        assert (await client.call("GET", "/api/v2/routing/queues"))[0] == 200  # the sixth
        status, body, headers = await client.call("POST", CHANNELS)
        assert (status, body["code"]) == (429, "too.many.requests.retry.after")
        assert "Retry-After" in headers
        assert org.api_requests("notification_channels") == 3


# ----- subscriptions ---------------------------------------------------------------------------
async def test_subscriptions_permitted_rejected_with_and_without_ignore_errors(sim):
    org, client = sim
    org.permissions = frozenset({"analytics:userObservation:view"})
    queue_id = next(iter(org.model.queues))
    first, second = list(org.model.agents)[:2]
    channel_id = (await client.channel())["id"]
    wanted = [queue_topic(queue_id), user_topic(first)]

    status, body = await client.subscribe(channel_id, wanted)
    assert (status, body["code"]) == (403, "missing.permissions")
    assert "analytics:queueObservation:view" in body["message"]
    status, body = await client.subscribe(channel_id, ["v2.users.nobody.activity"])
    assert (status, body["code"]) == (400, "bad.request")
    assert (await client.call("GET", f"{CHANNELS}/{channel_id}/subscriptions"))[1] == {"entities": []}

    status, body = await client.subscribe(channel_id, [*wanted, "v2.bogus.topic"], ignore=True)
    assert status == 200
    assert body["entities"] == [
        {"id": user_topic(first), "state": "Permitted"},
        {
            "id": queue_topic(queue_id),
            "state": "Rejected",
            "rejectionReason": "missing permissions",
            "missingPermissions": ["analytics:queueObservation:view"],
        },
        {"id": "v2.bogus.topic", "state": "Rejected", "rejectionReason": "unknown topic"},
    ]
    status, body = await client.subscribe(channel_id, [user_topic(second)], method="POST")
    assert [e["id"] for e in body["entities"]] == [user_topic(first), user_topic(second)]
    status, body, _ = await client.call("GET", f"{CHANNELS}/{channel_id}/subscriptions")
    assert [(e["id"], e["state"]) for e in body["entities"]] == [
        (user_topic(first), "Permitted"),
        (user_topic(second), "Permitted"),
    ]
    status, body = await client.subscribe(channel_id, [user_topic(second)])  # PUT replaces
    assert [e["id"] for e in body["entities"]] == [user_topic(second)]
    assert (await client.call("DELETE", f"{CHANNELS}/{channel_id}/subscriptions"))[0] == 204
    assert (await client.call("GET", f"{CHANNELS}/{channel_id}/subscriptions"))[1] == {"entities": []}
    status, body, _ = await client.call("PUT", f"{CHANNELS}/{channel_id}/subscriptions", json={"id": user_topic(first)})
    assert (status, body["code"]) == (400, "bad.request")


async def test_a_channel_holds_at_most_1000_topics(clock):
    async with (
        serve_simulator(queues=2, agents=1001, seed=3, clock=clock) as org,
        aiohttp.ClientSession() as http,
    ):
        client = Client(org, http)
        await client.login()
        channel_id = (await client.channel())["id"]
        agents = list(org.model.agents)
        status, body = await client.subscribe(channel_id, [user_topic(a) for a in agents[:1000]])
        assert status == 200 and len(body["entities"]) == 1000
        status, body = await client.subscribe(channel_id, [user_topic(agents[1000])], method="POST")
        assert (status, body["code"]) == (400, "bad.request")
        assert "1000" in body["message"]
        status, body = await client.subscribe(channel_id, [user_topic(a) for a in agents])
        assert status == 400
        assert len((await client.call("GET", f"{CHANNELS}/{channel_id}/subscriptions"))[1]["entities"]) == 1000


# ----- limits ----------------------------------------------------------------------------------
async def test_a_21st_channel_evicts_the_least_recently_used_unconnected_first(sim, clock):
    org, client = sim
    channels = []
    for _ in range(20):
        channels.append(await client.channel())
        await clock.advance(1)
    first = await Stream.open(client.http, channels[0]["connectUri"])  # the oldest, but connected
    channels.append(await client.channel())
    assert await client.head(channels[1]["id"]) == 404  # the oldest unconnected one went
    assert await client.head(channels[0]["id"]) == 200
    assert len((await client.call("GET", CHANNELS))[1]["entities"]) == 20

    streams = [first]
    for channel in channels[2:]:
        streams.append(await Stream.open(client.http, channel["connectUri"]))
        await clock.advance(1)
    org.notifications.create_elsewhere(org.client_id)  # all 20 connected: the least recently used goes
    await eventually(first.closed.is_set)
    (closing,) = first.bodies(CLOSING)
    assert closing["channelId"] == channels[0]["id"]
    assert (closing["systemTopicType"], closing["reason"]) == ("no_longer_subscribed", "another_channel_subscribed")
    assert closing["oauthClientId"] == org.client_id
    assert await client.head(channels[0]["id"]) == 404
    assert not any(s.closed.is_set() for s in streams[1:])
    for stream in streams[1:]:
        await stream.close()


async def test_one_socket_per_channel_the_second_drops_the_first(sim):
    _, client = sim
    channel = await client.channel()
    older = await Stream.open(client.http, channel["connectUri"])
    newer = await Stream.open(client.http, channel["connectUri"])
    await eventually(older.closed.is_set)
    (closing,) = older.bodies(CLOSING)
    assert (closing["systemTopicType"], closing["reason"]) == ("no_longer_subscribed", "another_channel_subscribed")
    await newer.ping()
    await eventually(lambda: newer.bodies("channel.metadata") == [{"message": "pong"}])
    assert not newer.closed.is_set()
    assert await client.head(channel["id"]) == 200
    await newer.close()


async def test_heartbeat_and_ping_pong(sim, clock):
    org, client = sim
    org.heartbeat_seconds = 5
    _, stream = await connected(client, [])
    await stream.ping()
    await eventually(lambda: len(stream.messages) == 1)
    assert stream.messages[0]["topicName"] == "channel.metadata"
    assert stream.messages[0]["eventBody"] == {"message": "pong"}
    assert stream.messages[0]["version"] == "2" and stream.messages[0]["metadata"]["CorrelationId"]
    await tick_for(clock, 4.6, land=0.05)
    assert len(stream.messages) == 1
    took = await tick_until(clock, lambda: len(stream.messages) == 2, within=30)
    assert stream.messages[1]["eventBody"] == {"message": "WebSocket Heartbeat"}
    assert 0 < took <= 1.0
    await tick_for(clock, 5.2, land=0.05)
    assert stream.bodies("channel.metadata").count({"message": "WebSocket Heartbeat"}) == 2
    await stream.close()


async def test_an_unconnected_channel_expires_after_24_hours_unless_resubscribed(clock):
    async with (
        serve_simulator(queues=2, agents=6, seed=4, clock=clock, token_ttl=10**7) as org,
        aiohttp.ClientSession() as http,
    ):
        client = Client(org, http)
        await client.login()
        kept, dropped = (await client.channel())["id"], (await client.channel())["id"]
        await clock.advance(86000)
        assert (await client.subscribe(kept, [user_topic(next(iter(org.model.agents)))]))[0] == 200
        await clock.advance(399)
        assert await client.head(dropped) == 200
        await clock.advance(2)
        assert await client.head(dropped) == 404
        assert await client.head(kept) == 200
        (listed,) = (await client.call("GET", CHANNELS))[1]["entities"]
        assert listed["id"] == kept
        assert parse_iso(listed["expires"]) == pytest.approx(clock.time() - 401 + 86400, abs=0.01)


async def test_a_connected_channel_closes_when_its_life_ends(sim, clock):
    org, client = sim
    org.channel_ttl = 30  # the clock hook: a shorter life
    channel, stream = await connected(client, [])
    took = await tick_until(clock, stream.closed.is_set, within=40)
    assert 29.8 <= took <= 30.6
    assert await client.head(channel["id"]) == 404


@pytest.mark.parametrize("how", ["revoke_tokens", "fault"])
async def test_revoked_tokens_close_the_clients_sockets(sim, how):
    org, client = sim
    channel, stream = await connected(client, [])
    if how == "revoke_tokens":
        org.revoke_tokens()
    else:
        org.faults.arm(Fault("revoke", route="notification_channel"))
    assert await client.head(channel["id"]) == 401
    await eventually(stream.closed.is_set)
    (closing,) = stream.bodies(CLOSING)
    assert (closing["systemTopicType"], closing["reason"]) == ("token_revoked", "user_tokens_revoked")
    assert closing["channelId"] == channel["id"]
    org.faults.clear()
    await client.login()
    assert await client.head(channel["id"]) == 404


async def test_stopping_the_simulator_closes_open_sockets(clock):
    async with aiohttp.ClientSession() as http:
        async with serve_simulator(queues=2, agents=6, clock=clock) as org:
            client = Client(org, http)
            await client.login()
            _, stream = await connected(client, [])
            async with serve_simulator(queues=2, agents=6, clock=clock):
                pass  # another org coming and going leaves this one alone
            assert not stream.closed.is_set()
        await eventually(stream.closed.is_set)
        assert stream.close_code == 1001


# ----- events ----------------------------------------------------------------------------------
async def test_an_agent_change_arrives_as_an_activity_event_with_the_state_of_that_moment(sim, clock):
    org, client = sim
    (agent,) = free_agents(org)
    topic = user_topic(agent.id)
    _, stream = await connected(client, [topic])
    await client.scenario(action="presence", agent=agent.id, presence="BREAK")
    answer = await client.scenario(action="presence", agent=agent.id, presence="ON_QUEUE")  # same instant
    assert answer["presence"] == "ON_QUEUE" and answer["at"] == pytest.approx(clock.time())
    await tick_until(clock, lambda: len(stream.topic(topic)) >= 2, within=30)
    first, second = stream.bodies(topic)[:2]
    assert first["routingStatus"]["status"] == "OFF_QUEUE"
    assert first["presence"]["presenceDefinition"]["systemPresence"] == "Break"
    assert second["presence"]["presenceDefinition"]["systemPresence"] == "On Queue"
    assert second["routingStatus"]["status"] in ("IDLE", "COMMUNICATING", "INTERACTING")
    assert first["activeQueueIds"] == sorted(q for q, joined in agent.queues.items() if joined)
    _, users, _ = await client.call("GET", f"/api/v2/users?id={agent.id}&expand=presence,routingStatus")
    (user,) = users["entities"]
    last = stream.bodies(topic)[-1]  # the fake clock stood still since: the last event is the state now
    assert last["routingStatus"] == {k: user["routingStatus"][k] for k in ("status", "startTime")}
    assert last["presence"]["presenceDefinition"] == user["presence"]["presenceDefinition"]
    assert last["presence"]["modifiedDate"] == user["presence"]["modifiedDate"]
    await stream.close()


def _metrics(body: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, float]]:
    return {(m["metric"], m.get("qualifier")): m["stats"] for m in body["data"][0]["metrics"]}


async def test_a_queue_change_arrives_as_an_observation_event_at_most_once_a_second(sim, clock):
    org, client = sim
    queue = max(org.model.queues.values(), key=lambda q: len(q.members))
    await client.scenario(action="unstaff", queue=queue.id)  # nobody takes what waits
    topic = queue_topic(queue.id)
    _, stream = await connected(client, [topic])
    await client.scenario(action="wait", queue=queue.id, count=2)
    await tick_until(
        clock, lambda: any(b["group"].get("mediaType") == "voice" for b in stream.bodies(topic)), within=30
    )
    first = stream.bodies(topic)
    assert {tuple(sorted(b["group"].items())) for b in first} == {
        (("queueId", queue.id),),
        *((("mediaType", m), ("queueId", queue.id)) for m in queue.media),
    }  # the first event after subscribing carries every group
    voice = next(b for b in first if b["group"].get("mediaType") == "voice")
    truth = org.model.queue_truth(queue.id)
    stats = _metrics(voice)
    assert stats["oWaiting", None] == {"count": float(truth.waiting["voice"])}
    assert isinstance(stats["oWaiting", None]["count"], float)
    assert stats["oLongestWaiting", None]["calculatedMetricValue"] == round(truth.oldest_waiting_since["voice"] * 1000)
    users = _metrics(next(b for b in first if "mediaType" not in b["group"]))
    assert {m for m, _ in users} == {"oUserRoutingStatuses", "oOnQueueUsers", "oMemberUsers", "oActiveUsers"}
    assert users["oMemberUsers", None] == {"count": float(len(queue.members))}

    for _ in range(20):  # a change every tick for 4 s
        await client.scenario(action="wait", queue=queue.id)
        await tick_for(clock, 0.2)
    await tick_for(clock, 1.2, land=0.05)
    starts = sorted({parse_iso(b["data"][0]["interval"].split("/")[0]) for b in stream.bodies(topic)})
    assert 4 <= len(starts) <= 6
    assert all(later - earlier >= 0.99 for earlier, later in itertools.pairwise(starts))
    # "changed" style: after the first event a group carries only what changed since the last one sent
    seen: dict[Any, dict[Any, Any]] = {}
    for body in stream.bodies(topic):
        group = tuple(sorted(body["group"].items()))
        for key, value in _metrics(body).items():
            if group in seen and key in seen[group]:
                assert seen[group][key] != value, (group, key)
            seen.setdefault(group, {})[key] = value
    voice_counts = [
        _metrics(b)["oWaiting", None]["count"] for b in stream.bodies(topic) if b["group"].get("mediaType") == "voice"
    ]
    assert voice_counts == sorted(voice_counts) and voice_counts[-1] == org.model.queue_truth(queue.id).waiting["voice"]
    await stream.close()


async def test_full_style_sends_every_group_each_time(sim, clock):
    org, client = sim
    org.observation_style = "full"
    queue = max(org.model.queues.values(), key=lambda q: len(q.members))
    await client.scenario(action="unstaff", queue=queue.id)
    topic = queue_topic(queue.id)
    _, stream = await connected(client, [topic])
    for _ in range(3):
        await client.scenario(action="wait", queue=queue.id)
        await tick_for(clock, 1.2, land=0.05)
    by_interval: dict[str, int] = {}
    for body in stream.bodies(topic):
        by_interval[body["data"][0]["interval"]] = by_interval.get(body["data"][0]["interval"], 0) + 1
        if "mediaType" in body["group"]:
            assert {m for m, _ in _metrics(body)} == {
                "oWaiting",
                "oInteracting",
                "oAlerting",
                "oLongestWaiting",
            }
    assert len(by_interval) >= 3
    assert set(by_interval.values()) == {1 + len(queue.media)}
    await stream.close()


async def test_a_quiet_org_sends_nothing_without_subscribers(sim, clock):
    org, client = sim
    _, stream = await connected(client, [])
    await client.scenario(action="presence", agent=free_agents(org)[0].id, presence="BREAK")
    await tick_for(clock, 3, land=0.05)
    assert stream.messages == []
    assert org.notifications._activity == [] and not org.notifications.unpublished
    await stream.close()


# ----- faults ----------------------------------------------------------------------------------
def test_the_new_fault_kinds_parse():
    for kind in (*SOCKET_KINDS, "reject"):
        assert parse_fault(f"{SOCKET_ROUTE}:{kind}:delay=2").kind == kind
    assert parse_fault("notification_channels:status:status=429") == Fault(
        "status", "notification_channels", status=429
    )
    with pytest.raises(ValueError, match=r"KIND one of .*silent, closing, duplicate, reorder, lag, evict"):
        parse_fault("notification_socket:hush")


async def test_fault_silent_stops_everything_without_a_close(sim, clock):
    org, client = sim
    org.heartbeat_seconds = 1
    _, stream = await connected(client, [])
    await tick_until(clock, lambda: len(stream.messages) == 1, within=30)
    org.faults.arm(Fault("silent", route=SOCKET_ROUTE))
    await tick_for(clock, 3, land=0.05)
    await stream.ping()
    await loopback(0.2)
    assert len(stream.messages) == 1
    assert not stream.closed.is_set()
    assert org.faults.fired["silent"] >= 1
    await stream.close()


async def test_fault_closing_warns_then_closes_after_the_delay(sim, clock):
    org, client = sim
    channel, stream = await connected(client, [])
    org.faults.arm(Fault("closing", route=SOCKET_ROUTE, delay=5, limit=1))
    await tick_until(clock, lambda: bool(stream.topic(CLOSING)), within=1)
    (warning,) = stream.bodies(CLOSING)
    assert warning["channelId"] == channel["id"] and "maintenance" in warning["message"]
    assert "systemTopicType" not in warning
    await tick_for(clock, 4.6, land=0.05)
    assert not stream.closed.is_set()
    await tick_until(clock, stream.closed.is_set, within=1)
    assert stream.close_code == 1001
    assert await client.head(channel["id"]) == 200  # the channel lives on: reconnect to it
    again = await Stream.open(client.http, channel["connectUri"])
    org.closing_delay = 2
    org.notifications.maintenance()  # the admin hook, with the org's delay
    await eventually(lambda: bool(again.topic(CLOSING)))
    assert await tick_until(clock, again.closed.is_set, within=3) == pytest.approx(2.0, abs=0.3)


async def test_fault_duplicate_sends_each_event_twice(sim, clock):
    org, client = sim
    (agent,) = free_agents(org)
    _, stream = await connected(client, [user_topic(agent.id)])
    org.faults.arm(Fault("duplicate", route=SOCKET_ROUTE))
    await client.scenario(action="presence", agent=agent.id, presence="BREAK")
    await tick_until(clock, lambda: len(stream.raw) >= 2, within=30)
    await tick_for(clock, 1, land=0.05)
    assert len(stream.raw) == 2 and stream.raw[0] == stream.raw[1]  # the same message, correlation id too
    await stream.close()


async def test_fault_reorder_reverses_a_ticks_events(sim, clock):
    org, client = sim
    one, two = free_agents(org, 2)
    _, stream = await connected(client, [user_topic(one.id), user_topic(two.id)])
    org.faults.arm(Fault("reorder", route=SOCKET_ROUTE))
    await client.scenario(action="presence", agent=one.id, presence="BREAK")
    await client.scenario(action="presence", agent=two.id, presence="BREAK")
    await tick_until(clock, lambda: len(stream.messages) >= 2, within=30)
    assert [m["eventBody"]["id"] for m in stream.messages] == [two.id, one.id]
    await stream.close()


async def test_fault_lag_holds_events_back(sim, clock):
    org, client = sim
    (agent,) = free_agents(org)
    _, stream = await connected(client, [user_topic(agent.id)])
    org.faults.arm(Fault("lag", route=SOCKET_ROUTE, delay=2))
    await client.scenario(action="presence", agent=agent.id, presence="BREAK")
    took = await tick_until(clock, lambda: bool(stream.messages), within=30)
    assert 2.0 <= took <= 2.6
    await stream.close()


async def test_fault_evict_drops_a_channel_as_a_21st_would(sim, clock):
    org, client = sim
    channel, stream = await connected(client, [])
    org.faults.arm(Fault("evict", route=SOCKET_ROUTE, limit=1))
    await tick_until(clock, stream.closed.is_set, within=1)
    (closing,) = stream.bodies(CLOSING)
    assert (closing["systemTopicType"], closing["reason"]) == ("no_longer_subscribed", "another_channel_subscribed")
    assert await client.head(channel["id"]) == 404


async def test_fault_reject_and_forbid_on_subscriptions(sim):
    org, client = sim
    queue_id, agent_id = next(iter(org.model.queues)), next(iter(org.model.agents))
    channel_id = (await client.channel())["id"]
    org.faults.arm(Fault("reject", route="notification_subscriptions", limit=1))
    status, body = await client.subscribe(channel_id, [queue_topic(queue_id), user_topic(agent_id)])
    assert status == 200
    assert [(e["state"], e["missingPermissions"]) for e in body["entities"]] == [
        ("Rejected", ["analytics:queueObservation:view"]),
        ("Rejected", ["analytics:userObservation:view"]),
    ]
    assert (await client.call("GET", f"{CHANNELS}/{channel_id}/subscriptions"))[1] == {"entities": []}
    org.faults.arm(Fault("forbid", route="notification_subscriptions", limit=1))
    status, body = await client.subscribe(channel_id, [queue_topic(queue_id)])
    assert (status, body["code"]) == (403, "missing.permissions")
    assert "analytics:queueObservation:view" in body["message"]
    status, body = await client.subscribe(channel_id, [queue_topic(queue_id)])
    assert status == 200 and body["entities"][0]["state"] == "Permitted"


async def test_fault_429_on_channel_creation(sim):
    org, client = sim
    org.faults.arm(parse_fault("notification_channels:status:status=429,limit=1"))
    status, body, headers = await client.call("POST", CHANNELS)
    assert (status, body["code"]) == (429, "too.many.requests.retry.after")
    assert headers["Retry-After"] == "2"
    assert (await client.call("POST", CHANNELS))[0] == 200


async def test_a_socket_fault_leaves_rest_calls_alone_and_a_rest_fault_leaves_sockets(sim, clock):
    org, client = sim
    org.heartbeat_seconds = 1
    org.faults.arm(Fault("duplicate"))  # route "*": sockets only, as it is a socket kind
    channel, stream = await connected(client, [])
    org.faults.arm(Fault("status", status=503))  # every API route, but not the socket's handshake
    assert (await client.call("GET", CHANNELS))[0] == 503
    again = await Stream.open(client.http, channel["connectUri"])
    await eventually(stream.closed.is_set)  # the second socket took over
    await tick_until(clock, lambda: len(again.messages) == 1, within=30)  # heartbeats are not events: never doubled
    await tick_for(clock, 0.6, land=0.05)
    assert len(again.messages) == 1
    org.faults.arm(Fault("status", route=SOCKET_ROUTE, status=503, limit=1))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.http.ws_connect(channel["connectUri"])
    assert refused.value.status == 503
    await again.close()


async def test_scenario_presence_of_a_busy_agent_changes_presence_now_and_status_after_wrap_up(sim, clock):
    org, client = sim
    await clock.advance(0)
    busy = next(a for a in org.model.agents.values() if a.conversation is not None)
    answer = await client.scenario(action="presence", agent=busy.id, presence="BREAK")
    assert answer == {"agent": busy.id, "routing_status": "INTERACTING", "presence": "BREAK", "at": org.model.now}
    await clock.advance(3600)
    await client.call("GET", "/api/v2/routing/queues")  # the model catches up
    assert (busy.presence, busy.routing_status) == ("BREAK", "OFF_QUEUE")
    async with client.http.post(
        f"{org.url}/__admin/scenario", json={"action": "presence", "agent": busy.id, "presence": "NAPPING"}
    ) as r:
        assert r.status == 400


async def test_the_ticker_runs_only_while_a_socket_is_open(sim, clock):
    org, client = sim
    _, stream = await connected(client, [])
    await tick_for(clock, 1, land=0.05)
    assert org.model.now == pytest.approx(clock.time(), abs=0.21)  # advanced without a REST call
    await stream.close()
    await tick_for(clock, 0.6, land=0.05)
    ticker = org.notifications._ticker
    assert ticker is not None and ticker.done()
    before = org.model.now
    await clock.advance(10)
    await asyncio.sleep(0)
    assert org.model.now == before  # lazy again
