"""One channel slot of the pool: its channel's whole life, from opening to the next one.

A slot carries the topics the plan gave it. It opens a channel (or takes over one an earlier run
left), subscribes, connects, and polls its items once (what they did before the subscription is
unknown); from then on its items are pushed and the pollers leave them alone. When the socket dies
(silence, a close, an eviction, revoked tokens) its items go back to the pollers at once, and the
slot opens a channel again, backing off while that fails; once back, the reconciliation poll
repairs what the gap lost. A maintenance notice (`socket_closing`) or the channel's coming
24 h expiry is met without a gap: a new channel is opened, subscribed and connected first, and
only then is the old one let go.

A slot belongs to one OAuth client (`client`, its label): a channel is the client's that made it,
so every call of the slot (opening, subscribing) is pinned to that client's token and budget. A
client whose channels keep being evicted by another exporter is in conflict (`Conflicts`): its
slots stay closed, their items polled, until its back-off is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from exporter.clock import Clock
from exporter.genesys.client import GenesysClient
from exporter.genesys.errors import GenesysError
from exporter.genesys.notifications import (
    TOPIC_KINDS,
    AgentActivity,
    Channel,
    ChannelSocket,
    Closing,
    Ended,
    Envelope,
    QueueStats,
    TopicKind,
    TopicState,
    Unknown,
    create_channel,
    item_of,
    subscribe,
    topic_for,
)
from exporter.genesys.retry import backoff
from exporter.push.conflict import Conflicts
from exporter.push.plan import Item
from exporter.push.state import PushedData
from exporter.scheduling.budget import Caller, as_caller, current_caller
from exporter.tasks import first_of

log = structlog.get_logger(__name__)

# Channel and subscription calls, and the queues' reconciliation poll, go with the live queue data:
# until they are done the queues are polled, and behind a long member listing at start-up they
# would wait minutes.
SETUP = Caller("push_setup", priority=0)

RENEW_BEFORE_SECONDS = 3600.0  # a channel lives 24 h: a new one is opened an hour before
MAX_BACKOFF_SECONDS = 60.0

Reconcile = Callable[[TopicKind, Sequence[str]], Awaitable[None]]  # polls items into the pushed data
Fallback = Callable[[TopicKind, Sequence[str]], None]  # the pollers take these items over now


@dataclass
class SlotReport:
    """What the pool exports about a slot."""

    connected: bool = False
    unknown_frames: int = 0  # socket frames of no shape the protocol knows, ignored
    rejected: dict[Item, str] = field(default_factory=dict)  # item -> the missing permission or reason


class ChannelSource:
    """Where one OAuth client's slots get their channels: first those an earlier run left (so a
    restart does not push the client past 20), then new ones, made with that client's token."""

    def __init__(self, client: GenesysClient, label: str, leftovers: Sequence[Channel] = ()) -> None:
        self._client = client
        self.label = label
        self._leftovers = list(leftovers)

    async def take(self) -> Channel:
        if self._leftovers:
            return self._leftovers.pop()
        return await create_channel(self._client, as_client=self.label)


@dataclass
class _Generation:
    """One channel of the slot, and the task reading its socket (set once it is started)."""

    channel: Channel
    socket: ChannelSocket
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    notice: Closing | None = None
    task: asyncio.Task[Closing | Ended] | None = None

    @property
    def reader(self) -> asyncio.Task[Closing | Ended]:
        assert self.task is not None
        return self.task


class ChannelSlot:
    def __init__(
        self,
        index: int,
        client: GenesysClient,
        clock: Clock,
        data: PushedData,
        source: ChannelSource,
        reconcile: Reconcile,
        fallback: Fallback,
        reconnects: Counter[str],
        conflicts: Conflicts,
    ) -> None:
        self.index = index
        self.client = source.label  # the OAuth client the slot's channels belong to
        self._log = log.bind(slot=index, client=self.client)  # every line says whose channel (never its id)
        self._conflicts = conflicts
        self._client = client
        self._clock = clock
        self._data = data
        self._source = source
        self._reconcile = reconcile
        self._fallback = fallback
        self._reconnects = reconnects
        self._items: tuple[Item, ...] = ()
        self._subscribed: tuple[Item, ...] = ()
        self._changed = asyncio.Event()
        self.report = SlotReport()
        self._readers: set[asyncio.Task[Closing | Ended]] = set()
        self.on_rejected: Callable[[dict[Item, str]], None] = lambda _: None

    def set_items(self, items: Sequence[Item]) -> None:
        """The plan's items for this slot; a live channel re-subscribes to them."""
        if tuple(items) != self._items:
            self._items = tuple(items)
            self._changed.set()

    async def run(self) -> None:
        try:
            await self._run()
        finally:  # the sockets' readers are this slot's: they end with it
            for reader in list(self._readers):
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._items:
                self._changed.clear()
                await self._changed.wait()
                continue
            await self._conflicts.wait_clear(self.client)
            try:
                generation = await self._open()
            except (GenesysError, ValidationError) as error:
                failures += 1
                self._reconnects["open_failed"] += 1
                wait = backoff(failures, cap=MAX_BACKOFF_SECONDS)
                self._log.warning("notification channel not opened", error=str(error), retry_in_s=wait)
                await self._clock.sleep(wait)
                continue
            failures = 0
            reason = await self._follow(generation)
            self._lost(reason)
            self._conflicts.lost(self.client, reason)
            await self._clock.sleep(random.uniform(0.5, 1.5))

    def _lost(self, reason: str) -> None:
        """The socket is gone: the pollers take the items at once; the gap is repaired after the reconnect."""
        self.report.connected = False
        self._data.set_live(self.index, False)
        self._data.mark_gap(self.index)
        self._reconnects[reason] += 1
        for kind in TOPIC_KINDS:
            ids = self._data.items_of(self.index, kind)
            if ids:
                self._fallback(kind, ids)

    async def _open(self) -> _Generation:
        """A channel subscribed to the slot's topics, its socket connected and being read."""
        with as_caller(SETUP):
            channel = await self._source.take()
            items = await self._subscribe(channel, self._items)
        socket = ChannelSocket(self._client, channel, self._clock)
        connected = asyncio.Event()
        generation = _Generation(channel, socket)
        generation.task = asyncio.create_task(self._read(generation, connected), name=f"channel-{self.index}")
        self._readers.add(generation.task)
        generation.task.add_done_callback(self._readers.discard)
        await first_of({"connected": connected.wait(), "ended": generation.reader})
        if not connected.is_set():
            raise _NotConnected(generation.reader.result().reason)
        self._data.assign(self.index, items)
        self.report.connected = True
        return generation

    async def _subscribe(self, channel: Channel, items: Sequence[Item]) -> tuple[Item, ...]:
        topics = [topic_for(kind, item) for kind, item in items]
        states = await subscribe(self._client, channel, topics, as_client=self.client)
        rejected = _rejected(states)
        if rejected:
            self.report.rejected.update(rejected)
            self._log.warning(
                "notification topics rejected; polled instead",
                topics=len(rejected),
                first=next(iter(rejected.values())),
            )
            self.on_rejected(rejected)
        self._subscribed = tuple(item for item in items if item not in rejected)
        return self._subscribed

    async def _read(self, generation: _Generation, connected: asyncio.Event) -> Closing | Ended:
        """Feed every event to the pushed data; return how the socket ended."""
        async for message in generation.socket.messages(on_open=connected.set):
            if isinstance(message, Closing):
                generation.notice = message
                generation.closing.set()
                if message.reason != "maintenance":  # evicted or revoked: the close follows at once
                    continue
            elif isinstance(message, Envelope):
                self._event(message)
            else:
                self._unknown(message)
        notice = generation.notice
        if notice is not None and notice.reason != "maintenance":
            return notice  # evicted or revoked: that is why it ended
        return generation.socket.ended or Ended("closed")

    def _event(self, envelope: Envelope) -> None:
        """An event into the pushed data; whether anything in it was readable goes to the trust."""
        found = item_of(envelope.topic_name)
        if found is None:
            return
        kind, body = found[0], envelope.event_body
        try:
            if kind == "agents":
                readable = self._data.activity(AgentActivity.model_validate(body))
            else:
                readable = self._data.queue_stats(QueueStats.model_validate(body))
        except ValidationError:
            readable = False
        self._data.trust.read(kind, readable, body)

    def _unknown(self, frame: Unknown) -> None:
        if not self.report.unknown_frames:
            self._log.warning("socket frame of an unknown shape ignored", shape=frame.shape)
        self.report.unknown_frames += 1

    async def _follow(self, generation: _Generation) -> str:
        """Run the slot on its channel until the socket is lost; returns why. Handovers happen in here."""
        lost = await self._unless_lost(generation, self._reconcile_pending(generation))
        if lost is not None:
            return lost
        while True:
            renew_at = generation.channel.expires_at()
            wait_for = None if renew_at is None else max(0.0, renew_at - RENEW_BEFORE_SECONDS - self._clock.time())
            waits: dict[str, Awaitable[Any]] = {
                "ended": generation.reader,
                "closing": generation.closing.wait(),
                "changed": self._changed.wait(),
            }
            if wait_for is not None:
                waits["renewal"] = self._clock.sleep(wait_for)
            done = await first_of(waits)
            if "ended" in done:
                return self._ended(generation)
            why = "changed" if "changed" in done else "closing" if "closing" in done else "renewal"
            if why == "changed":
                self._changed.clear()
                lost = await self._unless_lost(generation, self._resubscribe(generation))
                if lost is not None:
                    return lost
                continue
            notice = generation.notice
            if why == "closing" and notice is not None and notice.reason != "maintenance":
                self._log.warning("notification channel closing", reason=notice.reason, detail=notice.detail)
                with contextlib.suppress(asyncio.CancelledError):
                    await generation.reader
                return notice.reason
            generation = await self._hand_over(generation, why)

    async def _unless_lost(self, generation: _Generation, work: Awaitable[None]) -> str | None:
        """`work` (a reconciliation, which may wait for the budget or for the start's users listing a
        while) unless the socket ends first: then why, and the items it left pending stay the
        pollers'. Waiting it out instead would keep a dead channel's items taken for pushed."""
        done = await first_of({"done": work, "ended": generation.reader})
        return None if "done" in done else self._ended(generation)

    def _ended(self, generation: _Generation) -> str:
        ended = generation.reader.result()
        self._log.warning("notification channel lost", reason=ended.reason)
        return ended.reason

    async def _reconcile_pending(self, generation: _Generation) -> None:
        """Poll the pending items once: from then on their events alone keep them current."""
        self._data.set_live(self.index, True)
        pending = self._data.pending(self.index)
        for kind in TOPIC_KINDS:
            ids = [item for k, item in pending if k == kind]
            if ids:
                try:
                    with as_caller(SETUP if kind == "queues" else current_caller.get()):
                        await self._reconcile(kind, ids)
                except Exception as error:  # left pending: the pollers keep them; the next change retries
                    self._log.warning("reconciliation poll failed", kind=kind, error=str(error))
                    continue
                self._data.reconciled((kind, item) for item in ids)

    async def _resubscribe(self, generation: _Generation) -> None:
        try:
            with as_caller(SETUP):
                items = await self._subscribe(generation.channel, self._items)
        except GenesysError as error:
            self._log.warning("re-subscription failed; keeping the current topics", error=str(error))
            return
        self._data.assign(self.index, items)
        await self._reconcile_pending(generation)

    async def _hand_over(self, old: _Generation, why: str) -> _Generation:
        """Open the next channel before letting the old one go: no gap, no reconciliation needed."""
        self._reconnects[why if why == "renewal" else "maintenance"] += 1
        try:
            new = await self._open()
        except (GenesysError, ValidationError) as error:
            self._log.warning("replacement channel not opened; staying on the old one", error=str(error))
            old.closing.clear()
            await self._clock.sleep(5.0)
            return old
        old.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await old.reader
        self._log.info("notification channel replaced", why=why)
        return new


class _NotConnected(GenesysError):
    def __init__(self, reason: str) -> None:
        super().__init__("notification_socket", f"the socket did not connect ({reason})")


def _rejected(states: Sequence[TopicState]) -> dict[Item, str]:
    out: dict[Item, str] = {}
    for state in states:
        item = item_of(state.id)
        if item is not None and not state.permitted:
            out[item] = ", ".join(state.missing_permissions) or state.rejection_reason or "rejected"
    return out
