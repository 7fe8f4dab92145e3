"""Observation pages in, queue states and golden exposition out."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from exporter.clock import FakeClock
from exporter.genesys.models import MetricRow, ObservationResponse, QueueListing
from exporter.gzip_segments import gzip_pieces
from exporter.snapshot import Part, PartKey, Snapshot
from exporter.sources import DEFAULT_SELECTION
from exporter.sources.queue_directory import QUEUES, Queue, QueueScope, parse_queue_pages, render_queue_info
from exporter.sources.queue_states import (
    IMPLAUSIBLE,
    QUEUE_STATE_FAMILIES,
    QUEUE_STATES,
    QUEUES_PER_RUN,
    QueueSegment,
    QueueState,
    longest_waiting_seconds,
    parse_observations,
    render_queue_states,
)
from exporter.sources.source import Tagged
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


def test_a_queue_whose_state_or_name_moved_recompresses_only_its_runs(parsed, clock):
    """What the segment keeps between builds gives the very text a first render of the same data does."""
    _, states = parsed
    sales = states[Q1]
    queues = {f"q{n:03}": Queue(f"q{n:03}", f"Queue {n}", "") for n in range(2 * QUEUES_PER_RUN + 10)}

    def snapshot(queues: dict[str, Queue], states: dict[str, QueueState]) -> Snapshot:
        return Snapshot().with_data(
            {QUEUES: queues, QUEUE_STATES: {PartKey.polled(0): Part(states, clock.monotonic())}}
        )

    def text(built: tuple[Tagged, ...]) -> str:
        return gzip.decompress(b"".join(gzip_pieces([segment for _, segment in built]))).decode()

    segment = QueueSegment()
    before = dict.fromkeys(queues, sales)
    first = segment(snapshot(queues, before), DEFAULT_SELECTION)
    assert text(first) == "".join(render_queue_states(snapshot(queues, before)))
    runs = dict(segment.runs.kept)
    # Every state frozen afresh, as a push landing does; one queue moved (in the second run), one renamed (the third).
    after = {qid: replace(sales) for qid in queues} | {"q150": replace(sales, waiting={"voice": 4, "chat": 0})}
    renamed = queues | {"q205": Queue("q205", "Queue two hundred and five", "")}
    second = segment(snapshot(renamed, after), DEFAULT_SELECTION)
    assert text(second) == "".join(render_queue_states(snapshot(renamed, after)))
    assert 'queue_id="q150",queue_name="Queue 150",media_type="voice"} 4' in text(second)
    moved = {key for key, run in segment.runs.kept.items() if runs[key] is not run}
    families = range(len(QUEUE_STATE_FAMILIES))
    assert moved == {(0, QUEUES_PER_RUN)} | {(i, 2 * QUEUES_PER_RUN) for i in families}
