"""An org with several OAuth clients: each has its own credentials, rate window and channels (issue 12)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from exporter.clock import FakeClock
from exporter.simulator.api import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimulatedOrg, demo_credentials, serve_simulator
from exporter.simulator.model import OrgModel, SimConfig
from tests.harness.notification_client import CHANNELS, Client, Stream
from tests.harness.waiting import loopback

CLOSING = "v2.system.socket_closing"
QUEUES = "/api/v2/routing/queues"
LIMIT = 5


@pytest.fixture
async def two(clock: FakeClock) -> AsyncIterator[tuple[SimulatedOrg, Client, Client]]:
    """An org of two clients with a small rate limit, each logged in."""
    async with (
        serve_simulator(queues=3, agents=10, seed=3, clock=clock, rate_limit=LIMIT, clients=2) as org,
        aiohttp.ClientSession() as http,
    ):
        first, second = (Client(org, http, client_id) for client_id in org.clients)
        assert await first.login() == 200 and await second.login() == 200
        yield org, first, second


async def test_clients_are_made_with_distinct_credentials_the_first_as_given(clock):
    async with serve_simulator(queues=1, agents=2, clock=clock, clients=3) as org:
        assert list(org.clients.items()) == [
            (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
            demo_credentials(2),
            demo_credentials(3),
        ]
        assert (org.client_id, org.client_secret) == (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        assert org.demo_clients == org.clients
    async with serve_simulator(
        queues=1, agents=2, clock=clock, client_id="mine", client_secret="given", clients=2
    ) as org:
        assert org.clients == {"mine": "given", demo_credentials(2)[0]: demo_credentials(2)[1]}
        assert org.demo_clients == dict([demo_credentials(2)])  # a given secret is never among those printed
    async with serve_simulator(queues=1, agents=2, clock=clock, client_id=demo_credentials(2)[0], clients=2) as org:
        assert len(set(org.clients)) == 2  # the generated ones step around the given id
    with pytest.raises(ValueError, match="at least one"):
        async with serve_simulator(clock=clock, clients=0):
            pass


def test_an_org_built_with_one_client_has_just_that_one(clock):
    org = SimulatedOrg(OrgModel(SimConfig(queues=1, agents=2), clock.time()), clock, client_id="a", client_secret="b")
    assert org.clients == {"a": "b"}
    several = SimulatedOrg(OrgModel(SimConfig(queues=1, agents=2), clock.time()), clock, clients={"x": "1", "y": "2"})
    assert (several.client_id, several.client_secret) == ("x", "1")


async def test_each_client_has_its_own_rate_window(two, clock):
    org, first, second = two
    for n in range(1, LIMIT + 1):
        status, _, headers = await first.call("GET", QUEUES)
        assert (status, headers["inin-ratelimit-count"]) == (200, str(n))
    assert (await first.call("GET", QUEUES))[0] == 429
    status, _, headers = await second.call("GET", QUEUES)  # the other client's minute is its own
    assert (status, headers["inin-ratelimit-count"]) == (200, "1")
    assert await first.login() == 200  # a new token is no new minute: the window is the client's
    assert (await first.call("GET", QUEUES))[0] == 429
    assert org.rate_limited_by == {first.client_id: 2}
    assert org.rate_limited == 2
    assert (org.api_requests(client=first.client_id), org.api_requests(client=second.client_id)) == (LIMIT + 2, 1)
    assert org.api_requests("routing_queues", client=second.client_id) == 1
    assert org.api_requests() == LIMIT + 3
    await clock.advance(60)
    assert (await first.call("GET", QUEUES))[2]["inin-ratelimit-count"] == "1"


async def test_channel_calls_count_against_their_own_clients_window(two):
    org, first, second = two
    for _ in range(LIMIT):
        await first.channel()
    assert (await first.call("POST", CHANNELS))[0] == 429
    await second.channel()
    assert org.api_requests("notification_channels", client=second.client_id) == 1
    assert org.client_requests[(first.client_id, "notification_channels", 429)] == 1


async def test_each_client_holds_its_own_20_channels_and_sees_only_those(clock):
    async with (
        serve_simulator(queues=3, agents=10, seed=3, clock=clock, clients=2) as org,
        aiohttp.ClientSession() as http,
    ):
        first, second = (Client(org, http, client_id) for client_id in org.clients)
        await first.login()
        await second.login()
        mine = [await first.channel() for _ in range(20)]
        theirs = [await second.channel() for _ in range(20)]
        assert len(org.notifications.channels) == 40  # 20 each: the limit is not the org's
        await first.channel()  # a 21st evicts the first client's oldest, never the other's
        assert await first.head(mine[0]["id"]) == 404
        assert all([await second.head(c["id"]) == 200 for c in theirs])
        assert len(org.notifications.channels_of(first.client_id)) == 20
        assert len(org.notifications.channels_of(second.client_id)) == 20
        listed = {c["id"] for c in (await second.call("GET", CHANNELS))[1]["entities"]}
        assert listed == {c["id"] for c in theirs}
        assert await second.head(mine[1]["id"]) == 404  # another client's channel is not there for it
        status, _, _ = await second.call("PUT", f"{CHANNELS}/{mine[1]['id']}/subscriptions", json=[])
        assert status == 404


async def test_revoking_one_clients_tokens_closes_only_its_sockets(two):
    org, first, second = two
    channels = [await first.channel(), await second.channel()]
    streams = [await Stream.open(first.http, c["connectUri"]) for c in channels]
    org.revoke_tokens(first.client_id)
    await streams[0].closed.wait()
    (closing,) = streams[0].bodies(CLOSING)
    assert (closing["reason"], closing["oauthClientId"]) == ("user_tokens_revoked", first.client_id)
    assert (await first.call("GET", QUEUES))[0] == 401
    await streams[1].ping()
    await loopback()
    assert not streams[1].closed.is_set()
    assert streams[1].topic("channel.metadata")  # the pong: the other client's socket still talks
    assert await second.head(channels[1]["id"]) == 200
    assert (await second.call("GET", QUEUES))[0] == 200
    await streams[1].close()


async def test_bad_credentials_for_one_client_leave_the_other_alone(two):
    org, first, second = two
    assert await first.login("not-its-secret") == 401
    assert await first.login(org.clients[second.client_id]) == 401  # another client's secret is no key
    assert await Client(org, first.http, "nobody").login(org.client_secret) == 401
    assert (await first.call("GET", QUEUES))[0] == 200  # a failed login revokes nothing
    assert (await second.call("GET", QUEUES))[0] == 200
    assert await second.login() == 200
    assert org.client_requests[(first.client_id, "oauth_token", 401)] == 2
    assert org.client_requests[(second.client_id, "oauth_token", 401)] == 0
    assert org.rate_limited_by[second.client_id] == 0
