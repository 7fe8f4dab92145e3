"""The store keeps last good data until it is too old; the scheduler keeps cadence through failures."""

from __future__ import annotations

import asyncio

import pytest

from exporter.clock import FakeClock
from exporter.scheduling.scheduler import Job, Scheduler
from exporter.snapshot import AgentState, Queue, QueueState, Store, merged


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
    store = Store(clock, {"queue_states": 30})
    store.set_queues({"a": Queue("a", "A", ""), "b": Queue("b", "B", "")})
    store.put("queue_states", 0, {"a": state(1), "stranger": state(9)})
    before = store.snapshot
    store.put("queue_states", 1, {"a": state(2), "b": state(3)})  # a batch re-cut after a directory change
    now = store.snapshot
    assert merged(now.queue_states, now.queues) == {"a": state(2), "b": state(3)}
    assert merged(before.queue_states, before.queues) == {"a": state(1)}  # the old value never changed
    store.set_queues({"b": Queue("b", "B", "")})
    assert set(merged(store.snapshot.queue_states, store.snapshot.queues)) == {"b"}


async def test_expiry_is_by_age_per_part(clock: FakeClock):
    store = Store(clock, {"queue_states": 30})
    store.set_queues({"a": Queue("a", "A", ""), "b": Queue("b", "B", "")})
    store.put("queue_states", 0, {"a": state()})
    await clock.advance(10)
    store.put("queue_states", 1, {"b": state()})
    await clock.advance(20)
    before = store.snapshot
    assert store.expire() is False and store.snapshot is before  # nothing old: no new snapshot
    await clock.advance(0.5)
    assert store.expire() is True
    assert merged(store.snapshot.queue_states, store.snapshot.queues) == {"b": state()}
    await clock.advance(10)
    assert store.expire() is True
    assert store.snapshot.queue_states == {}


async def test_wait_changed_wakes_on_a_swap(clock: FakeClock):
    store = Store(clock, {"queue_states": 30})
    waiter = asyncio.create_task(store.wait_changed(store.snapshot.version))
    await asyncio.sleep(0)
    assert not waiter.done()
    store.set_queues({})
    assert await asyncio.wait_for(waiter, 1) == store.snapshot.version


async def test_failures_keep_cadence_and_status_tells_the_truth(clock: FakeClock):
    store = Store(clock, {"queue_states": 30})
    calls: list[float] = []
    fail = {"now": False}

    async def work() -> None:
        calls.append(clock.monotonic())
        await clock.sleep(2)  # a cycle takes 2 s
        if fail["now"]:
            raise RuntimeError("boom")

    scheduler = Scheduler(store, clock, [Job("queues", 10, work)], jitter=0)
    task = asyncio.create_task(scheduler.run())
    await clock.advance(25)
    assert calls == [0, 10, 20]  # on the grid, not drifting by the 2 s a cycle takes
    status = store.status("queues")
    assert status is not None and status.up is True and status.last_duration == 2
    assert status.last_success == clock.time() - 3
    fail["now"] = True
    await clock.advance(10)
    status = store.status("queues")
    assert status is not None
    assert (status.up, status.consecutive_failures, status.last_error) == (False, 1, "boom")
    assert status.last_success == clock.time() - 13  # still the last good cycle
    assert scheduler.ready
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_job_waits_for_its_dependency(clock: FakeClock):
    store = Store(clock, {"queue_states": 30})
    order: list[str] = []
    directory_ok = {"now": False}

    async def directory() -> None:
        order.append("directory")
        if not directory_ok["now"]:
            raise RuntimeError("403")

    async def queues() -> None:
        order.append("queues")

    scheduler = Scheduler(
        store, clock, [Job("directory", 5, directory), Job("queues", 1, queues, after="directory")], jitter=0
    )
    task = asyncio.create_task(scheduler.run())
    await clock.advance(3)
    assert order == ["directory"] and not scheduler.ready
    directory_ok["now"] = True
    await clock.advance(2.5)
    assert order[:3] == ["directory", "directory", "queues"]
    assert scheduler.ready
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_part_newer_parts_cover_whole_is_dropped_one_they_do_not_is_kept(clock):
    store = Store(clock)
    state = AgentState("idle", "on_queue", 1.0)
    store.put("agent_states", ("listing", 0), {"a": state, "b": state})
    store.put("agent_states", ("listing", 1), {"c": state, "d": state})
    await clock.advance(1)
    store.put("agent_states", 0, {"a": state, "b": state, "c": state})  # covers listing 0 whole, listing 1 not
    store.expire()
    assert set(store.snapshot.agent_states) == {("listing", 0), ("listing", 1), 0}  # checked every 10 s only
    await clock.advance(10)
    store.expire()
    assert set(store.snapshot.agent_states) == {("listing", 1), 0}
    assert merged(store.snapshot.agent_states, {"a": 1, "b": 1, "c": 1, "d": 1}).keys() == {"a", "b", "c", "d"}
