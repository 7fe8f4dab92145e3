"""The store: newest data wins, parts expire by age, and a swap wakes whoever waits for one."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from exporter.clock import FakeClock
from exporter.snapshot import Owners, Part, PartKey, Parts, Store, merged
from exporter.sources.agent_states import AGENT_STATES, AgentState
from exporter.sources.queue_directory import QUEUES, Queue
from exporter.sources.queue_states import QUEUE_STATES, QueueState


def state(waiting: int = 1) -> QueueState:
    return QueueState(
        waiting={"voice": waiting},
        interacting={},
        alerting={},
        oldest_waiting_seconds={},
        available_agents=0,
        agents_by_status={},
        member_agents=1,
        joined_agents=1,
    )


def test_parts_merge_newest_first_and_only_in_scope(clock: FakeClock):
    store = Store(clock, {QUEUE_STATES: 30})
    store.set(QUEUES, {"a": Queue("a", "A", ""), "b": Queue("b", "B", "")})
    store.put(QUEUE_STATES, PartKey.polled(0), {"a": state(1), "stranger": state(9)})
    before = store.snapshot
    store.put(
        QUEUE_STATES, PartKey.polled(1), {"a": state(2), "b": state(3)}
    )  # a batch re-cut after a directory change
    now = store.snapshot
    assert merged(now[QUEUE_STATES], now[QUEUES]) == {"a": state(2), "b": state(3)}
    assert merged(before[QUEUE_STATES], before[QUEUES]) == {"a": state(1)}  # the old value never changed
    store.set(QUEUES, {"b": Queue("b", "B", "")})
    assert set(merged(store.snapshot[QUEUE_STATES], store.snapshot[QUEUES])) == {"b"}


async def test_expiry_is_by_age_per_part(clock: FakeClock):
    store = Store(clock, {QUEUE_STATES: 30})
    store.set(QUEUES, {"a": Queue("a", "A", ""), "b": Queue("b", "B", "")})
    store.put(QUEUE_STATES, PartKey.polled(0), {"a": state()})
    await clock.advance(10)
    store.put(QUEUE_STATES, PartKey.polled(1), {"b": state()})
    await clock.advance(20)
    before = store.snapshot
    assert store.expire() is False and store.snapshot is before  # nothing old: no new snapshot
    await clock.advance(0.5)
    assert store.expire() is True
    assert merged(store.snapshot[QUEUE_STATES], store.snapshot[QUEUES]) == {"b": state()}
    await clock.advance(10)
    assert store.expire() is True
    assert store.snapshot[QUEUE_STATES] == {}


async def test_wait_changed_wakes_on_a_swap(clock: FakeClock):
    store = Store(clock, {QUEUE_STATES: 30})
    waiter = asyncio.create_task(store.wait_changed(store.snapshot.version))
    await asyncio.sleep(0)
    assert not waiter.done()
    store.set(QUEUES, {"a": Queue("a", "A", "")})
    assert await asyncio.wait_for(waiter, 1) == store.snapshot.version


async def test_a_part_newer_parts_cover_whole_is_dropped_one_they_do_not_is_kept(clock):
    store = Store(clock)
    state = AgentState("idle", "on_queue", 1.0)
    listing = [PartKey("listing", (0,)), PartKey("listing", (1,))]
    polled = PartKey.polled(0)
    store.put(AGENT_STATES, listing[0], {"a": state, "b": state})
    store.put(AGENT_STATES, listing[1], {"c": state, "d": state})
    await clock.advance(1)
    store.put(AGENT_STATES, polled, {"a": state, "b": state, "c": state})  # covers listing 0 whole, listing 1 not
    store.expire()
    assert set(store.snapshot[AGENT_STATES]) == {*listing, polled}  # checked every 10 s only
    await clock.advance(10)
    store.expire()
    assert set(store.snapshot[AGENT_STATES]) == {listing[1], polled}
    assert merged(store.snapshot[AGENT_STATES], {"a": 1, "b": 1, "c": 1, "d": 1}).keys() == {"a", "b", "c", "d"}


async def test_a_shortened_stale_limit_counts_from_its_change(clock: FakeClock):
    """A poller that ran at a slow cadence and is given a fast one refreshes its parts over its next
    cycle: the parts it took at the slow pace keep their old limit until the new one has passed since
    the change, then the new limit holds. A second shortening inside that time does not extend it."""
    store = Store(clock, {QUEUE_STATES: 300})
    store.set(QUEUES, {"a": Queue("a", "A", ""), "b": Queue("b", "B", "")})
    store.put(QUEUE_STATES, PartKey.polled(0), {"a": state()})
    await clock.advance(100)
    store.put(QUEUE_STATES, PartKey.polled(1), {"b": state()})
    await clock.advance(100)  # parts 200 s and 100 s old
    store.set_stale_after(QUEUE_STATES, 60)
    assert store.expire() is False  # both were within the old limit at the change
    await clock.advance(30)
    store.set_stale_after(QUEUE_STATES, 50)  # inside the grace: it still ends 60 s after the first change
    await clock.advance(29.5)
    assert store.expire() is False
    await clock.advance(1)
    assert store.expire() is True
    assert store.snapshot[QUEUE_STATES] == {}  # both past the new limit once the grace is over
    store.put(QUEUE_STATES, PartKey.polled(0), {"a": state()})
    await clock.advance(50.5)
    assert store.expire() is True  # no grace left behind: the new limit alone


async def test_a_lengthened_stale_limit_takes_effect_at_once(clock: FakeClock):
    store = Store(clock, {QUEUE_STATES: 30})
    store.set(QUEUES, {"a": Queue("a", "A", "")})
    store.put(QUEUE_STATES, PartKey.polled(0), {"a": state()})
    await clock.advance(40)
    store.set_stale_after(QUEUE_STATES, 60)
    assert store.expire() is False
    await clock.advance(20.5)
    assert store.expire() is True


async def test_a_limit_lengthened_during_a_grace_is_not_cut_by_it(clock: FakeClock):
    store = Store(clock, {QUEUE_STATES: 100})
    store.set(QUEUES, {"a": Queue("a", "A", "")})
    store.put(QUEUE_STATES, PartKey.polled(0), {"a": state()})
    await clock.advance(90)
    store.set_stale_after(QUEUE_STATES, 30)  # a grace of the old 100 s until 30 s from now
    store.set_stale_after(QUEUE_STATES, 200)
    await clock.advance(25)  # the part is 115 s old, the grace not over
    assert store.expire() is False  # the longer limit holds, grace or not


_ITEMS = st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 3), max_size=5)
_PARTS = st.dictionaries(
    st.builds(PartKey.polled, st.integers(0, 4)), st.builds(Part, _ITEMS, st.floats(0, 10)), max_size=5
)


@given(st.lists(_PARTS, min_size=1, max_size=6))
def test_owners_show_each_item_once_from_the_part_merged_takes_it_from(steps: list[Parts[int]]) -> None:
    """The owners one instance works out step by step, keeping parts seen before (the same objects)
    where a step does not replace them, are the ones a fresh count and `merged` give."""
    owners, parts = Owners(), {}
    for step in steps:
        parts = {**{key: part for key, part in parts.items() if len(step) % 2}, **step}  # odd: old parts stay
        shown = owners(parts)
        assert list(shown) == sorted(parts)
        assert shown == Owners()(parts)
        items = [
            (item, parts[key].items[item])
            for key, only in shown.items()
            for item in (parts[key].items if only is None else only)
        ]
        assert len(items) == len(dict(items)) and dict(items) == merged(parts, dict.fromkeys("abcdefgh"))
        assert all(only is None or len(only) < len(parts[key].items) for key, only in shown.items())
