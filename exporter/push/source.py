"""Push as a source of the store, next to the pollers: what the exporter wires in when push is on.

It owns the pushed data and the channel pool, and gives them the three polls push needs, all on
the pollers' own request code and through the one budget: the reconciliation poll of a slot's items
after a gap (into the pushed data, merged newest-first), the fallback poll when a channel dies
(into the store, as the pollers' own data: those items are the pollers' again), and the slow
sweep of every pushed item (a scheduler job, planned like any other), which repairs an event the
service never delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import structlog

from exporter.clock import Clock
from exporter.genesys.client import GenesysClient
from exporter.genesys.notifications import TOPIC_KINDS, TopicKind
from exporter.push.plan import usable_channels
from exporter.push.pool import PUSH_CALLER, ChannelPool
from exporter.push.state import STORE_KEY, PushedData
from exporter.push.telemetry import PushTelemetry
from exporter.scheduling.budget import current_caller
from exporter.snapshot import Store
from exporter.sources.agent_states import AgentState, poll_agent_states
from exporter.sources.queue_states import poll_queues

log = structlog.get_logger(__name__)

# Seconds between two polls of the agents whose events could not be ordered: ties are rare where
# times are to the millisecond, and a reordered pair is then wrong for half a minute at most.
DOUBT_EVERY = 30.0
# The audit: every AUDIT_EVERY seconds, one request a kind polls AUDIT_BATCH pushed items in turn (6
# requests a minute), each checked against push, so that a stream gone wrong without a sound is found
# within minutes instead of at the sweep.
AUDIT_EVERY = 20.0
AUDIT_BATCH = 100
TRUST_CHECK_EVERY = 2.0


class PushSource:
    def __init__(
        self,
        client: GenesysClient,
        clock: Clock,
        store: Store,
        *,
        channels_per_client: int = 20,
        flush_every: float = 0.25,
    ) -> None:
        self._client = client
        self._clock = clock
        self._store = store
        self.data = PushedData(store, clock, flush_every=flush_every)
        self.pool = ChannelPool(
            client,
            clock,
            store,
            self.data,
            self.reconcile,
            self.fallback,
            channels_per_client=usable_channels(channels_per_client),
        )
        self._fallbacks = 0
        self._tasks: set[asyncio.Task[None]] = set()  # fallback polls in flight, cancelled with `run`
        self._listings = 0  # users listings giving the agents their first states now
        self._no_listing = asyncio.Event()
        self._no_listing.set()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.pool.run(), name="push-pool")
                group.create_task(self._poll_doubtful(), name="push-doubts")
                group.create_task(self._audit(), name="push-audit")
                group.create_task(self._keep_trust(), name="push-trust")
        finally:
            for task in self._tasks:
                task.cancel()

    def polled(self, kind: TopicKind, ids: Collection[str]) -> list[str]:
        """The items the pollers must poll: those no live channel keeps current."""
        owned = self.data.owned(kind)
        return [item for item in ids if item not in owned] if owned else list(ids)

    @contextlib.contextmanager
    def listing_first_states(self) -> Iterator[None]:
        """While the start's users listing gives every agent a first state, push polls no agent.

        Its pages are the states of the agents push subscribes meanwhile (pending, they are the
        pollers' until reconciled), and every agent's first state waits for those pages: a
        reconciliation of 50,000 agents costs as many requests as the listing and, sharing the
        minute's window with it, would leave its last pages for the next one.
        """
        self._listings += 1
        self._no_listing.clear()
        try:
            yield
        finally:
            self._listings -= 1
            if not self._listings:
                self._no_listing.set()

    def telemetry(self) -> PushTelemetry:
        return self.pool.telemetry()

    async def _poll(
        self, kind: TopicKind, ids: Sequence[str], publish: Callable[[int, Mapping[str, Any]], None]
    ) -> None:
        """Poll pushed items on the sources' own request code, handing each batch to `publish`."""
        if kind == "agents":
            await poll_agent_states(self._client, ids, publish)
        else:
            await poll_queues(self._client, self._clock, ids, publish)

    async def reconcile(self, kind: TopicKind, ids: Sequence[str]) -> None:
        """Poll items into the pushed data (after a gap, or the sweep): newer reports win field by field."""
        if kind == "agents":
            await self._no_listing.wait()
            await self._poll(kind, ids, lambda _, states: self._agents_polled(states))
        else:
            asked_at = self._clock.monotonic()
            await self._poll(kind, ids, lambda _, states: self.data.queues_polled(states, asked_at))

    def _agents_polled(self, states: Mapping[str, AgentState]) -> None:
        self.data.compare_agents(states)
        self.data.agents_polled(states)

    async def _poll_doubtful(self) -> None:
        """Every `DOUBT_EVERY` seconds, poll the agents whose events tied and disagreed (100 a request)."""
        current_caller.set(PUSH_CALLER)
        while True:
            await self._clock.sleep(DOUBT_EVERY)
            doubtful, self.data.doubtful = sorted(self.data.doubtful & self.data.owned("agents")), set()
            if doubtful:
                try:
                    await self.reconcile("agents", doubtful)
                except Exception as error:  # the sweep polls them later
                    log.warning("doubtful agents not polled", agents=len(doubtful), error=str(error))

    async def _audit(self) -> None:
        """Poll a few pushed items all the time, in turn, each poll a comparison with push."""
        current_caller.set(PUSH_CALLER)
        turn: dict[TopicKind, int] = dict.fromkeys(TOPIC_KINDS, 0)
        while True:
            await self._clock.sleep(AUDIT_EVERY)
            for kind in TOPIC_KINDS:
                owned = sorted(self.data.owned(kind))
                if not owned:
                    continue
                start = turn[kind] % len(owned)
                sample = (owned[start:] + owned[:start])[:AUDIT_BATCH]
                turn[kind] = start + len(sample)
                try:
                    await self.reconcile(kind, sample)
                except Exception as error:  # the next audit, or the sweep, looks again
                    log.warning("audit poll failed", kind=kind, error=str(error))

    async def _keep_trust(self) -> None:
        """A kind that lost its trust goes to the pollers at once (a fallback poll of all its items);
        when its time is up it is tried again: its items are polled into the pushed data and pushed
        from then on, until its events fail it again."""
        current_caller.set(PUSH_CALLER)
        trust, lost = self.data.trust, set[TopicKind]()
        retrying: set[TopicKind] = set()
        while True:
            await self._clock.sleep(TRUST_CHECK_EVERY)
            for kind in set(trust.distrusted()) - lost:
                self.fallback(kind, self.data.assigned(kind))
            lost = set(trust.distrusted())
            retrying |= set(trust.retry_due())
            for kind in sorted(retrying):
                items = self.data.assigned(kind)
                try:
                    await self.reconcile(kind, items)
                except Exception as error:  # still the pollers': tried again on the next check
                    log.warning("push not resumed: its items could not be polled", kind=kind, error=str(error))
                    continue
                retrying.discard(kind)
                self.data.reconciled((kind, item) for item in items)

    def fallback(self, kind: TopicKind, ids: Sequence[str]) -> None:
        """A channel died: poll its items now, as the pollers' data, instead of waiting for their next cycle."""
        self._fallbacks += 1
        task = asyncio.create_task(self._fallback(kind, list(ids)), name=f"push-fallback-{kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fallback(self, kind: TopicKind, ids: list[str]) -> None:
        try:
            await self._poll(kind, ids, self._store.publisher(STORE_KEY[kind], "fallback", (self._fallbacks,)))
        except Exception as error:  # the pollers' next cycle has them anyway
            log.warning("fallback poll failed", kind=kind, items=len(ids), error=str(error))

    async def sweep(self) -> None:
        """Poll every pushed item once (a scheduler job): what an undelivered event left wrong is repaired."""
        self.pool.retry_rejected()
        for kind in TOPIC_KINDS:
            owned = sorted(self.data.owned(kind))
            if owned:
                await self.reconcile(kind, owned)
