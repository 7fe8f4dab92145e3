"""Pushed data: newer reports win field by field, events merge into queues, and only live, settled
items reach the store (in 100-item parts), re-stamped while their channel lives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.clock import FakeClock
from exporter.genesys.notifications import AgentActivity, QueueStats
from exporter.push.state import PushedData, newer
from exporter.snapshot import PartKey, Store, merged
from exporter.sources.agent_states import AGENT_STATES, AgentState
from exporter.sources.queue_states import QUEUE_STATES, QueueDraft, QueueState

T0 = 1_778_752_800.0


def iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def activity(uid: str, status: str, at: float, presence: str = "On Queue", presence_at: float = T0) -> AgentActivity:
    return AgentActivity.model_validate(
        {
            "id": uid,
            "routingStatus": {"status": status, "startTime": iso(at)},
            "presence": {
                "presenceDefinition": {"id": "p", "systemPresence": presence},
                "modifiedDate": iso(presence_at),
            },
            "activeQueueIds": [],
        }
    )


def test_an_older_report_never_overwrites_a_newer_one_field_by_field() -> None:
    fresh = AgentState("interacting", "on_queue", T0 + 10, T0 + 5)
    old_routing_new_presence = AgentState("idle", "break", T0 + 1, T0 + 20)
    got = newer(fresh, old_routing_new_presence)
    assert got == AgentState("interacting", "break", T0 + 10, T0 + 20)
    assert newer(got, got) == got  # a duplicate is harmless


@settings(max_examples=200, deadline=None)
@given(st.permutations(range(8)), st.integers(0, 7))
def test_any_order_and_any_duplicates_end_on_the_newest(order: list[int], duplicate: int) -> None:
    reports = [AgentState(f"s{i}", f"p{i}", T0 + i, T0 + i) for i in range(8)]
    state = None
    for i in [*order, duplicate]:
        state = newer(state, reports[i])
    assert state == reports[7]


def setup(agents: int = 250) -> tuple[FakeClock, Store, PushedData]:
    clock = FakeClock(T0)
    store = Store(clock)
    data = PushedData(store, clock, restamp_every=10.0)
    data.assign(0, [("agents", f"a{i:04d}") for i in range(agents)] + [("queues", "q1")])
    return clock, store, data


def test_nothing_reaches_the_store_before_the_slot_is_live_and_its_items_settled() -> None:
    _, store, data = setup()
    data.activity(activity("a0001", "IDLE", T0))
    data.flush()
    assert store.snapshot[AGENT_STATES] == {}
    data.set_live(0, True)
    data.flush()
    assert store.snapshot[AGENT_STATES] == {}  # still pending: what happened before the subscription is unknown
    assert data.owned("agents") == frozenset()
    data.reconciled(("agents", f"a{i:04d}") for i in range(250))
    data.flush()
    assert merged(store.snapshot[AGENT_STATES], {"a0001": 1})["a0001"].routing_status == "idle"
    assert len(data.owned("agents")) == 250
    assert sorted(store.snapshot[AGENT_STATES]) == [PartKey("push", (0, 0))]  # one 100-agent part: only it has data


def test_events_land_in_their_100_agent_part_in_one_swap() -> None:
    _, store, data = setup()
    data.set_live(0, True)
    data.reconciled(("agents", f"a{i:04d}") for i in range(250))
    version = store.snapshot.version
    for i in (5, 150, 249):
        data.activity(activity(f"a{i:04d}", "INTERACTING", T0 + 1))
    data.flush()
    assert store.snapshot.version == version + 1
    assert sorted(store.snapshot[AGENT_STATES]) == [
        PartKey("push", (0, 0)),
        PartKey("push", (0, 1)),
        PartKey("push", (0, 2)),
    ]


async def test_a_dead_slot_keeps_its_last_data_unstamped_and_its_items_go_back_to_the_pollers() -> None:
    clock, store, data = setup()
    data.set_live(0, True)
    data.reconciled(("agents", f"a{i:04d}") for i in range(250))
    data.activity(activity("a0001", "IDLE", T0))
    data.flush()
    taken = store.snapshot[AGENT_STATES][PartKey("push", (0, 0))].taken_at
    data.set_live(0, False)
    data.mark_gap(0)
    assert data.owned("agents") == frozenset()
    await clock.advance(30)  # past the re-stamp interval
    data.activity(activity("a0001", "INTERACTING", T0 + 20))
    data.flush()
    assert store.snapshot[AGENT_STATES][PartKey("push", (0, 0))].taken_at == taken  # not re-stamped, not changed


async def test_a_live_slot_is_restamped_without_new_items() -> None:
    clock, store, data = setup()
    data.set_live(0, True)
    data.reconciled(("agents", f"a{i:04d}") for i in range(250))
    data.activity(activity("a0001", "IDLE", T0))
    data.flush()
    part = store.snapshot[AGENT_STATES][PartKey("push", (0, 0))]
    await clock.advance(11)
    data.flush()
    again = store.snapshot[AGENT_STATES][PartKey("push", (0, 0))]
    assert again.taken_at > part.taken_at
    assert again.items is part.items


QUEUE_STATE = QueueState(
    waiting={"voice": 3, "chat": 1},
    interacting={"voice": 2, "chat": 0},
    alerting={"voice": 0, "chat": 0},
    oldest_waiting_seconds={"voice": 40.0},
    available_agents=0,
    agents_by_status={"idle": 0, "interacting": 2},
    member_agents=5,
    joined_agents=4,
)


def waiting_event(queue: str, count: float) -> QueueStats:
    return QueueStats.model_validate(
        {
            "group": {"queueId": queue, "mediaType": "voice"},
            "data": [{"interval": "x/y", "metrics": [{"metric": "oWaiting", "stats": {"count": count}}]}],
        }
    )


async def test_a_poll_asked_before_a_queue_event_does_not_overwrite_it() -> None:
    clock, store, data = setup(0)
    data.set_live(0, True)
    asked = clock.monotonic()
    await clock.advance(0.5)
    data.queue_stats(waiting_event("q1", 7.0))  # news while the poll was on its way
    data.queues_polled({"q1": QUEUE_STATE}, asked_at=asked)  # the poll's answer: 3 waiting, older
    data.reconciled([("queues", "q1")])
    data.flush()
    assert merged(store.snapshot[QUEUE_STATES], {"q1": 1})["q1"].waiting["voice"] == 7
    await clock.advance(0.5)
    data.queues_polled({"q1": QUEUE_STATE}, asked_at=clock.monotonic())  # asked after: it is the news
    data.flush()
    assert merged(store.snapshot[QUEUE_STATES], {"q1": 1})["q1"].waiting["voice"] == 3


def test_a_queue_event_merges_what_it_carries_and_keeps_the_rest() -> None:
    _, store, data = setup(0)
    data.set_live(0, True)
    data.queues_polled({"q1": QUEUE_STATE}, asked_at=0.0)
    data.reconciled([("queues", "q1")])
    data.queue_stats(waiting_event("q1", 5.0))
    data.queue_stats(
        QueueStats.model_validate(
            {
                "group": {"queueId": "q1"},
                "data": [{"metrics": [{"metric": "oOnQueueUsers", "qualifier": "IDLE", "stats": {"count": 1.0}}]}],
            }
        )
    )
    data.flush()
    state = merged(store.snapshot[QUEUE_STATES], {"q1": 1})["q1"]
    assert state.waiting == {"voice": 5, "chat": 1}
    assert state.interacting == {"voice": 2, "chat": 0}
    assert state.available_agents == 1
    assert state.member_agents == 5
    assert 39.0 <= state.oldest_waiting_seconds["voice"] <= 41.0


def test_the_oldest_wait_ages_between_events() -> None:
    draft = QueueDraft(waiting={"voice": 1}, oldest_since={"voice": T0})
    assert draft.freeze(T0 + 90).oldest_waiting_seconds == {"voice": 90.0}


def test_two_events_at_one_instant_that_disagree_make_the_agent_doubtful() -> None:
    _, _, data = setup()
    data.activity(activity("a0001", "IDLE", T0 + 5))
    data.activity(activity("a0001", "IDLE", T0 + 5))  # a duplicate: no doubt
    assert data.doubtful == set()
    data.activity(activity("a0001", "INTERACTING", T0 + 5))  # same startTime, other news: which came last?
    assert data.doubtful == {"a0001"}
    data.activity(activity("a0002", "IDLE", T0 + 5))
    data.activity(activity("a0002", "INTERACTING", T0 + 6))  # ordered by time: no doubt
    assert data.doubtful == {"a0001"}
