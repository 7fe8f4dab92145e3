"""The served page: rebuilt segment by segment, new queue data at once, agent data paced."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from typing import Any

from exporter.clock import FakeClock
from exporter.metrics import Telemetry, render
from exporter.page import MetricsPage, Pacing, PageBuilder
from exporter.snapshot import Part, PartKey, PollerStatus, Snapshot, Store
from exporter.sources import DEFAULT_SELECTION
from exporter.sources.agent_directory import AGENTS, Agent
from exporter.sources.agent_states import AGENT_STATES, ROUTING_CODES, STATE_PARTS_PER_RUN, AgentState, StateSegment
from exporter.sources.performance import AGENT_TALLIES, Tally
from exporter.sources.queue_directory import QUEUES, Queue
from exporter.sources.queue_states import QUEUE_STATES, QueueState
from exporter.sources.source import Selection

FIRST = PartKey.polled(0)


def ann_is(status: str) -> str:
    return f'genesys_agent_routing_status_code{{user_id="u1"}} {ROUTING_CODES[status]}'


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
    store.set(QUEUES, {"q1": Queue("q1", "Sales", "Home")})
    store.set(AGENTS, {"u1": Agent("u1", "Ann", "Home")})
    page = MetricsPage(store, Telemetry, debounce=0.01)
    task = asyncio.create_task(page.run())
    store.put(AGENT_STATES, FIRST, {"u1": AgentState("idle", "on_queue", 1.0)})
    await shown(page, ann_is("idle"))
    return store, page, task


async def test_queue_data_is_shown_at_once_while_agent_data_waits_its_turn(clock: FakeClock):
    store, page, task = await ann_idle_in_sales(clock)
    built = page.builder.built["agent_states"]
    page.pacing.built({"agent_states": 0.5}, at=time.perf_counter())  # as if the last state build took 0.5 s

    store.put(AGENT_STATES, FIRST, {"u1": AgentState("interacting", "on_queue", 2.0)})
    store.put(QUEUE_STATES, FIRST, {"q1": queue_state(7)})
    await shown(page, 'genesys_queue_waiting_interactions{queue_id="q1",queue_name="Sales",media_type="voice"} 7')
    assert page.builder.built["agent_states"] is built  # the agent segment was not compressed again
    assert ann_is("idle").encode() in page.plain
    assert page.plain.decode() == render(page.snapshot, Telemetry())  # the snapshot it says it shows
    assert page.snapshot[AGENT_STATES] is not store.snapshot[AGENT_STATES]

    await shown(page, ann_is("interacting"))  # when due, with no further change
    assert page.snapshot[AGENT_STATES] is store.snapshot[AGENT_STATES]
    task.cancel()


async def test_a_slow_tallies_build_does_not_hold_back_the_agent_states(clock: FakeClock):
    store = Store(clock)
    store.set(AGENTS, {"u1": Agent("u1", "Ann", "Home")})
    page = MetricsPage(store, Telemetry, debounce=0.01)
    task = asyncio.create_task(page.run())
    store.put(AGENT_STATES, FIRST, {"u1": AgentState("idle", "on_queue", 1.0)})
    await shown(page, ann_is("idle"))
    page.pacing.built({"agent_tallies": 20.0}, at=time.perf_counter())  # as if the tallies had taken 20 s

    store.put(AGENT_TALLIES, FIRST, {"u1": Tally(handled=3, handle_seconds=30.0)})
    store.put(AGENT_STATES, FIRST, {"u1": AgentState("interacting", "on_queue", 2.0)})
    await shown(page, ann_is("interacting"), seconds=2)  # states are due on their own spacing
    assert page.snapshot[AGENT_STATES] is store.snapshot[AGENT_STATES]
    assert page.snapshot[AGENT_TALLIES] is not store.snapshot[AGENT_TALLIES]  # the tallies wait theirs
    task.cancel()


async def test_queue_data_is_shown_before_the_agent_segments_it_was_built_with(clock: FakeClock):
    """One build moves the queues and the agent states on: the queues do not wait for the agents' segment."""
    store, page, task = await ann_idle_in_sales(clock)
    release = threading.Event()
    state_segment = page.builder.compressors["agent_states"]

    def slow_state_segment(snapshot: Snapshot, selection: Selection) -> Any:
        assert release.wait(timeout=10), "the test never let the agent states build finish"
        return state_segment(snapshot, selection)

    page.builder.compressors["agent_states"] = slow_state_segment
    store.put(AGENT_STATES, FIRST, {"u1": AgentState("interacting", "on_queue", 2.0)})
    store.put(QUEUE_STATES, FIRST, {"q1": queue_state(7)})
    await shown(page, 'genesys_queue_waiting_interactions{queue_id="q1",queue_name="Sales",media_type="voice"} 7')
    assert ann_is("idle").encode() in page.plain  # the agent states build is still held
    assert page.plain.decode() == render(page.snapshot, Telemetry())  # the snapshot it says it shows
    release.set()
    await shown(page, ann_is("interacting"))
    assert page.snapshot[AGENT_STATES] is store.snapshot[AGENT_STATES]
    task.cancel()


def held_agent_states_build(page: MetricsPage) -> tuple[threading.Event, threading.Event]:
    """The page's next agent states build, held until the test sets `release`; `started` once it began."""
    release, started = threading.Event(), threading.Event()
    state_segment = page.builder.compressors["agent_states"]

    def slow_state_segment(snapshot: Snapshot, selection: Selection) -> Any:
        started.set()
        assert release.wait(timeout=10), "the test never let the agent states build finish"
        return state_segment(snapshot, selection)

    page.builder.compressors["agent_states"] = slow_state_segment
    return started, release


async def test_queue_data_is_shown_while_an_agent_build_is_in_progress(clock: FakeClock):
    """The agent segments build in a lane of their own: a queue change that lands while one of them
    is being built (seconds, in a large org) is shown without waiting for it."""
    store, page, task = await ann_idle_in_sales(clock)
    started, release = held_agent_states_build(page)
    store.put(AGENT_STATES, FIRST, {"u1": AgentState("interacting", "on_queue", 2.0)})
    assert await asyncio.to_thread(started.wait, 5), "the agent states build never started"
    store.put(QUEUE_STATES, FIRST, {"q1": queue_state(9)})  # news after the agent build began
    await shown(page, 'genesys_queue_waiting_interactions{queue_id="q1",queue_name="Sales",media_type="voice"} 9')
    assert ann_is("idle").encode() in page.plain
    assert page.plain.decode() == render(page.snapshot, Telemetry())
    release.set()
    await shown(page, ann_is("interacting"))
    await asyncio.sleep(0.1)  # the urgent lane counts the parts again once the agents are shown
    assert page.plain.decode() == render(page.snapshot, Telemetry())
    assert page.current
    task.cancel()


async def test_the_page_is_current_only_once_its_own_part_counts_the_agent_segments_shown(clock: FakeClock):
    """An urgent build that read the store before the paced lane showed new agent segments shows the
    store's data with the exporter's own figures about the segments before: the page is not current
    (two scrapes could differ) until the urgent lane has counted them again."""
    store, page, task = await ann_idle_in_sales(clock)
    gate = threading.Semaphore(0)
    build = page._build

    def held(*args: Any) -> Any:
        if args[2] == "urgent":
            assert gate.acquire(timeout=5), "never let through"
        return build(*args)

    page._build = held  # type: ignore[method-assign]
    page.pacing.built({"agent_states": 0.1}, at=time.perf_counter())  # the next state build waits 0.3 s
    store.put(AGENT_STATES, FIRST, {"u1": AgentState("interacting", "on_queue", 2.0)})
    await shown(page, ann_is("interacting"))  # the paced lane shows while the urgent build waits
    gate.release()  # the urgent build that read the store before
    deadline = time.perf_counter() + 5
    while page.snapshot is not store.snapshot:
        assert time.perf_counter() < deadline
        await asyncio.sleep(0.01)
    assert not page.current
    gate.release()  # the urgent lane's count of the agent segments shown
    while not page.current:
        assert time.perf_counter() < deadline
        await asyncio.sleep(0.01)
    assert page.plain.decode() == render(page.snapshot, Telemetry())
    task.cancel()


async def test_the_page_is_ready_only_once_the_agent_segments_it_shows_are_of_every_poller(clock: FakeClock):
    """The queues' lane may show every poller's first success while the agents' lane is still building
    the agents: /readyz waits for the agents to be on /metrics."""
    store, page, task = await ann_idle_in_sales(clock)
    started, release = held_agent_states_build(page)
    store.put(AGENT_STATES, FIRST, {"u1": AgentState("interacting", "on_queue", 2.0)})
    store.set_status("agents", PollerStatus(interval=15.0, up=True, last_success=1.0))
    assert await asyncio.to_thread(started.wait, 5), "the agent states build never started"
    store.put(QUEUE_STATES, FIRST, {"q1": queue_state(9)})
    await shown(page, 'genesys_queue_waiting_interactions{queue_id="q1",queue_name="Sales",media_type="voice"} 9')
    assert page.snapshot.pollers["agents"].last_success == 1.0
    assert not page.ready  # the agents' first success is not on the page yet
    release.set()
    await shown(page, ann_is("interacting"))
    assert page.ready
    task.cancel()


def test_a_new_state_part_recompresses_only_its_run_of_parts(clock: FakeClock):
    agents = {f"u{i:03}": Agent(f"u{i:03}", f"Agent {i}", "Home") for i in range(600)}
    store = Store(clock)
    store.set(AGENTS, agents)
    ids = sorted(agents)
    for part in range(60):  # 10 agents a part: three runs of parts
        batch = {uid: AgentState("idle", "on_queue", 1.0) for uid in ids[part * 10 :][:10]}
        store.put(AGENT_STATES, PartKey.polled(part), batch)
    builder = PageBuilder()
    segment = builder.compressors["agent_states"]
    assert isinstance(segment, StateSegment)
    first, _, _ = builder.build(store.snapshot, Telemetry())
    assert gzip.decompress(b"".join(first)).decode() == render(store.snapshot, Telemetry())
    runs = dict(segment.runs.kept)

    batch = {uid: AgentState("interacting", "on_queue", 2.0) for uid in ids[310:320]}
    store.put(AGENT_STATES, PartKey.polled(31), batch)
    second, _, rebuilt = builder.build(store.snapshot, Telemetry())
    assert gzip.decompress(b"".join(second)).decode() == render(store.snapshot, Telemetry())
    assert rebuilt == {"agent_states", "team_states", "self"}
    changed = {key for key, run in segment.runs.kept.items() if runs[key] is not run}
    # Parts go in key order: part 31 is in the run of parts 25 to 49.
    assert {first_part for _, _, first_part in changed} == {25}


def test_compressed_runs_of_parts_that_are_gone_are_not_kept() -> None:
    agents = {f"u{i}": Agent(f"u{i}", f"Agent {i}", "") for i in range(200)}
    state = AgentState("idle", "on_queue", 1.0)

    def snapshot(parts: int) -> Snapshot:
        per = len(agents) // parts
        ids = sorted(agents)
        states = {
            PartKey.polled(n): Part(dict.fromkeys(ids[n * per : (n + 1) * per], state), float(n)) for n in range(parts)
        }
        return Snapshot().with_data({AGENTS: agents, AGENT_STATES: states})

    segment = StateSegment()
    many, few = snapshot(4 * STATE_PARTS_PER_RUN), snapshot(STATE_PARTS_PER_RUN)
    segment(many, DEFAULT_SELECTION)
    assert len(segment.runs.kept) == 4  # one state family by default (the routing status code), four runs
    segment(few, DEFAULT_SELECTION)
    assert len(segment.runs.kept) == 1  # the runs past the end went, and their lines with them


def test_pacing_holds_what_a_paced_segment_reads_until_every_segment_reading_it_is_due() -> None:
    pacing = Pacing({"states": (AGENTS, AGENT_STATES), "tallies": (AGENTS, AGENT_TALLIES)})
    assert pacing.keys == (AGENTS, AGENT_STATES, AGENT_TALLIES)
    assert pacing.held(now=0.0) == []  # nothing built yet: nothing waits
    pacing.built({"states": 0.5, "tallies": 2.0, "queue_states": 9.0}, at=10.0)
    assert pacing.due == {"states": 11.5, "tallies": 16.0}  # three build times each; unpaced segments ignored
    assert pacing.held(now=12.0) == [AGENTS, AGENT_TALLIES]  # the agent list is read by the tallies too
    assert pacing.next_due([AGENT_STATES]) == 11.5
    assert pacing.next_due([AGENTS, AGENT_STATES]) == 11.5
    assert pacing.next_due([AGENTS]) == 16.0
    assert pacing.next_due([]) is None
    assert pacing.held(now=16.0) == []


def test_the_quickest_segment_whose_data_moved_is_built_first() -> None:
    pacing = Pacing({"states": (AGENTS, AGENT_STATES), "tallies": (AGENTS, AGENT_TALLIES)})
    pacing.built({"states": 0.2, "tallies": 1.0}, at=0.0)
    assert pacing.later([AGENT_STATES, AGENT_TALLIES], now=5.0) == [AGENT_TALLIES]  # the states go alone
    assert pacing.later([AGENT_TALLIES], now=5.0) == []  # and the tallies next
    # A new agent list rebuilds both: the tallies' news goes with it rather than cost a second build.
    assert pacing.later([AGENTS, AGENT_STATES, AGENT_TALLIES], now=5.0) == []
    # The states not due: nothing of theirs moves, and the tallies go now.
    pacing.built({"states": 0.2}, at=4.9)
    assert pacing.later([AGENT_STATES, AGENT_TALLIES], now=5.0) == []
    assert pacing.held(now=5.0) == [AGENTS, AGENT_STATES]
