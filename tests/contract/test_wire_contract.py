"""Both halves against the official SDK models: what the simulator answers and what the exporter asks.

`problems()` catches unknown keys, rejected scalar enums and wrong types; it cannot catch metric
names or qualifiers (the SDK keeps those as plain strings), so those are checked against the lists
the brief takes from the SDK's own enum definitions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from exporter.clock import FakeClock
from exporter.genesys.queries import (
    QUEUE_OBSERVATION_METRICS,
    aggregate_query,
    queue_observation_query,
)
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.simulator.wire import AGGREGATE_METRICS, DETAIL_METRICS, OBSERVATION_METRICS
from exporter.sources.agent_states import state_params
from exporter.sources.performance import AGENT_QUERY_METRICS, QUEUE_QUERY_METRICS, day_window, iso_interval
from tests.contract.oracle import allowed_values, problems
from tests.harness.net import basic_auth

pytestmark = pytest.mark.contract

MEDIA_TYPES = {
    "callback",
    "chat",
    "cobrowse",
    "email",
    "internalmessage",
    "message",
    "screenmonitoring",
    "screenshare",
    "unknown",
    "video",
    "voice",
}  # brief §2.1, from sdk-net ConversationActivityEntityData
ROUTING_STATUSES = allowed_values("RoutingStatus", "status")
SYSTEM_PRESENCES = {"AVAILABLE", "AWAY", "BUSY", "OFFLINE", "IDLE", "ON_QUEUE", "MEAL", "TRAINING", "MEETING", "BREAK"}


@pytest.fixture
async def org(clock: FakeClock) -> AsyncIterator[tuple[SimulatedOrg, aiohttp.ClientSession, dict[str, str]]]:
    async with serve_simulator(queues=8, agents=60, seed=11, clock=clock) as sim, aiohttp.ClientSession() as http:
        auth = basic_auth(sim.client_id, sim.client_secret)
        async with http.post(f"{sim.url}/oauth/token", data={"grant_type": "client_credentials"}, headers=auth) as r:
            token = (await r.json())["access_token"]
        await clock.advance(3600)  # an hour of traffic, so the ledger has closed conversations
        yield sim, http, {"Authorization": f"Bearer {token}"}


async def call(http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], **kw: Any) -> Any:
    async with http.request(method, url, headers=headers, **kw) as response:
        return response.status, await response.json()


async def test_queue_listing_and_observations_fit_the_sdk_models(org):
    sim, http, auth = org
    status, listing = await call(http, "GET", f"{sim.url}/api/v2/routing/queues?pageSize=5", auth)
    assert status == 200
    assert problems(listing, "QueueEntityListing") == []
    queue_ids = [q["id"] for q in listing["entities"]]
    body = {**queue_observation_query(queue_ids), "metrics": sorted(OBSERVATION_METRICS), "detailMetrics": ["oWaiting"]}
    status, observed = await call(
        http, "POST", f"{sim.url}/api/v2/analytics/queues/observations/query", auth, json=body
    )
    assert status == 200
    assert problems(observed, "QueueObservationQueryResponse") == []
    for result in observed["results"]:
        assert set(result["group"]) <= {"queueId", "mediaType"}
        assert result["group"].get("mediaType", "voice") in MEDIA_TYPES
        for row in result["data"]:
            assert row["metric"] in OBSERVATION_METRICS
            if row["metric"] in ("oUserRoutingStatuses", "oOnQueueUsers"):
                assert row["qualifier"] in ROUTING_STATUSES
    presence_ids = {pid for ids in observed["systemToOrganizationMappings"].values() for pid in ids}
    assert set(observed["systemToOrganizationMappings"]) <= SYSTEM_PRESENCES
    assert all(
        r["qualifier"] in presence_ids
        for res in observed["results"]
        for r in res["data"]
        if r["metric"] == "oUserPresences"
    )


async def test_teams_their_members_and_the_users_team_fit_the_sdk_models(org):
    sim, http, auth = org
    teams_url = f"{sim.url}/api/v2/teams"
    status, teams = await call(http, "GET", f"{teams_url}?pageSize=1", auth)
    assert status == 200
    assert problems(teams, "TeamEntityListing") == []
    listed = [teams["entities"][0]["id"]]
    while "nextUri" in teams:  # cursor paging to the end
        status, teams = await call(http, "GET", sim.url + teams["nextUri"], auth)
        assert status == 200
        listed.extend(team["id"] for team in teams["entities"])
    assert sorted(listed) == sorted(sim.model.teams)
    team = max(sim.model.teams.values(), key=lambda t: len(t.members))
    status, members = await call(http, "GET", f"{teams_url}/{team.id}/members?pageSize=2", auth)
    assert status == 200
    assert problems(members, "TeamMemberEntityListing") == []
    assert "nextUri" in members and "total" not in members  # cursor paging, no totals
    status, users = await call(http, "GET", f"{sim.url}/api/v2/users?pageSize=5&expand=team", auth)
    assert status == 200
    assert problems(users, "UserEntityListing") == []
    assert any("team" in user for user in users["entities"])


async def test_member_user_and_error_bodies_fit_the_sdk_models(org):
    sim, http, auth = org
    queue_id = next(iter(sim.model.queues))
    status, members = await call(http, "GET", f"{sim.url}/api/v2/routing/queues/{queue_id}/members?pageSize=3", auth)
    assert status == 200
    assert problems(members, "QueueMemberEntityListing") == []
    user_ids = [m["id"] for m in members["entities"]]
    status, users = await call(
        http,
        "GET",
        f"{sim.url}/api/v2/users",
        auth,
        params=[(k, v) for k, vs in state_params(user_ids).items() for v in (vs if isinstance(vs, list) else [vs])],
    )
    assert status == 200
    assert problems(users, "UserEntityListing") == []
    assert {u["routingStatus"]["status"] for u in users["entities"]} <= ROUTING_STATUSES
    for path, model in (
        ("/api/v2/routing/queues/nope/members", "ErrorBody"),
        ("/api/v2/routing/queues?pageSize=500", "ErrorBody"),
    ):
        status, body = await call(http, "GET", sim.url + path, auth)
        assert status in (400, 404)
        assert problems(body, model) == []


async def test_aggregates_fit_the_sdk_model_and_count_closed_conversations(org, clock):
    sim, http, auth = org
    start, end = day_window(clock.time(), ZoneInfo("UTC"))
    queue_ids = sorted(sim.model.queues)
    for group_by, metrics in (
        (["userId"], AGENT_QUERY_METRICS),
        (["queueId", "mediaType"], QUEUE_QUERY_METRICS),
    ):
        body = aggregate_query(iso_interval(start, end), group_by, metrics, queue_ids)
        assert problems(body, "ConversationAggregationQuery") == []
        status, answer = await call(
            http, "POST", f"{sim.url}/api/v2/analytics/conversations/aggregates/query", auth, json=body
        )
        assert status == 200
        assert problems(answer, "ConversationAggregateQueryResponse") == []
        assert answer["results"], "an hour of traffic leaves aggregates"
        for result in answer["results"]:
            assert set(result["group"]) == set(group_by)
            assert all(row["metric"] in AGGREGATE_METRICS for d in result["data"] for row in d["metrics"])


def test_request_bodies_the_exporter_sends_fit_the_sdk_query_models():
    assert set(QUEUE_OBSERVATION_METRICS) <= OBSERVATION_METRICS
    assert problems(queue_observation_query([f"q{i}" for i in range(100)]), "QueueObservationQuery") == []
    body = aggregate_query("2026-05-14T00:00:00.000Z/2026-05-15T00:00:00.000Z", ["userId"], AGENT_QUERY_METRICS, ["q1"])
    assert problems(body, "ConversationAggregationQuery") == []
    assert set(AGENT_QUERY_METRICS) | set(QUEUE_QUERY_METRICS) <= AGGREGATE_METRICS
    assert DETAIL_METRICS < OBSERVATION_METRICS


async def test_the_official_sdk_itself_can_use_the_simulated_org(org):
    """The SDK as a client: token from /oauth/token on the API host, then typed calls."""
    sim, _, _ = org
    import PureCloudPlatformClientV2 as sdk

    def use_sdk() -> tuple[int, int]:
        api_client = sdk.ApiClient(host=sim.url).get_client_credentials_token(sim.client_id, sim.client_secret)
        queues = sdk.RoutingApi(api_client).get_routing_queues(page_size=4)
        query = sdk.QueueObservationQuery()
        query.metrics = ["oWaiting", "oOnQueueUsers"]
        predicates = []
        for q in queues.entities:
            predicate = sdk.QueueObservationQueryPredicate()
            predicate.dimension, predicate.value = "queueId", q.id
            predicates.append(predicate)
        query.filter = sdk.QueueObservationQueryFilter()
        query.filter.type, query.filter.predicates = "or", predicates
        observed = sdk.AnalyticsApi(api_client).post_analytics_queues_observations_query(query)
        return queues.total, len({r.group["queueId"] for r in observed.results})

    total, observed_queues = await asyncio.to_thread(use_sdk)
    assert total == 8
    assert observed_queues == 4
