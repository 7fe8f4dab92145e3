"""Aggregates in, tallies and golden exposition out; the day they cover follows local midnight."""

from __future__ import annotations

import json
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exporter.genesys.models import AGGREGATE_RESPONSE, AggregateResponse, UserListing
from exporter.genesys.queries import aggregate_query
from exporter.snapshot import Part, PartKey, Snapshot
from exporter.sources import DEFAULT_SELECTION, METRICS
from exporter.sources.agent_directory import AGENTS, Agent, render_agent_info
from exporter.sources.agent_states import AGENT_STATES, ROUTING_CODES, parse_agent_states, render_agent_states
from exporter.sources.performance import (
    AGENT_QUERY_METRICS,
    AGENT_TALLIES,
    QUEUE_TALLIES,
    Tally,
    add_rows,
    agent_query_metrics,
    agent_tallies,
    day_window,
    new_sums,
    queue_tallies,
    render_agent_tallies,
    render_queue_tallies,
    with_media_served,
)
from exporter.sources.queue_directory import QUEUES, Queue
from exporter.sources.queue_states import QUEUE_STATES, QueueState
from exporter.sources.source import Selection, unsharded
from tests.harness.scraping import families_of

Q1 = "11111111-aaaa-4000-8000-000000000001"


def aggregates(body: Any) -> AggregateResponse:
    """A decoded aggregate answer, through the decoder the client uses on the wire."""
    return AGGREGATE_RESPONSE.decode(json.dumps(body).encode())


def parse_agent_tallies(responses: list[AggregateResponse], agent_ids: list[str]) -> dict[str, Tally]:
    """The answers folded as the performance job folds them, then every agent's tally."""
    sums = new_sums()
    for response in responses:
        add_rows(sums, response, "userId")
    return agent_tallies(sums, agent_ids)


def parse_queue_tallies(responses: list[AggregateResponse]) -> dict[str, dict[str, Tally]]:
    sums = new_sums()
    for response in responses:
        add_rows(sums, response, "queueId", "mediaType")
    return queue_tallies(sums)


def test_aht_counts_closed_conversations_only_and_is_absent_without_any(fixture):
    response = aggregates(fixture("conversation_aggregates_users.json"))
    tallies = parse_agent_tallies([response], ["u-ann", "u-bob", "u-idle"])
    ann, bob, idle = tallies["u-ann"], tallies["u-bob"], tallies["u-idle"]
    assert (ann.connected, ann.handled, ann.handle_seconds, ann.average_handle_seconds) == (3, 2, 600.0, 300.0)
    # Bob is 20 minutes into his only call: connected, talk time counted, but nothing closed and no AHT.
    assert (bob.connected, bob.handled, bob.average_handle_seconds) == (1, 0, None)
    assert idle == Tally()  # known agent, no row: a true zero, and no average


def test_tallies_add_up_across_batches_and_buckets():
    def response(count: int, total: int) -> AggregateResponse:
        bucket = {"metrics": [{"metric": "tHandle", "stats": {"count": count, "sum": total}}]}
        return aggregates({"results": [{"group": {"userId": "u"}, "data": [bucket, bucket]}]})

    (tally,) = parse_agent_tallies([response(1, 1000), response(2, 5000)], ["u"]).values()
    assert (tally.handled, tally.handle_seconds) == (6, 12.0)


def test_queue_tallies_and_golden(fixture, clock, golden):
    queues = {Q1: Queue(Q1, "Sales", "Home")}
    response = aggregates(fixture("conversation_aggregates_queues.json"))
    tallies = parse_queue_tallies([response])
    voice = tallies[Q1]["voice"]
    assert (voice.offered, voice.answered, voice.abandoned, voice.handled) == (12, 10, 2, 5)
    assert voice.average_handle_seconds == pytest.approx(625.1904)
    assert voice.service_level == 0.8
    # What AHT is made of: every conversation here closed, so its parts add up to its handle time.
    parts = (voice.talks, voice.holds, voice.after_call_works)
    assert parts == (5, 2, 5)
    made_of = voice.talk_seconds + voice.hold_seconds + voice.after_call_work_seconds
    assert made_of == pytest.approx(voice.handle_seconds)
    live = QueueState({"voice": 0, "chat": 0}, {}, {}, {}, 0, {}, 0, 0)
    first = PartKey.polled(0)
    served = Snapshot().with_data({QUEUES: queues, QUEUE_STATES: {first: Part({Q1: live}, 0)}})
    agent_states = parse_agent_states(UserListing.model_validate(fixture("users_state_page.json")))
    agent_figures = parse_agent_tallies([aggregates(fixture("conversation_aggregates_users.json"))], ["u-ann", "u-bob"])
    snapshot = Snapshot().with_data(
        {
            QUEUES: queues,
            QUEUE_STATES: {first: Part({Q1: live}, 0)},
            QUEUE_TALLIES: {first: Part(with_media_served(tallies, served), 0)},
            AGENTS: {"u-ann": Agent("u-ann", "Ann O'Neill", "Home"), "u-bob": Agent("u-bob", "Bob", "Home")},
            AGENT_STATES: {first: Part(agent_states, 0)},
            AGENT_TALLIES: {first: Part(agent_figures, 0)},
        }
    )
    everything = Selection(frozenset(METRICS))  # every agent family, the opt-in ones too
    renders = (unsharded(render_queue_tallies), render_agent_info, render_agent_states, render_agent_tallies)
    text = "".join(text for render in renders for _, text in render(snapshot, everything))
    golden("agents.prom", text)
    families = families_of(text)
    offered = {s.labels["media_type"]: s.value for s in families["genesys_queue_offered_interactions"].samples}
    assert offered == {"voice": 12, "chat": 0}  # chat served, nothing today: zero, not absent
    aht = {s.labels["user_id"]: s.value for s in families["genesys_agent_average_handle_seconds"].samples}
    assert aht == {"u-ann": 300.0}  # Bob closed nothing: no sample
    status = {s.labels["user_id"]: s.value for s in families["genesys_agent_routing_status_code"].samples}
    assert status == {"u-ann": ROUTING_CODES["idle"], "u-bob": ROUTING_CODES["interacting"]}
    names = {s.labels["user_id"]: s.labels["agent_name"] for s in families["genesys_agent_info"].samples}
    assert names == {"u-ann": "Ann O'Neill", "u-bob": "Bob"}  # the name on the info series only
    assert all(
        set(s.labels) == {"user_id"}
        for f in families.values()
        if f.name != "genesys_agent_info" and f.name.startswith("genesys_agent_")
        for s in f.samples
    )


DUBLIN = ZoneInfo("Europe/Dublin")


@pytest.mark.parametrize(
    ("now", "start", "hours"),
    [
        ("2026-05-14T10:00:00+00:00", "2026-05-13T23:00:00+00:00", 24),  # IST (UTC+1)
        ("2026-03-29T12:00:00+00:00", "2026-03-29T00:00:00+00:00", 23),  # spring forward
        ("2026-10-25T12:00:00+00:00", "2026-10-24T23:00:00+00:00", 25),  # fall back
        ("2026-05-14T22:59:59+00:00", "2026-05-13T23:00:00+00:00", 24),  # a second before local midnight
        ("2026-05-14T23:00:00+00:00", "2026-05-14T23:00:00+00:00", 24),  # local midnight: a new day
    ],
)
def test_day_window_follows_local_midnight_across_dst(now, start, hours):
    begin, end = day_window(datetime.fromisoformat(now).timestamp(), DUBLIN)
    assert begin == datetime.fromisoformat(start)
    assert (end - begin).total_seconds() == hours * 3600


def test_day_window_with_a_shift_start():
    early = datetime(2026, 5, 14, 3, 0, tzinfo=DUBLIN).timestamp()
    begin, _ = day_window(early, DUBLIN, time(6, 0))
    assert begin == datetime(2026, 5, 13, 6, 0, tzinfo=DUBLIN)


def test_aggregate_query_shape():
    body = aggregate_query("a/b", ["userId"], ["tHandle"], ["q1", "q2"])
    assert body["filter"]["predicates"][1] == {
        "type": "dimension",
        "dimension": "queueId",
        "operator": "matches",
        "value": "q2",
    }
    assert "filter" not in aggregate_query("a/b", ["userId"], ["tHandle"], None)
    with pytest.raises(ValueError, match="at most 100"):
        aggregate_query("a/b", ["userId"], ["tHandle"], [str(i) for i in range(101)])


def test_the_agents_query_asks_only_for_what_the_chosen_families_show():
    """The answer by agent is a row per agent and metric: the default families (and the team sums) read
    tHandle alone, and an opt-in family adds its own metric and no other."""
    assert agent_query_metrics(DEFAULT_SELECTION) == ("tHandle",)
    talk = Selection(DEFAULT_SELECTION.metrics | {"genesys_agent_talk_seconds"})
    assert agent_query_metrics(talk) == ("tHandle", "tTalk")
    assert agent_query_metrics(Selection(frozenset(METRICS))) == AGENT_QUERY_METRICS
    assert set(AGENT_QUERY_METRICS) == {"nConnected", "tHandle", "tTalk", "tHeld", "tAcw"}
