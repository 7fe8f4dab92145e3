"""The simulated org behaves like the real service where the exporter can tell (brief §6)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from exporter.clock import FakeClock
from exporter.simulator.api import SimulatedOrg, is_loopback, serve_simulator
from exporter.simulator.model import OrgModel, SimConfig
from tests.harness.net import basic_auth

OBS = "/api/v2/analytics/queues/observations/query"


class Api:
    def __init__(self, org: SimulatedOrg, http: aiohttp.ClientSession) -> None:
        self.org, self.http, self.token = org, http, ""

    async def login(self, secret: str | None = None) -> tuple[int, Any]:
        auth = basic_auth(self.org.client_id, secret or self.org.client_secret)
        async with self.http.post(
            f"{self.org.url}/oauth/token", data={"grant_type": "client_credentials"}, headers=auth
        ) as r:
            body = await r.json()
            self.token = body.get("access_token", "")
            return r.status, body

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        async with self.http.request(method, self.org.url + path, headers=headers, **kw) as r:
            return r.status, await r.json(), r.headers


@pytest.fixture
async def api(clock: FakeClock) -> AsyncIterator[Api]:
    async with (
        serve_simulator(queues=6, agents=50, seed=5, clock=clock, rate_limit=20) as org,
        aiohttp.ClientSession() as http,
    ):
        client = Api(org, http)
        await client.login()
        yield client


def test_same_seed_same_org_at_the_same_instant():
    a, b = OrgModel(SimConfig(seed=9), 1_778_752_800.0), OrgModel(SimConfig(seed=9), 1_778_752_800.0)
    for step in range(1, 4):  # b is looked at ten times as often as a: it must not matter
        for k in range(10):
            b.advance(1_778_752_800.0 + (step - 1) * 300 + (k + 1) * 30)
        a.advance(1_778_752_800.0 + step * 300)
    assert list(a.queues) == list(b.queues)
    assert [x.name for x in a.agents.values()] == [x.name for x in b.agents.values()]
    assert [(x.routing_status, x.presence) for x in a.agents.values()] == [
        (x.routing_status, x.presence) for x in b.agents.values()
    ]
    assert [a.queue_truth(q) for q in a.queues] == [b.queue_truth(q) for q in b.queues]
    assert OrgModel(SimConfig(seed=10), 0).queues.keys() != a.queues.keys()


def test_a_queues_member_counts_kept_between_changes_are_what_counting_again_finds():
    """The model keeps each queue's member counts until one of its members changes: observed every
    simulated second through every kind of change, they must be what a fresh count says."""
    start = 1_778_752_800.0
    model = OrgModel(SimConfig(queues=8, agents=60, seed=3), start)
    queues = list(model.queues)
    agents = list(model.agents)
    for second in range(1, 1200):
        model.advance(start + second)
        if second % 97 == 0:
            model.set_presence(agents[second % len(agents)], "BREAK")
        if second % 131 == 0:
            model.staff(agents[(second * 7) % len(agents)])
        if second == 600:
            model.unstaff(queues[0])
        for queue_id in queues:
            truth = model.queue_truth(queue_id)
            statuses, on_queue, presences, joined = model._count_members(model.queues[queue_id])
            assert (truth.statuses, truth.on_queue, truth.presences, truth.joined) == (
                statuses,
                on_queue,
                presences,
                joined,
            ), f"queue {queue_id} at second {second}"


def test_the_org_lives_calls_arrive_get_answered_and_abandoned():
    model = OrgModel(SimConfig(queues=10, agents=80, seed=2), 1_778_752_800.0)
    model.advance(1_778_752_800.0 + 3600)
    counts: dict[str, int] = {}
    for entry in model.ledger:
        counts[entry.metric] = counts.get(entry.metric, 0) + 1
    assert counts["nOffered"] > 100
    assert counts["tAnswered"] > 0.7 * counts["nOffered"]
    assert counts.get("tAbandon", 0) > 0
    assert counts["tHandle"] > 0
    statuses = {a.routing_status for a in model.agents.values()}
    assert {"IDLE", "INTERACTING", "OFF_QUEUE"} <= statuses
    handles = [e for e in model.ledger if e.metric == "tHandle"]
    assert all(e.user_id and e.value_ms and e.value_ms > 0 for e in handles)


async def test_login_rules(api):
    status, body = await api.login("wrong-secret")
    assert status == 401
    assert body["error"] == "invalid_client"
    status, body, _ = await api.call("GET", "/api/v2/routing/queues")
    assert status == 401
    assert body["code"] == "authentication.required"


async def test_tokens_expire(clock):
    async with serve_simulator(queues=2, agents=5, clock=clock, token_ttl=60) as org, aiohttp.ClientSession() as http:
        client = Api(org, http)
        await client.login()
        assert (await client.call("GET", "/api/v2/routing/queues"))[0] == 200
        await clock.advance(61)
        status, body, headers = await client.call("GET", "/api/v2/routing/queues")
        assert (status, body["code"]) == (401, "credentials.expired")
        assert body["contextId"] == headers["inin-correlation-id"]


async def test_rate_limit_headers_429_and_reset(api, clock):
    for n in range(1, 21):
        status, _, headers = await api.call("GET", "/api/v2/routing/queues")
        assert status == 200
        assert (headers["inin-ratelimit-allowed"], headers["inin-ratelimit-count"]) == ("20", str(n))
    status, body, headers = await api.call("GET", "/api/v2/routing/queues")
    assert status == 429
    assert body["code"] == "too.many.requests.retry.after"
    assert body["contextId"] == headers["inin-correlation-id"]
    assert int(headers["Retry-After"]) == 60
    assert body["message"] == "Rate limit exceeded the maximum. Retry the request in [60] seconds"
    await clock.advance(60)
    status, _, headers = await api.call("GET", "/api/v2/routing/queues")
    assert (status, headers["inin-ratelimit-count"]) == (200, "1")


async def test_numbered_and_next_uri_paging(api):
    status, first, _ = await api.call("GET", "/api/v2/routing/queues?pageSize=4")
    assert (first["total"], first["pageCount"], len(first["entities"])) == (6, 2, 4)
    status, last, _ = await api.call("GET", first["nextUri"])
    assert len(last["entities"]) == 2 and "nextUri" not in last
    queue = max(api.org.model.queues.values(), key=lambda q: len(q.members))
    pages, path = [], f"/api/v2/routing/queues/{queue.id}/members?pageSize=2"
    while path:
        status, page, _ = await api.call("GET", path)
        assert status == 200
        assert not {"total", "pageCount", "lastUri"} & set(page)
        pages.append(page)
        path = page.get("nextUri")
    assert sum(len(p["entities"]) for p in pages) == len(queue.members)
    status, body, _ = await api.call("GET", "/api/v2/users?pageSize=101")
    assert (status, body["code"]) == (400, "bad.request")


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (
            {"metrics": ["oBogus"], "filter": {"type": "or", "predicates": [{"dimension": "queueId", "value": "q"}]}},
            400,
            "invalid metric",
        ),
        (
            {"metrics": ["oWaiting"], "filter": {"type": "or", "predicates": [{"dimension": "userId", "value": "u"}]}},
            400,
            "invalid dimension",
        ),
        ({"metrics": ["oWaiting"], "filter": {"type": "xor", "predicates": []}}, 400, "filter.type"),
        (
            {
                "metrics": ["oWaiting"],
                "detailMetrics": ["oLongestWaiting"],
                "filter": {"type": "or", "predicates": [{"dimension": "queueId", "value": "q"}]},
            },
            400,
            "detailMetrics",
        ),
        (
            {
                "metrics": ["oWaiting"],
                "filter": {
                    "type": "or",
                    "predicates": [{"dimension": "queueId", "value": f"q{i}"} for i in range(101)],
                },
            },
            400,
            "at most 100",
        ),
    ],
)
async def test_observation_bodies_are_checked(api, body, status, words):
    got, answer, _ = await api.call("POST", OBS, json=body)
    assert got == status
    assert words in answer["message"]


async def test_wrong_content_type(api):
    status, body, _ = await api.call("POST", OBS, data="x", headers={"Content-Type": "text/plain"})
    assert (status, body["code"]) == (415, "unsupported.media.type")


async def test_a_missing_permission_is_named(clock):
    async with (
        serve_simulator(queues=2, agents=5, clock=clock, permissions=frozenset({"routing:queue:view"})) as org,
        aiohttp.ClientSession() as http,
    ):
        client = Api(org, http)
        await client.login()
        status, body, _ = await client.call("POST", OBS, json={"metrics": ["oWaiting"]})
        assert (status, body["code"]) == (403, "missing.permissions")
        assert "analytics:queueObservation:view" in body["message"]
        assert (await client.call("GET", "/api/v2/routing/queues"))[0] == 200


async def test_zero_rows_and_longest_waiting(api):
    model = api.org.model
    queue_id = next(iter(model.queues))
    body = {
        "metrics": ["oWaiting", "oLongestWaiting", "oOnQueueUsers"],
        "filter": {"type": "or", "predicates": [{"dimension": "queueId", "value": queue_id}]},
    }
    status, answer, _ = await api.call("POST", OBS, json=body)
    assert status == 200
    media_groups = [r for r in answer["results"] if "mediaType" in r["group"]]
    assert {g["group"]["mediaType"] for g in media_groups} == set(model.queues[queue_id].media)
    truth = model.queue_truth(queue_id)
    for group in media_groups:
        media = group["group"]["mediaType"]
        rows = {row["metric"]: row["stats"] for row in group["data"]}
        assert rows["oWaiting"]["count"] == truth.waiting[media]  # zero counts included
        if truth.waiting[media]:
            assert rows["oLongestWaiting"]["calculatedMetricValue"] == round(truth.oldest_waiting_since[media] * 1000)
        else:
            assert rows["oLongestWaiting"] == {"count": 0}


def test_scenario_callers_must_be_on_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("192.0.2.10")  # a documentation address: classified, never contacted
    assert not is_loopback(None)


async def test_scenarios_unstaff_a_queue_and_staff_an_agent(api):
    model = api.org.model
    queue = next(iter(model.queues.values()))
    async with api.http.post(f"{api.org.url}/__admin/scenario", json={"action": "unstaff", "queue": queue.name}) as r:
        members = (await r.json())["agents"]
    async with api.http.post(
        f"{api.org.url}/__admin/scenario", json={"action": "wait", "queue": queue.id, "count": 2}
    ) as r:
        assert (await r.json())["waiting"]["voice"] >= 2
    truth = model.queue_truth(queue.id)
    assert truth.on_queue.get("IDLE", 0) == 0
    idle = next(a for a in members if model.agents[a].conversation is None)
    async with api.http.post(f"{api.org.url}/__admin/scenario", json={"action": "staff", "agent": idle}) as r:
        assert r.status == 200
    assert model.agents[idle].presence == "ON_QUEUE"
    assert model.agents[idle].conversation is not None  # took one of the waiting interactions at once


async def test_aggregates_count_a_close_only_once_the_analytics_delay_has_passed(api, clock):
    model, org = api.org.model, api.org
    await clock.advance(300)
    day = "2026-05-14T00:00:00.000Z/2026-05-15T00:00:00.000Z"
    body = {"interval": day, "groupBy": ["userId"], "metrics": ["tHandle"]}

    async def closed_by_the_api() -> int:
        status, answer, _ = await api.call("POST", "/api/v2/analytics/conversations/aggregates/query", json=body)
        assert status == 200
        return sum(row["stats"]["count"] for r in answer["results"] for b in r["data"] for row in b["metrics"])

    def closed_in_the_ledger(until: float) -> int:
        return sum(1 for e in model.ledger if e.metric == "tHandle" and e.user_id and e.at < until)

    assert org.analytics_delay > 0
    for _ in range(3600):  # until a conversation closed within the delay: in the ledger, not yet counted
        model.advance(clock.time())
        if closed_in_the_ledger(clock.time() - org.analytics_delay) < closed_in_the_ledger(clock.time() + 1):
            break
        await clock.advance(1)
    else:
        pytest.fail("no conversation closed within the analytics delay in an hour of the org")
    assert await closed_by_the_api() == closed_in_the_ledger(clock.time() - org.analytics_delay)


async def test_the_closed_scenario_names_the_latest_closes_with_the_days_counts(api, clock):
    model = api.org.model
    day_start = clock.time() - 3600
    since = clock.time()
    await clock.advance(600)
    async with api.http.post(
        f"{api.org.url}/__admin/scenario",
        json={"action": "closed", "since": since, "day_start": day_start, "limit": 5},
    ) as r:
        answer = await r.json()
    assert len(answer["closed"]) == 5
    for close in answer["closed"]:
        assert since < close["at"] <= answer["now"]
        by_user = [e for e in model.ledger if e.metric == "tHandle" and e.user_id == close["user"]]
        assert close["user_closed"] == sum(1 for e in by_user if day_start <= e.at <= close["at"])
        in_queue = [e for e in model.ledger if e.metric == "tHandle" and e.queue_id == close["queue"]]
        same_media = [e for e in in_queue if e.media == close["media"] and day_start <= e.at <= close["at"]]
        assert close["queue_closed"] == len(same_media)
