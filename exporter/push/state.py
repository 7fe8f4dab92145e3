"""What the notification channels have told us, merged newest-first and fed to the store in batches.

Events and polls of pushed items (the reconciliation after a gap, the slow sweep) meet here, and
the rule between them is the API's own clock, not arrival order: an agent's routing status is
taken from whichever report has the later `startTime`, their presence from the later
`modifiedDate`, so a late, repeated or reordered event never overwrites newer data. A queue event
may carry only some metrics (Unconfirmed), so it is read into the queue's draft, changing what it
names and keeping the rest; a poll of the queue is a whole picture and replaces the draft.

50,000 agents change status hundreds of times a second: events only mark items dirty, and every
`flush_every` seconds (queues: every `queue_every`) the dirty groups (100 items each, the page's
unit of re-rendering) land in the store in one swap. While a channel is live its data is current
(no event means no change), so its groups are re-stamped now and then; when it dies they are left
to age like any poll's data, and the pollers take its items over. A kind whose events push no
longer earns trust for (`exporter.push.trust`) is treated as if its channels were dead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from exporter.clock import Clock
from exporter.genesys.notifications import AgentActivity, QueueStats, TopicKind
from exporter.push.plan import Item
from exporter.push.trust import PUBLISH_DELAY_SECONDS, Trust, agent_differences, queue_differences
from exporter.snapshot import Measurement, PartKey, Store
from exporter.sources.agent_states import AGENT_STATES, AgentState, agent_state
from exporter.sources.queue_states import QUEUE_STATES, QueueDraft, QueueState

GROUP_SIZE = 100  # items per store part: what one poll page holds, and what the page re-renders at once
STORE_KEY: Mapping[TopicKind, Measurement[Any]] = {"agents": AGENT_STATES, "queues": QUEUE_STATES}
Group = tuple[TopicKind, int, int]  # kind, channel slot, group of GROUP_SIZE items on it


def part_of(group: Group) -> PartKey:
    """The store part a group of pushed items lands in."""
    return PartKey("push", group[1:])


def newer(old: AgentState | None, new: AgentState) -> AgentState:
    """Field by field, the later of two reports about one agent (a report without a time counts as newer)."""
    if old is None:
        return new
    routing_is_newer = new.status_since is None or old.status_since is None or new.status_since >= old.status_since
    presence_is_newer = (
        new.presence_since is None or old.presence_since is None or new.presence_since >= old.presence_since
    )
    merged = old
    if routing_is_newer and new.routing_status is not None:
        merged = replace(merged, routing_status=new.routing_status, status_since=new.status_since)
    if presence_is_newer and new.presence is not None:
        merged = replace(merged, presence=new.presence, presence_since=new.presence_since)
    return merged


def _ties(old: AgentState, new: AgentState) -> bool:
    """Same time, different news: the order of arrival is all that tells them apart."""
    routing = new.status_since is not None and new.status_since == old.status_since
    presence = new.presence_since is not None and new.presence_since == old.presence_since
    return (routing and new.routing_status != old.routing_status) or (presence and new.presence != old.presence)


class PushedData:
    """Pushed items' latest state, which channel slot each belongs to, and which slots are live."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        flush_every: float = 0.25,
        queue_every: float = 0.5,
        age_every: float = 2.0,
        restamp_every: float = 10.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._flush_every = flush_every
        self._restamp_every = restamp_every
        self._age_every = age_every
        self._last_aged = clock.monotonic()
        self._queue_every = queue_every  # queue events come once a second at most; the queue segment is rebuilt whole
        self._last_queue_flush = -math.inf
        self._agents: dict[str, AgentState] = {}
        self._queues: dict[str, QueueDraft] = {}
        self._queue_event_at: dict[str, float] = {}  # queue -> monotonic time its last event arrived
        # Polls that found a pushed queue otherwise: (due, queue, fields, asked at), judged once due
        self._queue_checks: list[tuple[float, str, dict[str, object], float]] = []
        self._group: dict[Item, Group] = {}  # item -> its group (`part_of` it: its store part)
        self._members: dict[Group, list[str]] = {}
        self._live: set[int] = set()
        self._pending: set[Item] = set()  # assigned, but not yet reconciled by a poll: still the pollers'
        self._dirty: set[Group] = set()
        self._ticking: set[Group] = set()  # queue groups with an oldest wait, which ages
        self._owned: dict[TopicKind, frozenset[str]] = {"agents": frozenset(), "queues": frozenset()}
        self._last_restamp = clock.monotonic()
        self.doubtful: set[str] = set()  # agents whose last events tied in time and disagreed: poll them
        self.trust = Trust(clock, on_change=self._trust_changed)
        self.events: dict[TopicKind, int] = {"agents": 0, "queues": 0}
        self.last_event: float | None = None  # wall-clock epoch seconds

    # ----- which items, on which slot, live or not --------------------------------------------
    def assign(self, slot: int, items: Sequence[Item]) -> None:
        """The items a channel slot carries (in plan order): their groups are the slot's store parts.

        Items new to the slot are pending: events about them are kept, but they stay the pollers'
        until `reconciled`, after one poll of them (what they did before the subscription is unknown).
        """
        known = {item for item, key in self._group.items() if key[1] == slot}
        self._pending |= {item for item in items if item not in known}
        self._pending &= set(self._group) | set(items)
        for item, key in list(self._group.items()):
            if key[1] == slot:
                del self._group[item]
        for key in [k for k in self._members if k[1] == slot]:
            del self._members[key]
        for kind in STORE_KEY:
            ids = [i for k, i in items if k == kind]
            for position, item_id in enumerate(ids):
                key = (kind, slot, position // GROUP_SIZE)
                self._group[(kind, item_id)] = key
                self._members.setdefault(key, []).append(item_id)
        # Each group's part is written again with its members now: an item that changed group would
        # otherwise be in no part until an event in its new group.
        self._dirty.update(key for key in self._members if key[1] == slot)
        self._drop_unassigned()
        self._recount()

    def set_live(self, slot: int, live: bool) -> None:
        """A live slot's items are pushed (the pollers leave them alone); a dead one's go back to polling."""
        if live == (slot in self._live):
            return
        if live:
            self._live.add(slot)
            self._dirty.update(k for k in self._members if k[1] == slot)
        else:
            self._live.discard(slot)
        self._recount()

    def mark_gap(self, slot: int) -> None:
        """The slot's items missed events (a gap): pending again until a poll has repaired them."""
        self._pending |= {item for item, key in self._group.items() if key[1] == slot}
        self.trust.lost(slot)
        self._recount()

    def reconciled(self, items: Iterable[Item]) -> None:
        """A poll of these items has landed here: from now on their data is pushed (if push is trusted)."""
        settled = {item for item in items if item in self._pending and self.trust.trusted(item[0])}
        self._pending -= settled
        self._dirty.update(self._group[item] for item in settled if item in self._group)
        self._recount()

    def pending(self, slot: int) -> list[Item]:
        return sorted(item for item in self._pending if self._group.get(item, (None, -1))[1] == slot)

    def owned(self, kind: TopicKind) -> frozenset[str]:
        """Items whose data is current through a live channel: the pollers skip them."""
        return self._owned[kind]

    def items_of(self, slot: int, kind: TopicKind) -> list[str]:
        return [i for key, ids in self._members.items() if key[1] == slot and key[0] == kind for i in ids]

    def assigned(self, kind: TopicKind) -> list[str]:
        """Every item of `kind` on a channel, live or not."""
        return sorted(i for k, i in self._group if k == kind)

    def _live_group(self, group: Group) -> bool:
        """Whether a group's data is current through push: its slot is live and its kind trusted."""
        return group[1] in self._live and self.trust.trusted(group[0])

    def _trust_changed(self, kind: TopicKind) -> None:
        """A kind lost its trust (its items are the pollers' until a poll reconciles them once it is
        back), or got it back (still pending: the holder polls them in)."""
        self._pending |= {item for item in self._group if item[0] == kind}
        self._recount()

    def _recount(self) -> None:
        for kind in STORE_KEY:
            self._owned[kind] = frozenset(
                i
                for key, ids in self._members.items()
                if key[0] == kind and self._live_group(key)
                for i in ids
                if (kind, i) not in self._pending
            )

    def _drop_unassigned(self) -> None:
        for uid in [u for u in self._agents if ("agents", u) not in self._group]:
            del self._agents[uid]
        for qid in [q for q in self._queues if ("queues", q) not in self._group]:
            del self._queues[qid]
            self._queue_event_at.pop(qid, None)

    # ----- what arrives -------------------------------------------------------------------------
    def activity(self, event: AgentActivity) -> bool:
        """An event; one that ties the agent's last report in time but says otherwise is doubtful.
        Returns whether it held anything readable (a routing status or a presence).

        Two changes of one agent at one instant share a `startTime` (the API's times are to the
        millisecond): if they arrive reversed nothing in them says which came last. The later
        arrival is kept, and the agent is polled again soon (`doubtful`), which settles it.
        """
        state = agent_state(event.routing_status, event.presence)
        if state.routing_status is None and state.presence is None:
            return False
        self._count("agents")
        old = self._agents.get(event.id)
        if old is not None and _ties(old, state):
            self.doubtful.add(event.id)
        self.agents_polled({event.id: state})
        return True

    def queue_stats(self, event: QueueStats) -> bool:
        """An event read into the queue's draft; returns whether it held anything readable: a queue id
        and a metric row the exporter knows."""
        queue_id = event.group.get("queueId")
        if not isinstance(queue_id, str):
            return False
        rows = event.rows()
        media, now = event.group.get("mediaType"), self._clock.time()
        key = self._group.get(("queues", queue_id))
        draft = self._queues.setdefault(queue_id, QueueDraft()) if key is not None else QueueDraft()
        known = [draft.read(media, row, now) for row in rows]
        if not any(known):
            return False
        self._count("queues")
        if key is not None:
            self._queue_event_at[queue_id] = self._clock.monotonic()
            self._dirty.add(key)
        return True

    def compare_agents(self, states: Mapping[str, AgentState]) -> None:
        """A poll of agents checked against what push shows of those it keeps current."""
        owned, now = self._owned["agents"], self._clock.time()
        for uid, polled in states.items():
            pushed = self._agents.get(uid)
            if uid in owned and pushed is not None:
                slot = self._group[("agents", uid)][1]
                self.trust.compare("agents", agent_differences(pushed, polled, now), slot)

    def agents_polled(self, states: Mapping[str, AgentState]) -> None:
        """Reports from a poll or an event: each field kept from whichever report is newer."""
        for uid, state in states.items():
            key = self._group.get(("agents", uid))
            if key is None:
                continue
            old = self._agents.get(uid)
            merged = newer(old, state)
            if merged != old:
                self._agents[uid] = merged
                self._dirty.add(key)

    def queues_polled(self, states: Mapping[str, QueueState], asked_at: float) -> None:
        """A poll answers every metric of a queue: it replaces what events built up, unless an event
        came after the poll was asked (`asked_at`, monotonic). Queue events carry no time of their own,
        so that poll may be the older news, and the event it would overwrite is not sent again."""
        now, owned = self._clock.time(), self._owned["queues"]
        for qid, state in states.items():
            key = self._group.get(("queues", qid))
            if qid in owned and qid in self._queues:
                differed = queue_differences(self._queues[qid].freeze(now), state)
                if differed:  # push's fault only if no event came to explain it: judged once due
                    self._queue_checks.append(
                        (self._clock.monotonic() + PUBLISH_DELAY_SECONDS, qid, differed, asked_at)
                    )
                else:
                    self.trust.compare("queues", None, self._group[("queues", qid)][1])
            if key is not None and self._queue_event_at.get(qid, -math.inf) < asked_at:
                self._queues[qid] = QueueDraft.of(state, now)
                self._dirty.add(key)

    def _judge_queue_checks(self, mono: float) -> None:
        """A pushed queue a poll found otherwise is push's fault if no event about it arrived after the
        poll was asked, within the publishing delay: the service had the change and did not send it."""
        due = [check for check in self._queue_checks if check[0] <= mono]
        if not due:
            return
        self._queue_checks = [check for check in self._queue_checks if check[0] > mono]
        for _, qid, differed, asked_at in due:
            key = self._group.get(("queues", qid))
            if key is None or ("queues", qid) in self._pending:  # moved or in a gap since: no verdict
                continue
            explained = self._queue_event_at.get(qid, -math.inf) >= asked_at
            self.trust.compare("queues", None if explained else differed, key[1])

    def _count(self, kind: TopicKind) -> None:
        self.events[kind] += 1
        self.last_event = self._clock.time()

    # ----- into the store -----------------------------------------------------------------------
    def flush(self) -> None:
        """Land the live slots' dirty groups in the store, one swap per kind; re-stamp the rest now and then."""
        now, mono = self._clock.time(), self._clock.monotonic()
        self._judge_queue_checks(mono)
        self.trust.confirm()
        queues_due = mono - self._last_queue_flush >= self._queue_every
        if queues_due:
            self._last_queue_flush = mono
        due = {key for key in self._dirty if self._live_group(key) and (queues_due or key[0] == "agents")}
        if mono - self._last_aged >= self._age_every:  # the oldest waits have aged
            self._last_aged = mono
            due |= {key for key in self._ticking if self._live_group(key)}
        self._dirty -= due
        for kind, store_key in STORE_KEY.items():
            parts = {part_of(group): self._items(group, now) for group in due if group[0] == kind}
            self._store.put_many(store_key, {part: items for part, items in parts.items() if items})
        self._ticking = {
            key
            for key in self._members
            if key[0] == "queues" and any(self._queues.get(q, _EMPTY).oldest_since for q in self._members[key])
        }
        if self._clock.monotonic() - self._last_restamp >= self._restamp_every:
            self._last_restamp = self._clock.monotonic()
            for kind, store_key in STORE_KEY.items():
                live = [group for group in self._members if group[0] == kind and self._live_group(group)]
                held = self._store.snapshot[store_key]
                self._store.restamp(store_key, [part_of(group) for group in live])
                # A part a newer poll covered whole was dropped by the store: a live group is put back.
                gone = {part_of(group): self._items(group, now) for group in live if part_of(group) not in held}
                self._store.put_many(store_key, {part: items for part, items in gone.items() if items})

    def _items(self, key: Group, now: float) -> dict[str, AgentState] | dict[str, QueueState]:
        kind, pending = key[0], self._pending
        ids = [i for i in self._members.get(key, []) if (kind, i) not in pending]
        if kind == "agents":
            return {uid: self._agents[uid] for uid in ids if uid in self._agents}
        return {qid: self._queues[qid].freeze(now) for qid in ids if qid in self._queues}

    async def run(self) -> None:
        while True:
            await self._clock.sleep(self._flush_every)
            self.flush()


_EMPTY = QueueDraft()
