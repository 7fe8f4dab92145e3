"""Observation pages in, queue states and golden exposition out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from exporter.clock import FakeClock
from exporter.genesys.models import MetricRow, ObservationResponse, QueueListing
from exporter.snapshot import Part, PartKey, Snapshot
from exporter.sources.queue_directory import QUEUES, Queue, QueueScope, parse_queue_pages, render_queue_info
from exporter.sources.queue_states import (
    IMPLAUSIBLE,
    QUEUE_STATES,
    QueueLines,
    QueueState,
    longest_waiting_seconds,
    parse_observations,
    render_queue_states,
)
from tests.harness.scraping import families_of

Q1, Q2, Q3 = (f"11111111-aaaa-4000-8000-00000000000{i}" for i in (1, 2, 3))


@pytest.fixture
def parsed(
    fixture: Callable[[str], Any], queue_listings: list[QueueListing], clock: FakeClock
) -> tuple[dict[str, Queue], dict[str, QueueState]]:
    """The recorded directory and observation pages, parsed at the clock's instant."""
    queues = parse_queue_pages(queue_listings, QueueScope())
    states: dict[str, QueueState] = {}
    for name in ("queue_observations_1.json", "queue_observations_2.json"):
        response = ObservationResponse.model_validate(fixture(name))
        states.update(parse_observations(response, clock.time()))
    return queues, states


def test_user_and_media_groups_become_one_state_per_queue(parsed):
    _, states = parsed
    sales = states[Q1]
    assert sales.waiting == {"voice": 3, "chat": 0}
    assert sales.interacting == {"voice": 2, "chat": 0}
    assert sales.available_agents == 1
    assert sales.agents_by_status == {"interacting": 2, "idle": 1, "off_queue": 3}
    assert (sales.member_agents, sales.joined_agents) == (12, 9)
    assert sales.oldest_waiting_seconds == {"voice": 120.0}  # epoch-ms start, two minutes before the clock


def test_nobody_idle_is_zero_available_and_duration_style_longest_wait(parsed):
    _, states = parsed
    tier2 = states[Q2]
    assert tier2.available_agents == 0
    assert tier2.oldest_waiting_seconds == {"email": 90.0}
    assert tier2.agents_by_status["some_new_status"] == 1  # a status we have never seen passes through


def test_a_queue_the_response_does_not_mention_is_unknown_not_zero(parsed):
    queues, states = parsed
    assert Q3 in queues
    assert Q3 not in states


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        ({"count": 0}, None),
        ({"count": 1}, None),
        ({"count": 1, "calculatedMetricValue": 1778752800000 - 5000}, 5.0),
        ({"count": 1, "calculatedMetricValue": 1778752800000 + 5000}, 0.0),  # clock skew never goes negative
        ({"count": 2, "calculatedMetricValue": 42000}, 42.0),
        ({"count": 2, "max": 7000}, 7.0),
    ],
)
def test_longest_waiting_reads_either_unconfirmed_form(stats, expected):
    row = MetricRow.model_validate({"metric": "oLongestWaiting", "stats": stats})
    assert longest_waiting_seconds(row, 1778752800.0) == expected


@pytest.mark.parametrize(
    "value",
    [
        1778752800000 + 3_600_000,  # a start an hour in the future
        1778752800000 - 3 * 86_400_000,  # a start three days ago
        2 * 86_400_000,  # a duration of two days
    ],
)
def test_an_oldest_wait_no_reading_makes_sense_of_is_left_out_and_counted(value):
    row = MetricRow.model_validate({"metric": "oLongestWaiting", "stats": {"count": 1, "calculatedMetricValue": value}})
    before = IMPLAUSIBLE["oLongestWaiting"]
    assert longest_waiting_seconds(row, 1778752800.0) is None
    assert IMPLAUSIBLE["oLongestWaiting"] == before + 1


def test_golden_exposition(parsed, clock, golden):
    queues, states = parsed
    parts = {PartKey.polled(0): Part(states, clock.monotonic())}
    snapshot = Snapshot().with_data({QUEUES: queues, QUEUE_STATES: parts})
    text = "".join((*render_queue_info(snapshot), *render_queue_states(snapshot)))
    golden("queues.prom", text)
    families = families_of(text)
    waiting = {
        (s.labels["queue_name"], s.labels["media_type"]): s.value
        for s in families["genesys_queue_waiting_interactions"].samples
    }
    assert waiting == {("Sales", "voice"): 3, ("Sales", "chat"): 0, ('Support "Tier 2"', "email"): 5}
    info = {s.labels["queue_name"] for s in families["genesys_queue_info"].samples}
    assert info == {"Sales", 'Support "Tier 2"', "Support Chat\\Email"}


def test_a_queue_whose_state_or_name_moved_gets_new_lines_the_others_keep_theirs(parsed, clock):
    """The lines kept between builds are the very ones a first build makes of the same data."""
    queues, states = parsed
    kept = QueueLines()
    first = kept((qid, queues[qid], state) for qid, state in sorted(states.items()))
    moved = {**states, Q1: replace(states[Q1], waiting={"voice": 4, "chat": 0})}
    renamed = {**queues, Q2: replace(queues[Q2], name="Tier 2")}
    rows = [(qid, renamed[qid], state) for qid, state in sorted(moved.items())]
    second = kept(rows)
    assert second == QueueLines()(rows)
    assert [a is b for a, b in zip(first, second, strict=True)] == [qid not in (Q1, Q2) for qid in sorted(states)]
    assert 'queue_id="11111111-aaaa-4000-8000-000000000001",queue_name="Sales",media_type="voice"} 4' in second[0][0]
