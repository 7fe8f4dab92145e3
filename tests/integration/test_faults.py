"""The exporter under the simulated org's faults: it keeps going, never lies, and leaks nothing.

Time is a fake clock, so a 40 s outage takes milliseconds; the network is real (127.0.0.1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import structlog

from exporter import logs
from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.genesys.auth import TOKEN_ATTEMPTS
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.simulator.faults import Fault, parse_fault
from tests.harness.exporter_time import ready, run_for, run_until
from tests.harness.scraping import by_labels, scrape
from tests.harness.simulated_org import settings_for
from tests.harness.truth import assert_matches_simulator
from tests.harness.waiting import eventually

MARKER = "MARKER-fault-secret-77e1"


@pytest.fixture
async def stack(clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> AsyncIterator[tuple[SimulatedOrg, Exporter]]:
    logs.configure("json", "debug")
    async with (
        serve_simulator(queues=5, agents=30, seed=12, clock=clock, client_secret=MARKER) as org,
        Exporter(settings_for(org), clock=clock) as exporter,
    ):
        await ready(exporter)
        yield org, exporter
    captured = capsys.readouterr()
    assert MARKER not in captured.out + captured.err, "the client secret reached the output"
    structlog.reset_defaults()


async def test_an_outage_keeps_last_values_then_drops_them_never_zero_then_recovers(stack, clock):
    org, exporter = stack
    _, before = await scrape(exporter.url)
    waiting_before = by_labels(before, "genesys_queue_waiting_interactions", "queue_id", "media_type")
    org.faults.arm(Fault("status", route="queue_observations", status=503))
    outage_start = clock.time()

    await run_for(exporter, clock, 25)  # within 3 cadences of the last success: last good values
    _, during = await scrape(exporter.url)
    assert by_labels(during, "genesys_queue_waiting_interactions", "queue_id", "media_type") == waiting_before
    assert by_labels(during, "genesys_exporter_poller_up", "poller")[("queues",)] == 0
    assert by_labels(during, "genesys_exporter_poller_up", "poller")[("agents",)] == 1  # the others carry on
    last_success = by_labels(during, "genesys_exporter_last_success_timestamp_seconds", "poller")[("queues",)]
    assert last_success <= outage_start

    await run_for(exporter, clock, 10)  # now older than 3 cadences: gone, not zero
    text, _ = await scrape(exporter.url)
    assert "genesys_queue_waiting_interactions{" not in text
    assert "genesys_queue_available_agents{" not in text
    assert "genesys_queue_info{" in text  # the directory is still known

    org.faults.clear()
    recovery = await run_until(exporter, clock, lambda: exporter.store.status("queues").up is True, within=60)
    assert recovery <= 10 + 8  # one cadence plus the longest backoff step
    _, families = await scrape(exporter.url)
    assert_matches_simulator(org, families, clock.time(), agents=False)  # agents poll on their own cadence
    print(f"\nrecovered {recovery:.0f} s after the fault cleared")


async def test_a_page_of_the_wrong_shape_is_counted_and_poisons_nothing_else(stack, clock):
    org, exporter = stack
    org.faults.arm(Fault("wrong_shape", route="users"))
    await run_for(exporter, clock, 31)  # the start's listing gave every state: polls by id from its next cadence
    _, families = await scrape(exporter.url)
    assert by_labels(families, "genesys_exporter_parse_errors_total", "endpoint")[("users",)] >= 1
    assert by_labels(families, "genesys_exporter_poller_up", "poller")[("agents",)] == 0
    assert by_labels(families, "genesys_exporter_poller_up", "poller")[("queues",)] == 1
    waiting = by_labels(families, "genesys_queue_waiting_interactions", "queue_id", "media_type")
    for queue_id, queue in org.model.queues.items():
        for media in queue.media:
            assert waiting[(queue_id, media)] == org.model.queue_truth(queue_id).waiting[media]


@pytest.mark.parametrize("kind", ["malformed", "reset"])
async def test_broken_bodies_fail_the_cycle_cleanly(stack, clock, kind):
    org, exporter = stack
    org.faults.arm(Fault(kind, route="queue_observations"))
    await run_for(exporter, clock, 30)  # a lost connection is retried with backoff before the cycle fails
    status = exporter.store.status("queues")
    assert status is not None and status.up is False
    _, families = await scrape(exporter.url)
    if kind == "malformed":
        assert by_labels(families, "genesys_exporter_parse_errors_total", "endpoint")[("queue_observations",)] >= 1
    org.faults.clear()
    await run_for(exporter, clock, 20)
    assert exporter.store.status("queues").up is True


async def test_new_fields_and_enum_values_are_tolerated(stack, clock):
    org, exporter = stack
    org.faults.arm(Fault("drift", route="*"))
    await run_for(exporter, clock, 30)  # a common multiple of the queue and agent cadences
    _, families = await scrape(exporter.url)
    assert_matches_simulator(org, families, clock.time())
    statuses = by_labels(families, "genesys_queue_agents", "queue_id", "routing_status")
    assert all(statuses[(q, "some_new_status")] == 1 for q in org.model.queues)
    assert "genesys_exporter_parse_errors" not in families  # nothing was refused


async def test_revoked_tokens_are_replaced_without_a_failed_cycle(stack, clock):
    org, exporter = stack
    tokens_before = exporter.client.tokens.requests
    org.faults.arm(Fault("revoke", route="queue_observations", limit=1))
    await run_for(exporter, clock, 11)
    assert exporter.client.tokens.requests == tokens_before + 1
    assert exporter.store.status("queues").consecutive_failures == 0


def test_fault_specs_from_the_command_line():
    assert parse_fault("queue_observations:status:status=429,retry_after=200") == Fault(
        "status", "queue_observations", status=429, retry_after=200.0
    )
    with pytest.raises(ValueError, match="invalid fault"):
        parse_fault("queues:explode")


async def test_a_missing_permission_fails_only_its_poller_and_names_it(stack, clock):
    org, exporter = stack
    org.faults.arm(Fault("forbid", route="conversation_aggregates"))
    await run_for(exporter, clock, 61)
    performance = exporter.store.status("performance")
    assert performance is not None and performance.up is False
    assert "lacks analytics:conversationAggregate:view" in (performance.last_error or "")
    assert exporter.store.status("queues").up is True
    # Two queries a cycle and no retry of a 403: each failed cycle sent two.
    assert org.requests[("conversation_aggregates", 403)] == 2 * performance.consecutive_failures


async def test_token_endpoint_down_then_back(stack, clock):
    org, exporter = stack
    org.faults.arm(
        Fault("revoke", route="queue_observations", limit=1), Fault("status", route="oauth_token", status=503)
    )
    # The next queue poll's token is revoked; renewing it fails (each attempt after a random backoff):
    # the cycle fails, whenever the backoffs end.
    await run_until(exporter, clock, lambda: exporter.store.status("queues").up is False, within=60)
    assert org.requests[("oauth_token", 503)] >= TOKEN_ATTEMPTS
    assert "token endpoint failed" in (exporter.store.status("queues").last_error or "")
    org.faults.clear()
    tokens_given = org.requests[("oauth_token", 200)]
    await run_until(exporter, clock, lambda: exporter.store.status("queues").up is True, within=60)
    assert org.requests[("oauth_token", 200)] == tokens_given + 1  # asked again, once, and answered


async def test_429_storm_pauses_everyone_and_a_daily_cap_is_not_waited_out(stack, clock):
    org, exporter = stack
    org.faults.arm(Fault("status", route="queue_observations", status=429, retry_after=5, limit=3))
    await run_for(exporter, clock, 30)
    assert exporter.budget.rate_limited_total == 3
    assert exporter.store.status("queues").up is True  # retried after the Retry-After, then fine
    org.faults.clear()
    org.faults.arm(Fault("status", route="queue_observations", status=429, retry_after=3600, limit=1))
    failures_before = exporter.store.status("queues").consecutive_failures
    await run_for(exporter, clock, 10)
    status = exporter.store.status("queues")
    assert status.consecutive_failures == failures_before + 1
    assert "daily cap" in (status.last_error or "")


async def test_answers_slower_than_the_timeout_fail_the_cycle_then_recover(clock):
    async with (
        serve_simulator(queues=3, agents=10, seed=6, clock=clock) as org,
        Exporter(settings_for(org, request_timeout=0.2), clock=clock) as exporter,
    ):
        await eventually(lambda: exporter.scheduler.ready)
        org.faults.arm(Fault("slow", route="queue_observations", delay=0.4))
        # Timeouts are real time, backoffs fake: each second waits for its timed-out attempts to land.
        await run_until(exporter, clock, lambda: exporter.store.status("queues").up is False, within=200)
        status = exporter.store.status("queues")
        assert status is not None and status.up is False
        assert "no answer from Genesys" in (status.last_error or "")
        assert exporter.client.stats.requests[("queue_observations", "error")] >= 4
        org.faults.clear()
        await run_for(exporter, clock, 20)
        assert exporter.store.status("queues").up is True
