"""The OAuth client's notification channels as one pool: the topic plan, its slots, and what they report.

The pool reads the directories from the store (queues and agents in scope), plans topics over its
slots (queues first, then agents; stable from one plan to the next), and hands each slot its
items. A topic the service rejects is never planned again (its item stays polled) and is reported
with the permission it lacks. On start it lists the channels the client already has and takes
those over before it opens any, so a restarted exporter never pushes its client past 20.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from exporter.clock import Clock
from exporter.genesys.budget import Caller, current_caller
from exporter.genesys.client import GenesysClient
from exporter.genesys.errors import GenesysError
from exporter.genesys.notifications import Channel, TopicKind, list_channels
from exporter.push.channel import ChannelSlot, ChannelSource, Fallback, Reconcile
from exporter.push.plan import KINDS, Item, TopicPlan, plan_topics
from exporter.push.state import PushedData
from exporter.snapshot import Store
from exporter.tasks import first_of

log = structlog.get_logger(__name__)

PUSH_CALLER = Caller("push", priority=1)  # channel and subscription calls, and reconciliation polls
REPLAN_DEBOUNCE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class PushTelemetry:
    """What `/metrics` and the landing page say about push (see the README's self-metrics)."""

    channels: int = 0  # channels with a connected socket
    slots: int = 0  # channels the plan uses
    topics: dict[tuple[TopicKind, str], int] = field(default_factory=dict)  # (kind, live|pending|rejected)
    items: dict[tuple[TopicKind, str], int] = field(default_factory=dict)  # (kind, push|poll): the split
    events: dict[TopicKind, int] = field(default_factory=dict)
    reconnects: dict[str, int] = field(default_factory=dict)  # reason -> count
    last_event: float | None = None
    malformed_events: int = 0


class ChannelPool:
    def __init__(
        self,
        client: GenesysClient,
        clock: Clock,
        store: Store,
        data: PushedData,
        reconcile: Reconcile,
        fallback: Fallback,
        *,
        channels: int,
        ping_after: float = 20.0,
        dead_after: float = 60.0,
    ) -> None:
        self._client = client
        self._clock = clock
        self._store = store
        self._data = data
        self._reconcile = reconcile
        self._fallback = fallback
        self._channels = channels
        self._ping_after = ping_after
        self._dead_after = dead_after
        self._slots: list[ChannelSlot] = []
        self._rejected: dict[Item, str] = {}
        self._replan = asyncio.Event()
        self.plan = TopicPlan()
        self.reconnects: Counter[str] = Counter()

    async def run(self) -> None:
        current_caller.set(PUSH_CALLER)  # this task's requests, and its children's, are push's
        source = ChannelSource(self._client, await self._leftovers())
        self._slots = [
            ChannelSlot(
                index,
                self._client,
                self._clock,
                self._data,
                source,
                self._reconcile,
                self._fallback,
                self.reconnects,
                ping_after=self._ping_after,
                dead_after=self._dead_after,
            )
            for index in range(self._channels)
        ]
        for slot in self._slots:
            slot.on_rejected = self._rejected_topics
        async with asyncio.TaskGroup() as group:
            group.create_task(self._data.run(), name="push-flush")
            group.create_task(self._plan_loop(), name="push-plan")
            for slot in self._slots:
                group.create_task(slot.run(), name=f"push-slot-{slot.index}")

    async def _leftovers(self) -> list[Channel]:
        """Channels an earlier run of this client left, to take over (at most as many as we use)."""
        try:
            channels = await list_channels(self._client)
        except GenesysError as error:
            log.warning("could not list the client's notification channels", error=str(error))
            return []
        if channels:
            log.info(
                "taking over notification channels left by an earlier run", channels=min(len(channels), self._channels)
            )
        return channels[: self._channels]

    def _rejected_topics(self, rejected: dict[Item, str]) -> None:
        self._rejected.update(rejected)
        self._replan.set()

    async def _plan_loop(self) -> None:
        """Re-plan when the directories change (debounced) or a topic was rejected."""
        seen: tuple[object, object] | None = None
        while True:
            snapshot = self._store.snapshot
            if (snapshot.queues, snapshot.agents) != seen or self._replan.is_set():
                seen = (snapshot.queues, snapshot.agents)
                self._replan.clear()
                self._apply(self._plan(snapshot.queues, snapshot.agents))
            await first_of({"changed": self._store.wait_changed(snapshot.version), "rejected": self._replan.wait()})
            await self._clock.sleep(REPLAN_DEBOUNCE_SECONDS)

    def _plan(self, queues: Mapping[str, object], agents: Mapping[str, object]) -> TopicPlan:
        excluded: dict[TopicKind, set[str]] = {kind: set() for kind in KINDS}
        for kind, item in self._rejected:
            excluded[kind].add(item)
        return plan_topics(
            {"queues": queues.keys(), "agents": agents.keys()},
            channels=self._channels,
            previous=self.plan,
            excluded=excluded,
        )

    def _apply(self, plan: TopicPlan) -> None:
        if plan.channels != self.plan.channels:
            log.info(
                "notification topics planned",
                channels=len(plan.channels),
                queues=len(plan.pushed("queues")),
                agents=len(plan.pushed("agents")),
                polled_agents=len(plan.polled.get("agents", ())),
            )
        self.plan = plan
        for slot in self._slots:
            slot.set_items(plan.channels[slot.index] if slot.index < len(plan.channels) else ())

    def owned(self, kind: TopicKind) -> frozenset[str]:
        return self._data.owned(kind)

    def rejected(self, kind: TopicKind) -> frozenset[str]:
        """Items whose topic the service refused: polled."""
        return frozenset(item for k, item in self._rejected if k == kind)

    def retry_rejected(self) -> None:
        """Plan the refused topics again (the sweep does, every 10 minutes): a role that has been
        given the permission since gets them pushed without a restart; one that has not, refuses again."""
        if self._rejected:
            self._rejected.clear()
            self._replan.set()

    def telemetry(self) -> PushTelemetry:
        snapshot = self._store.snapshot
        scope: dict[TopicKind, int] = {"queues": len(snapshot.queues), "agents": len(snapshot.agents)}
        topics: dict[tuple[TopicKind, str], int] = {}
        items: dict[tuple[TopicKind, str], int] = {}
        for kind in KINDS:
            live = len(self._data.owned(kind))
            rejected = sum(1 for k, _ in self._rejected if k == kind)
            topics[(kind, "live")] = live
            topics[(kind, "pending")] = max(0, len(self.plan.pushed(kind)) - live)
            topics[(kind, "rejected")] = rejected
            items[(kind, "push")] = live
            items[(kind, "poll")] = max(0, scope[kind] - live)
        return PushTelemetry(
            channels=sum(1 for slot in self._slots if slot.report.connected),
            slots=len(self.plan.channels),
            topics=topics,
            items=items,
            events=dict(self._data.events),
            reconnects=dict(self.reconnects),
            last_event=self._data.last_event,
            malformed_events=sum(slot.report.malformed for slot in self._slots),
        )
