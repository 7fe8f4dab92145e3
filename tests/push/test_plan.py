"""The topic plan: capacity is a budget, queues first, and a plan moves as little as it can."""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.genesys.notifications import TOPIC_KINDS
from exporter.push.plan import TopicPlan, owner, plan_topics, usable_channels


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def test_queues_first_then_agents_and_the_rest_polled() -> None:
    plan = plan_topics({"queues": ids("q", 15), "agents": ids("a", 40)}, channels=2, per_channel=20)
    assert plan.pushed("queues") == frozenset(ids("q", 15))
    assert len(plan.pushed("agents")) == 25
    assert plan.polled["agents"] == frozenset(ids("a", 40)) - plan.pushed("agents")
    assert plan.polled["queues"] == frozenset()
    assert [len(slot) for slot in plan.channels] == [20, 20]


def test_one_channel_of_the_twenty_is_kept_spare_for_handovers() -> None:
    assert usable_channels(20) == 19
    assert usable_channels(50) == 19
    assert usable_channels(2) == 1


def test_a_new_agent_changes_one_channel_not_all() -> None:
    agents = ids("a", 95)
    before = plan_topics({"queues": ids("q", 5), "agents": agents}, channels=5, per_channel=25)
    after = plan_topics(
        {"queues": ids("q", 5), "agents": ["a00000x", *agents]}, channels=5, per_channel=25, previous=before
    )
    changed = [i for i, (a, b) in enumerate(itertools.zip_longest(before.channels, after.channels)) if a != b]
    assert len(changed) == 1
    assert ("agents", "a00000x") in after.channels[changed[0]]


def test_a_new_queue_displaces_an_agent_when_full() -> None:
    before = plan_topics({"queues": ids("q", 2), "agents": ids("a", 8)}, channels=1, per_channel=10)
    after = plan_topics({"queues": ids("q", 3), "agents": ids("a", 8)}, channels=1, per_channel=10, previous=before)
    assert after.pushed("queues") == frozenset(ids("q", 3))
    assert len(after.pushed("agents")) == 7
    assert len(after.polled["agents"]) == 1


def test_rejected_items_are_never_planned_and_stay_polled() -> None:
    plan = plan_topics(
        {"queues": ids("q", 3), "agents": ids("a", 3)},
        channels=1,
        per_channel=10,
        refused={("queues", "q00001"): {0}},
    )
    assert "q00001" not in plan.pushed("queues")
    assert "q00001" in plan.polled["queues"]


def test_a_topic_one_client_was_refused_moves_to_another_clients_channel() -> None:
    scope = {"queues": ids("q", 4), "agents": ids("a", 6)}
    first = plan_topics(scope, channels=3, per_channel=4, clients=3)
    moved = first.channels[1][0]  # on client 1's channel
    refused = {moved: {1}, ("agents", "a00005"): {0, 1, 2}}  # the second refused by every client
    second = plan_topics(scope, channels=3, per_channel=4, clients=3, previous=first, refused=refused)
    assert moved not in second.channels[1] and moved[1] in second.pushed(moved[0])
    assert "a00005" in second.polled["agents"] and "a00005" not in second.pushed("agents")
    # Everything else stays where it was.
    for index, slot in enumerate(first.channels):
        assert [i for i in slot if i not in refused] == [i for i in second.channels[index] if i in slot]


@settings(max_examples=200, deadline=None)
@given(
    queues=st.integers(0, 60),
    agents=st.integers(0, 200),
    channels=st.integers(1, 6),
    per_channel=st.integers(1, 40),
    removed=st.sets(st.integers(0, 199), max_size=30),
    added=st.integers(0, 30),
)
def test_every_item_pushed_or_polled_once_and_no_channel_over_its_limit(
    queues: int, agents: int, channels: int, per_channel: int, removed: set[int], added: int
) -> None:
    scope = {"queues": ids("q", queues), "agents": ids("a", agents)}
    first = plan_topics(scope, channels=channels, per_channel=per_channel)
    second_agents = [a for i, a in enumerate(scope["agents"]) if i not in removed] + ids("n", added)
    second = plan_topics(
        {"queues": scope["queues"], "agents": second_agents}, channels=channels, per_channel=per_channel, previous=first
    )
    for plan, agent_ids in ((first, scope["agents"]), (second, second_agents)):
        assert len(plan.channels) <= channels
        assert all(len(slot) <= per_channel for slot in plan.channels)
        items = [item for slot in plan.channels for item in slot]
        assert len(items) == len(set(items))
        for kind, every in (("queues", scope["queues"]), ("agents", agent_ids)):
            assert plan.pushed(kind) | plan.polled[kind] == frozenset(every)
            assert not plan.pushed(kind) & plan.polled[kind]
        # Queues first: an agent is pushed only when every queue is.
        if plan.pushed("agents"):
            assert plan.pushed("queues") == frozenset(scope["queues"])
    # Stability: an agent pushed in both plans stays on its channel.
    where = {item: i for i, slot in enumerate(first.channels) for item in slot}
    for i, slot in enumerate(second.channels):
        for item in slot:
            if item in where and item[0] == "queues":
                assert where[item] == i


def test_empty_scope_plans_nothing() -> None:
    assert plan_topics({}, channels=3) == TopicPlan(channels=(), polled={"queues": frozenset(), "agents": frozenset()})


def test_three_clients_push_a_50000_seat_org_whole_none_over_its_limits() -> None:
    clients = ("a", "b", "c")
    plan = plan_topics(
        {"queues": ids("q", 2_000), "agents": ids("a", 50_000)}, channels=usable_channels() * len(clients)
    )
    assert plan.pushed("queues") == frozenset(ids("q", 2_000))
    assert plan.pushed("agents") == frozenset(ids("a", 50_000))
    assert not plan.polled["agents"] and not plan.polled["queues"]
    assert all(len(slot) <= 1_000 for slot in plan.channels)
    per_client = Counter(owner(index, clients) for index, slot in enumerate(plan.channels) if slot)
    assert set(per_client) == set(clients)
    assert max(per_client.values()) <= usable_channels()  # 52 channels: 18, 17, 17 of each client's 19


@given(
    queues=st.integers(0, 3_000),
    agents=st.integers(0, 70_000),
    clients=st.integers(1, 4),
)
@settings(max_examples=25, deadline=None)
def test_over_several_clients_no_channel_over_1000_topics_and_no_client_over_19_channels(
    queues: int, agents: int, clients: int
) -> None:
    labels = tuple(f"c{i}" for i in range(clients))
    plan = plan_topics({"queues": ids("q", queues), "agents": ids("a", agents)}, channels=19 * clients)
    assert all(len(slot) <= 1_000 for slot in plan.channels)
    per_client = Counter(owner(index, labels) for index in range(len(plan.channels)))
    assert all(n <= 19 for n in per_client.values())
    assert len(plan.pushed("queues")) + len(plan.pushed("agents")) == min(queues + agents, 19_000 * clients)
    assert max(per_client.values(), default=0) - min(per_client.values(), default=0) <= 1  # spread evenly


@given(
    agents=st.integers(0, 300),
    clients=st.integers(1, 4),
    per_channel=st.integers(1, 40),
    refusals=st.dictionaries(st.integers(0, 299), st.sets(st.integers(0, 3), min_size=1), max_size=60),
)
@settings(max_examples=200, deadline=None)
def test_no_topic_lands_on_a_client_that_refused_it_and_none_refused_by_all_is_planned(
    agents: int, clients: int, per_channel: int, refusals: dict[int, set[int]]
) -> None:
    scope = {"queues": ids("q", 5), "agents": ids("a", agents)}
    refused = {("agents", scope["agents"][i]): {c % clients for c in who} for i, who in refusals.items() if i < agents}
    first = plan_topics(scope, channels=3 * clients, per_channel=per_channel, clients=clients)
    plan = plan_topics(
        scope, channels=3 * clients, per_channel=per_channel, clients=clients, previous=first, refused=refused
    )
    for index, slot in enumerate(plan.channels):
        assert len(slot) <= per_channel
        assert not any(index % clients in refused.get(item, ()) for item in slot)
    for (kind, item), who in refused.items():
        if len(who) == clients:
            assert item in plan.polled[kind]
    for kind in TOPIC_KINDS:
        assert plan.pushed(kind) | plan.polled[kind] == frozenset(scope[kind])
        assert not plan.pushed(kind) & plan.polled[kind]
