"""Topic capacity is a budget too: which items ride which channel, and which are left to polling.

An OAuth client holds 20 channels of 1,000 topics. One channel is kept spare, so that a channel the
service is about to close (maintenance, the 24 h renewal) can be replaced before it goes without a
21st evicting one of our own. Queues go first: 2,000 queue topics relieve 20 observation requests
every 8 s, 150 a minute, and a queue topic carries the wallboard's most urgent numbers. Agents take
what is left; whatever does not fit is polled as before, on the budget push has freed.

With several OAuth clients each has its own 20 channels, and one plan covers them all: 19 usable
channels per client, slot `i` belonging to client `i mod n` (`owner`), so slots filled in order
spread over the clients and none is given more than its 19.

Plans are stable: an item keeps its channel from one plan to the next while it stays in scope,
so a new agent in the directory changes one subscription, not twenty. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from exporter.genesys.notifications import MAX_CHANNELS_PER_CLIENT, MAX_TOPICS_PER_CHANNEL, TOPIC_KINDS, TopicKind

Item = tuple[TopicKind, str]


@dataclass(frozen=True, slots=True)
class TopicPlan:
    channels: tuple[tuple[Item, ...], ...] = ()  # per channel slot: the items it pushes
    polled: Mapping[TopicKind, frozenset[str]] = field(default_factory=dict)  # in scope, no room for a topic
    # Per kind, the items of every slot: once per plan, not once per page build that counts them.
    _pushed: Mapping[TopicKind, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pushed = {
            kind: frozenset(item for slot in self.channels for k, item in slot if k == kind) for kind in TOPIC_KINDS
        }
        object.__setattr__(self, "_pushed", pushed)

    def pushed(self, kind: TopicKind) -> frozenset[str]:
        return self._pushed[kind]


def position(slot: int, clients: int) -> int:
    """The position, among `clients`, of the OAuth client a channel slot belongs to: they take turns."""
    return slot % clients


def owner(slot: int, clients: Sequence[str]) -> str:
    """The OAuth client a channel slot of the plan belongs to."""
    return clients[position(slot, len(clients))]


def refused_everywhere(refused: Mapping[Item, Collection[int]], clients: int) -> set[Item]:
    """The items every one of the `clients` was refused the topic of: those are polled."""
    return {item for item, who in refused.items() if len(set(who) & set(range(clients))) == clients}


def usable_channels(channels_per_client: int = MAX_CHANNELS_PER_CLIENT) -> int:
    """Channels that carry topics: all but one, which a replacement channel uses while the old one closes."""
    return max(0, min(channels_per_client, MAX_CHANNELS_PER_CLIENT) - 1)


def plan_topics(
    scope: Mapping[TopicKind, Collection[str]],
    *,
    channels: int,
    per_channel: int = MAX_TOPICS_PER_CHANNEL,
    previous: TopicPlan | None = None,
    refused: Mapping[Item, Collection[int]] | None = None,
    clients: int = 1,
) -> TopicPlan:
    """Fit the items in scope into `channels` channels of `per_channel` topics, queues first.

    `refused` names, per item, the clients (by position; slot `i` is client `i mod clients`) whose
    channels the service refused its topic on: it goes to another client's channel, and when every
    client has refused it, it is not planned and stays polled. One client's role missing a
    permission moves that client's topics to the others instead of to polling.
    """
    refused = refused or {}
    polled_anyway = refused_everywhere(refused, clients)
    wanted: list[Item] = []
    for kind in TOPIC_KINDS:
        wanted.extend((kind, item) for item in sorted(scope.get(kind, ())) if (kind, item) not in polled_anyway)
    previous_slots = previous.channels if previous else ()
    before = {item: index for index, slot in enumerate(previous_slots) for item in slot}
    room = channels * per_channel
    # Items already pushed keep their place in the queue for capacity, within their kind.
    chosen = _take(wanted, before, room)
    slots: list[list[Item]] = [[] for _ in range(channels)]
    newcomers: list[Item] = []
    for item in chosen:
        index = before.get(item)
        if (
            index is not None
            and index < channels
            and len(slots[index]) < per_channel
            and position(index, clients) not in refused.get(item, ())
        ):
            slots[index].append(item)
        else:
            newcomers.append(item)
    # Each slot's items keep their order, newcomers after them: an item's place in its slot is its
    # store part (`exporter.push.state`), and a reshuffle would rewrite every part of the slot.
    order = {item: place for slot in previous_slots for place, item in enumerate(slot)}
    for slot in slots:
        slot.sort(key=order.__getitem__)
    _place(newcomers, slots, per_channel, refused, clients)
    placed = {item for slot in slots for item in slot}
    polled = {
        kind: frozenset(item for item in scope.get(kind, ()) if (kind, item) not in placed) for kind in TOPIC_KINDS
    }
    while slots and not slots[-1]:  # an empty slot in the middle keeps its place: indices are channels
        slots.pop()
    return TopicPlan(channels=tuple(tuple(slot) for slot in slots), polled=polled)


def _place(
    items: Sequence[Item],
    slots: list[list[Item]],
    per_channel: int,
    refused: Mapping[Item, Collection[int]],
    clients: int,
) -> None:
    """Each item into the first slot with room on a client that has not refused it (none: it stays out)."""
    first_open = 0
    for item in items:
        while first_open < len(slots) and len(slots[first_open]) >= per_channel:
            first_open += 1
        banned = refused.get(item, ())
        for index in range(first_open, len(slots)):
            if len(slots[index]) < per_channel and position(index, clients) not in banned:
                slots[index].append(item)
                break


def _take(wanted: Sequence[Item], before: Mapping[Item, int], room: int) -> list[Item]:
    """The first `room` items in kind order; within a kind, those pushed before come first."""
    out: list[Item] = []
    for kind in TOPIC_KINDS:
        of_kind = [item for item in wanted if item[0] == kind]
        of_kind.sort(key=lambda item: item not in before)  # stable: sorted ids within each group
        out.extend(of_kind[: max(0, room - len(out))])
    return out
