"""Push must earn its trust: events with nothing readable, or polls that find it wrong, hand a kind's
items to the pollers until push is tried again; the socket's frames are read for what they are."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.clock import FakeClock
from exporter.genesys.notifications import (
    AgentActivity,
    ChannelSocket,
    Closing,
    Ended,
    Envelope,
    QueueStats,
    Unknown,
    ended_by_result,
)
from exporter.logs import shape_of
from exporter.push.state import PushedData
from exporter.push.trust import (
    CONFIRM_SECONDS,
    DISAGREED_AT_LEAST,
    PUBLISH_DELAY_SECONDS,
    RETRY_AFTER_SECONDS,
    UNREADABLE_IN_A_ROW,
    agent_differences,
)
from exporter.snapshot import PartKey, Store, merged
from exporter.sources.agent_states import AGENT_STATES, AgentState
from exporter.sources.queue_states import QUEUE_STATES
from tests.push.test_state import QUEUE_STATE, T0, activity, waiting_event

QUEUE_ID = "7d2a1c3e-0000-4000-8000-000000000001"

# A shape seen in third-party documentation: the metric rows straight in `data`, no interval around them.
FLAT_OBSERVATION = {
    "group": {"queueId": QUEUE_ID, "mediaType": "voice"},
    "data": [{"metric": "oWaiting", "stats": {"count": 3.0}}],
}


def live(agents: int = 0, queues: tuple[str, ...] = ()) -> tuple[FakeClock, Store, PushedData]:
    clock = FakeClock(T0)
    store = Store(clock)
    data = PushedData(store, clock, restamp_every=10.0)
    items = [("agents", f"a{i:04d}") for i in range(agents)] + [("queues", q) for q in queues]
    data.assign(0, items)
    data.set_live(0, True)
    data.reconciled(items)
    return clock, store, data


def test_an_event_with_metric_rows_straight_in_data_is_malformed_and_reads_nothing() -> None:
    _, _, data = live(queues=(QUEUE_ID,))
    assert data.queue_stats(QueueStats.model_validate(FLAT_OBSERVATION)) is False
    assert data.events["queues"] == 0  # not counted as an event read
    assert data.queue_stats(waiting_event(QUEUE_ID, 2.0)) is True
    assert data.events["queues"] == 1
    nothing = AgentActivity.model_validate({"id": "a0001", "activeQueueIds": []})
    assert data.activity(nothing) is False


def test_ten_unreadable_events_in_a_row_end_the_trust_one_readable_resets_the_run() -> None:
    _, _, data = live(agents=3, queues=(QUEUE_ID,))
    trust = data.trust
    for _ in range(UNREADABLE_IN_A_ROW - 1):
        trust.read("queues", False, FLAT_OBSERVATION)
    trust.read("queues", True)
    for _ in range(UNREADABLE_IN_A_ROW - 1):
        trust.read("queues", False, FLAT_OBSERVATION)
    assert trust.trusted("queues")
    assert data.owned("queues") == {QUEUE_ID}
    trust.read("queues", False, FLAT_OBSERVATION)
    assert trust.distrusted() == {"queues": "unreadable"}
    assert trust.malformed["queues"] == 2 * (UNREADABLE_IN_A_ROW - 1) + 1
    assert data.owned("queues") == frozenset()  # the pollers' now
    assert len(data.owned("agents")) == 3  # the other kind is untouched


async def test_a_distrusted_kind_is_not_restamped_nor_settled_by_a_reconnect_and_is_tried_again_later() -> None:
    clock, store, data = live(agents=150)
    data.activity(activity("a0001", "IDLE", T0))
    data.flush()
    taken = store.snapshot[AGENT_STATES][PartKey("push", (0, 0))].taken_at
    for _ in range(UNREADABLE_IN_A_ROW):
        data.trust.read("agents", False, {"id": "a0001"})
    await clock.advance(30)
    data.flush()
    assert store.snapshot[AGENT_STATES][PartKey("push", (0, 0))].taken_at == taken  # left to age
    data.reconciled(("agents", f"a{i:04d}") for i in range(150))  # a reconnect's poll does not restore it
    assert data.owned("agents") == frozenset()
    assert data.trust.retry_due() == []
    await clock.advance(RETRY_AFTER_SECONDS)
    assert data.trust.retry_due() == ["agents"]
    assert data.trust.trusted("agents")
    assert data.owned("agents") == frozenset()  # pending until its items are polled in
    data.reconciled(("agents", f"a{i:04d}") for i in range(150))
    assert len(data.owned("agents")) == 150


def test_a_poll_knowing_older_news_than_push_showed_is_a_disagreement_once_past_the_publishing_delay() -> None:
    pushed = AgentState("idle", "on_queue", T0, T0)
    now = T0 + 100
    late = AgentState("interacting", "on_queue", now - PUBLISH_DELAY_SECONDS - 1, T0)
    assert agent_differences(pushed, late, now) == {"routing_status": True}
    recent = AgentState("interacting", "on_queue", now - 2, T0)  # may still be on its way
    assert agent_differences(pushed, recent, now) == {}
    stale_poll = AgentState("interacting", "on_queue", T0 - 50, T0)  # push has newer news
    assert agent_differences(pushed, stale_poll, now) == {}
    assert agent_differences(pushed, pushed, now) == {}


async def test_polls_that_keep_finding_push_wrong_end_the_trust() -> None:
    clock, _, data = live(agents=100)
    for i in range(100):
        data.activity(activity(f"a{i:04d}", "IDLE", T0))
    await clock.advance(60)
    polled = {f"a{i:04d}": AgentState("interacting", "on_queue", T0 + 30, T0) for i in range(DISAGREED_AT_LEAST)}
    data.compare_agents(polled)
    data.flush()
    assert data.trust.disagreements["agents"] == 0  # counted once the channel has lived on
    await clock.advance(CONFIRM_SECONDS)
    data.flush()
    assert data.trust.disagreements["agents"] == DISAGREED_AT_LEAST
    assert data.trust.distrusted() == {"agents": "disagreeing"}


async def test_what_a_channel_that_then_died_missed_is_its_gap_not_a_disagreement() -> None:
    clock, _, data = live(agents=100)
    for i in range(100):
        data.activity(activity(f"a{i:04d}", "IDLE", T0))
    await clock.advance(60)
    data.compare_agents({f"a{i:04d}": AgentState("interacting", "on_queue", T0 + 30, T0) for i in range(20)})
    await clock.advance(CONFIRM_SECONDS / 2)
    data.set_live(0, False)
    data.mark_gap(0)  # a silent socket found dead
    await clock.advance(CONFIRM_SECONDS)
    data.flush()
    assert data.trust.compared["agents"] == 20
    assert data.trust.disagreements["agents"] == 0
    assert data.trust.trusted("agents")


async def test_a_queue_poll_that_differs_is_push_s_fault_only_if_no_event_explains_it() -> None:
    clock, store, data = live(queues=("q1", "q2"))
    for qid in ("q1", "q2"):
        data.queue_stats(waiting_event(qid, 1.0))
    await clock.advance(1)
    asked = clock.monotonic()
    await clock.advance(0.5)
    data.queues_polled({"q1": QUEUE_STATE, "q2": QUEUE_STATE}, asked_at=asked)  # both differ from push
    data.queue_stats(waiting_event("q2", 3.0))  # q2's news arrives after the poll was asked
    data.flush()
    assert data.trust.compared["queues"] == 0  # judged once the publishing delay is over
    await clock.advance(PUBLISH_DELAY_SECONDS + 1)
    data.flush()
    assert data.trust.compared["queues"] == 2
    await clock.advance(CONFIRM_SECONDS)
    data.flush()
    assert data.trust.disagreements["queues"] == 1  # q1: the service had the change and sent nothing
    assert data.trust.trusted("queues")
    assert merged(store.snapshot[QUEUE_STATES], {"q1": 1})["q1"].waiting["voice"] == 3  # the poll's answer shows


def frame(body: dict[str, Any]) -> str:
    return json.dumps(body)


@pytest.mark.parametrize(
    ("body", "ended"),
    [
        ({"result": "404", "message": "channel not found"}, "result_404"),
        ({"result": 500}, "result_error"),
        ({"result": "401"}, "result_error"),
    ],
)
def test_a_non_2xx_result_frame_ends_the_channel(body: dict[str, Any], ended: str) -> None:
    assert ended_by_result(body) == Ended(ended)


async def test_frames_are_read_for_what_they_are_and_only_known_ones_are_heard() -> None:
    clock = FakeClock(T0)
    socket = ChannelSocket(None, None, clock)  # type: ignore[arg-type]  # only its reading is tested
    heard = socket.last_heard
    await clock.advance(5)
    assert socket._read("not json at all") == Unknown("not JSON")
    assert socket._read(frame({"hello": "world", "n": 1})) == Unknown({"hello": "str", "n": "int"})
    assert socket.last_heard == heard  # an unknown frame is no sign of life
    assert socket._read(frame({"result": "200"})) is None
    assert socket.last_heard == heard + 5
    assert socket._read(frame({"result": "404"})) == Ended("result_404")
    heartbeat = {"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}}
    assert socket._read(frame(heartbeat)) is None
    closing = {"topicName": "v2.system.socket_closing", "eventBody": {"reason": "another_channel_subscribed"}}
    assert isinstance(socket._read(frame(closing)), Closing)
    event = socket._read(frame({"topicName": f"v2.analytics.queues.{QUEUE_ID}.observations", "eventBody": {}}))
    assert isinstance(event, Envelope)


def test_a_shape_names_keys_and_types_never_values_or_ids() -> None:
    body = {"group": {"queueId": QUEUE_ID}, "data": [{"metric": "oWaiting", "stats": {QUEUE_ID: 3.0}}]}
    shape = json.dumps(shape_of(body))
    assert QUEUE_ID not in shape and "oWaiting" not in shape
    assert shape_of(body) == {"group": {"queueId": "str"}, "data": [{"metric": "str", "stats": {"<id>": "float"}}]}
