"""The served page: rebuilt segment by segment, new queue data at once, agent data paced."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from typing import Any

from exporter import page as page_module
from exporter.clock import FakeClock
from exporter.metrics import Telemetry, render
from exporter.page import MetricsPage, PageBuilder
from exporter.snapshot import Agent, AgentState, Queue, QueueState, Store, Tally


def ann_is(status: str) -> str:
    return f'genesys_agent_routing_status{{user_id="u1",agent_name="Ann",routing_status="{status}"}} 1'


def queue_state(waiting: int) -> QueueState:
    return QueueState({"voice": waiting}, {}, {}, {}, 1, {"idle": 1}, 2, 1)


async def shown(page: MetricsPage, condition: str, seconds: float = 5.0) -> None:
    deadline = time.perf_counter() + seconds
    while condition.encode() not in page.plain:
        assert time.perf_counter() < deadline, f"the page never showed {condition!r}"
        await asyncio.sleep(0.01)


async def ann_idle_in_sales(clock: FakeClock) -> tuple[Store, MetricsPage, asyncio.Task[None]]:
    """A running page showing one queue and Ann idle."""
    store = Store(clock)
    store.set_queues({"q1": Queue("q1", "Sales", "Home")})
    store.set_agents({"u1": Agent("u1", "Ann", "Home")})
    page = MetricsPage(store, Telemetry, debounce=0.01)
    task = asyncio.create_task(page.run())
    store.put("agent_states", 0, {"u1": AgentState("idle", "on_queue", 1.0)})
    await shown(page, ann_is("idle"))
    return store, page, task


async def test_queue_data_is_shown_at_once_while_agent_data_waits_its_turn(clock: FakeClock):
    store, page, task = await ann_idle_in_sales(clock)
    built = page._builder.built["agent_states"]
    page._due["agent_states"] = time.perf_counter() + 1.5  # as if the last state build took 0.5 s

    store.put("agent_states", 0, {"u1": AgentState("interacting", "on_queue", 2.0)})
    store.put("queue_states", 0, {"q1": queue_state(7)})
    await shown(page, 'genesys_queue_waiting_interactions{queue_id="q1",queue_name="Sales",media_type="voice"} 7')
    assert page._builder.built["agent_states"] is built  # the agent segment was not compressed again
    assert ann_is("idle").encode() in page.plain
    assert page.plain.decode() == render(page.snapshot, Telemetry())  # the snapshot it says it shows
    assert page.snapshot.agent_states is not store.snapshot.agent_states

    await shown(page, ann_is("interacting"))  # when due, with no further change
    assert page.snapshot.agent_states is store.snapshot.agent_states
    task.cancel()


async def test_a_slow_tallies_build_does_not_hold_back_the_agent_states(clock: FakeClock):
    store = Store(clock)
    store.set_agents({"u1": Agent("u1", "Ann", "Home")})
    page = MetricsPage(store, Telemetry, debounce=0.01)
    task = asyncio.create_task(page.run())
    store.put("agent_states", 0, {"u1": AgentState("idle", "on_queue", 1.0)})
    await shown(page, ann_is("idle"))
    page._due["agent_tallies"] = time.perf_counter() + 60  # as if the tallies had taken 20 s

    store.put("agent_tallies", 0, {"u1": Tally(handled=3, handle_seconds=30.0)})
    store.put("agent_states", 0, {"u1": AgentState("interacting", "on_queue", 2.0)})
    await shown(page, ann_is("interacting"), seconds=2)  # states are due on their own spacing
    assert page.snapshot.agent_states is store.snapshot.agent_states
    assert page.snapshot.agent_tallies is not store.snapshot.agent_tallies  # the tallies wait theirs
    task.cancel()


async def test_queue_data_is_shown_before_the_agent_segments_it_was_built_with(clock: FakeClock, monkeypatch):
    """One build moves the queues and the agent states on: the queues do not wait for the agents' segment."""
    store, page, task = await ann_idle_in_sales(clock)
    release = threading.Event()
    state_segment = page_module.agent_state_segment

    def slow_state_segment(*args: Any) -> Any:
        assert release.wait(timeout=10), "the test never let the agent states build finish"
        return state_segment(*args)

    monkeypatch.setattr(page_module, "agent_state_segment", slow_state_segment)
    store.put("agent_states", 0, {"u1": AgentState("interacting", "on_queue", 2.0)})
    store.put("queue_states", 0, {"q1": queue_state(7)})
    await shown(page, 'genesys_queue_waiting_interactions{queue_id="q1",queue_name="Sales",media_type="voice"} 7')
    assert ann_is("idle").encode() in page.plain  # the agent states build is still held
    assert page.plain.decode() == render(page.snapshot, Telemetry())  # the snapshot it says it shows
    release.set()
    await shown(page, ann_is("interacting"))
    assert page.snapshot.agent_states is store.snapshot.agent_states
    task.cancel()


def test_a_new_state_part_recompresses_only_its_run_of_parts(clock: FakeClock):
    agents = {f"u{i:03}": Agent(f"u{i:03}", f"Agent {i}", "Home") for i in range(600)}
    store = Store(clock)
    store.set_agents(agents)
    ids = sorted(agents)
    for part in range(60):  # 10 agents a part: three runs of parts
        store.put("agent_states", part, {uid: AgentState("idle", "on_queue", 1.0) for uid in ids[part * 10 :][:10]})
    builder = PageBuilder()
    first, _, _ = builder.build(store.snapshot, Telemetry())
    assert gzip.decompress(b"".join(first)).decode() == render(store.snapshot, Telemetry())
    runs = dict(builder.agents.compressed)

    store.put("agent_states", 31, {uid: AgentState("interacting", "on_queue", 2.0) for uid in ids[310:320]})
    second, _, rebuilt = builder.build(store.snapshot, Telemetry())
    assert gzip.decompress(b"".join(second)).decode() == render(store.snapshot, Telemetry())
    assert rebuilt == {"agent_states", "self"}
    changed = {key for key, run in builder.agents.compressed.items() if runs[key] is not run}
    # Parts go in key order as text ("0", "1", "10", ...): part 31 is the 26th, in the run from the 25th.
    assert {first_part for _, first_part in changed} == {25}


def test_compressed_runs_of_parts_that_are_gone_are_not_kept() -> None:
    from exporter.page import STATE_PARTS_PER_RUN, AgentCache, agent_state_segment
    from exporter.snapshot import Part, Snapshot

    agents = {f"u{i}": Agent(f"u{i}", f"Agent {i}", "") for i in range(200)}
    state = AgentState("idle", "on_queue", 1.0)

    def snapshot(parts: int) -> Snapshot:
        per = len(agents) // parts
        ids = sorted(agents)
        states = {n: Part(dict.fromkeys(ids[n * per : (n + 1) * per], state), float(n)) for n in range(parts)}
        return Snapshot(agents=agents, agent_states=states)

    cache = AgentCache()
    many, few = snapshot(4 * STATE_PARTS_PER_RUN), snapshot(STATE_PARTS_PER_RUN)
    cache.blocks_of(many.agents)
    agent_state_segment(many, cache)
    assert len(cache.compressed) == 3 * 4  # three families, four runs each
    agent_state_segment(few, cache)
    assert len(cache.compressed) == 3  # one run each: the runs past the end went, and their lines with them
