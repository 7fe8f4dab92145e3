"""One exporter, three OAuth clients of a simulated org that enforces each client's own limit (issue 12):
the requests spread over the clients, none goes over its limit, and a client whose credentials fail
leaves the others working until it is back."""

from __future__ import annotations

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.simulator.api import serve_simulator
from tests.harness.exporter_time import landed, run_for
from tests.harness.scraping import scrape
from tests.harness.simulated_org import settings_of
from tests.harness.waiting import eventually

LIMIT = 60  # per client and minute; 54 with the headroom
OVER_ONE_CLIENT = {"rate_limit_per_minute": LIMIT, "queue_interval": 5, "agent_interval": 2, "performance_interval": 30}


async def test_three_clients_share_the_work_each_under_its_own_limit_with_zero_429s(clock: FakeClock):
    # Asked for: about 290 requests a minute, five times one client's 54; three clients have 162.
    minutes = 10
    async with (
        serve_simulator(queues=20, agents=900, seed=2, clock=clock, rate_limit=LIMIT, clients=3) as org,
        Exporter(settings_of(org, **OVER_ONE_CLIENT), clock=clock) as exporter,
    ):
        assert exporter.budget.per_second == 3 * 54 / 60  # one plan over the three
        await run_for(exporter, clock, minutes * 60, wait=landed)
        await eventually(lambda: exporter.store.status("queues").up is not None)
        text, families = await scrape(exporter.url)

        assert org.rate_limited == 0 and exporter.budget.rate_limited_total == 0
        pollers = exporter.store.snapshot.pollers
        assert all(status.up for status in pollers.values()), pollers
        assert pollers["queues"].interval == 5
        assert 2 < pollers["agents"].interval < 4 * 2  # stretched less than one client's budget would (> 8 s)
        for client in org.clients:
            served = org.api_requests(client=client)
            assert 54 * (minutes - 1) <= served <= 54 * minutes + 54, (client, served)  # each full, none over
        samples = {s.labels["client"]: s.value for s in families["genesys_exporter_budget_requests_per_minute"].samples}
        assert samples == dict.fromkeys(org.clients, 54)
        by_client = {s.labels["client"] for s in families["genesys_exporter_api_requests"].samples}
        assert by_client == set(org.clients)
        assert all(secret not in text for secret in org.clients.values())


async def test_a_client_with_bad_credentials_leaves_the_others_working_and_comes_back_when_fixed(
    clock: FakeClock,
):
    async with serve_simulator(queues=20, agents=300, seed=4, clock=clock, rate_limit=LIMIT, clients=3) as org:
        first, bad, third = org.clients
        good_secret = org.clients[bad]
        org.clients[bad] = "rotated-and-not-yet-updated"  # the exporter's secret is now a wrong one
        async with Exporter(settings_of(org, {bad: good_secret}), clock=clock) as exporter:
            await run_for(exporter, clock, 120, wait=landed)
            assert exporter.scheduler.ready
            pollers = exporter.store.snapshot.pollers
            assert all(status.up and not status.consecutive_failures for status in pollers.values()), pollers
            assert org.client_requests[(bad, "oauth_token", 401)] >= 1
            assert org.api_requests(client=bad) == 0
            assert org.api_requests(client=first) > 0 and org.api_requests(client=third) > 0
            assert exporter.budget.in_use() == (first, third)
            assert exporter.budget.per_second == 2 * 54 / 60  # its share went to the others

            org.clients[bad] = good_secret  # the org takes the secret again: it is tried after its back-off
            await run_for(exporter, clock, 660, wait=landed)
            assert exporter.budget.in_use() == (first, bad, third)
            assert org.api_requests(client=bad) > 0
            assert org.rate_limited == 0


async def test_a_client_revoked_mid_run_hands_its_requests_to_the_others(clock: FakeClock):
    async with (
        serve_simulator(queues=20, agents=300, seed=5, clock=clock, rate_limit=LIMIT, clients=3) as org,
        Exporter(settings_of(org), clock=clock) as exporter,
    ):
        first, revoked, third = org.clients
        await run_for(exporter, clock, 60, wait=landed)
        assert org.api_requests(client=revoked) > 0
        org.clients[revoked] = "revoked"  # the client is deleted: its tokens die and it cannot log in again
        org.revoke_tokens(revoked)
        before = org.api_requests(client=revoked)
        await run_for(exporter, clock, 120, wait=landed)
        pollers = exporter.store.snapshot.pollers
        assert all(status.up and not status.consecutive_failures for status in pollers.values()), pollers
        assert org.api_requests(client=revoked) - before <= 8  # the 401s of the requests in flight, then none
        assert exporter.budget.in_use() == (first, third)
        assert org.rate_limited == 0
