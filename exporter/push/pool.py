"""The OAuth clients' notification channels as one pool: the topic plan, its slots, and what they report.

The pool reads the directories from the store (queues and agents in scope), plans topics over its
slots (queues first, then agents; stable from one plan to the next), and hands each slot its
items. Each OAuth client has its own share of slots (19 of its 20 channels), and one plan covers
them all: slot `i` belongs to client `i mod n`, so the plan, filling slots in order, spreads its
channels over the clients (3 clients at 50,000 agents and 2,000 queues: 52 channels of 57). A
client that fails takes only its own slots down, whose items are polled until they reopen.

A topic the service rejects on one client's channel is planned on another client's; one rejected
on every client's is not planned again (its item stays polled) until the sweep asks again, and is
reported with the permission it lacks. On start it lists each client's channels and takes those over before it
opens any, so a restarted exporter never pushes a client past 20.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Mapping

import structlog

from exporter.clock import Clock
from exporter.genesys.client import GenesysClient
from exporter.genesys.errors import GenesysError
from exporter.genesys.notifications import TOPIC_KINDS, Channel, TopicKind, list_channels
from exporter.push.channel import ChannelSlot, ChannelSource, Fallback, Reconcile
from exporter.push.conflict import Conflicts
from exporter.push.plan import Item, TopicPlan, owner, plan_topics, position, refused_everywhere
from exporter.push.state import PushedData
from exporter.push.telemetry import PushTelemetry
from exporter.scheduling.budget import Caller, current_caller
from exporter.snapshot import Store
from exporter.sources.agent_directory import AGENTS
from exporter.sources.queue_directory import QUEUES
from exporter.tasks import first_of

log = structlog.get_logger(__name__)

PUSH_CALLER = Caller("push", priority=1)  # the agents' reconciliation, fallback and doubt polls
REPLAN_DEBOUNCE_SECONDS = 2.0


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
        channels_per_client: int,
    ) -> None:
        self._client = client
        self._labels = client.labels
        self._per_client = channels_per_client
        self._channels = channels_per_client * len(self._labels)
        self.conflicts = Conflicts(clock, self._labels)
        self._clock = clock
        self._store = store
        self._data = data
        self._reconcile = reconcile
        self._fallback = fallback
        self._slots: list[ChannelSlot] = []
        self._refused: dict[Item, set[int]] = {}  # item -> the clients (by position) that were refused its topic
        self._replan = asyncio.Event()
        self.plan = TopicPlan()
        self.reconnects: Counter[str] = Counter()

    async def run(self) -> None:
        current_caller.set(PUSH_CALLER)  # this task's requests, and its children's, are push's
        leftovers = await asyncio.gather(*(self._leftovers(label) for label in self._labels))
        sources = {
            label: ChannelSource(self._client, label, left) for label, left in zip(self._labels, leftovers, strict=True)
        }
        self._slots = [
            ChannelSlot(
                index,
                self._client,
                self._clock,
                self._data,
                sources[owner(index, self._labels)],
                self._reconcile,
                self._fallback,
                self.reconnects,
                self.conflicts,
            )
            for index in range(self._channels)
        ]
        for slot in self._slots:
            slot.on_rejected = functools.partial(self._rejected_topics, position(slot.index, len(self._labels)))
        async with asyncio.TaskGroup() as group:
            group.create_task(self._data.run(), name="push-flush")
            group.create_task(self._plan_loop(), name="push-plan")
            for slot in self._slots:
                group.create_task(slot.run(), name=f"push-slot-{slot.index}")

    async def _leftovers(self, label: str) -> list[Channel]:
        """Channels an earlier run left on the client, to take over (at most as many as it has slots)."""
        try:
            channels = await list_channels(self._client, as_client=label)
        except GenesysError as error:
            log.warning("could not list the client's notification channels", client=label, error=str(error))
            return []
        if channels:
            log.info(
                "taking over notification channels left by an earlier run",
                client=label,
                channels=min(len(channels), self._per_client),
            )
        return channels[: self._per_client]

    def _rejected_topics(self, client: int, rejected: Mapping[Item, str]) -> None:
        for item in rejected:
            self._refused.setdefault(item, set()).add(client)
        self._replan.set()

    async def _plan_loop(self) -> None:
        """Re-plan when the directories change (debounced) or a topic was rejected."""
        seen: tuple[object, object] | None = None
        while True:
            snapshot = self._store.snapshot
            directories = (snapshot[QUEUES], snapshot[AGENTS])
            if directories != seen or self._replan.is_set():
                seen = directories
                self._replan.clear()
                self._apply(self._plan(*directories))
            await first_of({"changed": self._store.wait_changed(snapshot.version), "rejected": self._replan.wait()})
            await self._clock.sleep(REPLAN_DEBOUNCE_SECONDS)

    def _plan(self, queues: Mapping[str, object], agents: Mapping[str, object]) -> TopicPlan:
        return plan_topics(
            {"queues": queues.keys(), "agents": agents.keys()},
            channels=self._channels,
            previous=self.plan,
            refused=self._refused,
            clients=len(self._labels),
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
        """Items whose topic the service refused on every client's channels: polled."""
        return frozenset(item for k, item in refused_everywhere(self._refused, len(self._labels)) if k == kind)

    def retry_rejected(self) -> None:
        """Plan the refused topics again (the sweep does, every 10 minutes): a role that has been
        given the permission since gets them pushed without a restart; one that has not, refuses again."""
        if self._refused:
            self._refused.clear()
            self._replan.set()

    def telemetry(self) -> PushTelemetry:
        snapshot = self._store.snapshot
        scope: dict[TopicKind, int] = {"queues": len(snapshot[QUEUES]), "agents": len(snapshot[AGENTS])}
        topics: dict[tuple[TopicKind, str], int] = {}
        items: dict[tuple[TopicKind, str], int] = {}
        trust = self._data.trust
        for kind in TOPIC_KINDS:
            live = len(self._data.owned(kind))
            rejected = len(self.rejected(kind))
            planned = len(self.plan.pushed(kind))
            distrusted = 0 if trust.trusted(kind) else planned
            topics[(kind, "live")] = live
            topics[(kind, "pending")] = max(0, planned - live - distrusted)
            topics[(kind, "distrusted")] = distrusted
            topics[(kind, "rejected")] = rejected
            items[(kind, "push")] = live
            items[(kind, "poll")] = max(0, scope[kind] - live)
        channels = len(self.plan.channels)
        return PushTelemetry(
            channels_by_client={
                label: sum(1 for slot in self._slots if slot.client == label and slot.report.connected)
                for label in self._labels
            },
            slots_by_client={
                label: sum(1 for index in range(channels) if owner(index, self._labels) == label)
                for label in self._labels
            },
            conflicts=self.conflicts.states(),
            topics=topics,
            items=items,
            events=dict(self._data.events),
            reconnects=dict(self.reconnects),
            last_event=self._data.last_event,
            malformed_events={kind: trust.malformed[kind] for kind in TOPIC_KINDS},
            unknown_frames=sum(slot.report.unknown_frames for slot in self._slots),
            compared={kind: trust.compared[kind] for kind in TOPIC_KINDS},
            disagreements={kind: trust.disagreements[kind] for kind in TOPIC_KINDS},
            distrusted=dict(trust.distrusted()),
        )
