"""Whether push is believed, kind by kind: the events must be readable, and agree with the polls.

Nobody here has seen a live org's event stream, so what the exporter assumes of it is checked all
the time. Two things end the trust in one topic kind (queues or agents):

- its events stop being readable: `UNREADABLE_IN_A_ROW` events in a row of which nothing could be
  read (a changed event shape, say), since one readable event proves the shape still fits;
- they disagree with the REST answers: among the last `COMPARED_WINDOW` comparisons of a polled
  value with what push had shown, `DISAGREED_AT_LEAST` said push was wrong for longer than the
  service's own publishing delay (a stream that silently lost or garbled changes). A disagreement
  counts once its channel has lived `CONFIRM_SECONDS` more: a socket that went silent is found dead
  within that time, and what it missed is the gap's, which the reconnect repairs, not push's fault.

A kind not trusted has its items polled like those of a dead channel, and is tried again after
`RETRY_AFTER_SECONDS`; it must then earn its trust again from nothing. What was seen is counted by
kind for the self-metrics, and the first unreadable event and the first disagreements of each kind
are logged with their shape or the fields that differed, never with values or ids.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from exporter.clock import Clock
from exporter.genesys.notifications import TOPIC_KINDS, TopicKind
from exporter.logs import shape_of
from exporter.sources.agent_states import AgentState
from exporter.sources.queue_states import QueueState

log = structlog.get_logger(__name__)

UNREADABLE_IN_A_ROW = 10
COMPARED_WINDOW = 50
DISAGREED_AT_LEAST = 5
RETRY_AFTER_SECONDS = 600.0
CONFIRM_SECONDS = 35.0  # a silent socket is dead 30 s after its last word, checked every 5 s
DISAGREEMENTS_LOGGED = 3  # per kind and trust period

Why = Literal["unreadable", "disagreeing"]


@dataclass
class _Kind:
    unreadable_run: int = 0
    shape_logged: bool = False
    comparisons: collections.deque[bool] = field(default_factory=lambda: collections.deque(maxlen=COMPARED_WINDOW))
    disagreements_logged: int = 0
    distrusted: Why | None = None
    retry_at: float = 0.0


class Trust:
    """The verdict per topic kind, and the counters behind it.

    `on_change(kind)` is called when a kind loses or regains trust, so that its holder can move its
    items between push and the pollers.
    """

    def __init__(self, clock: Clock, on_change: Callable[[TopicKind], None] = lambda _: None) -> None:
        self._clock = clock
        self._kinds: dict[TopicKind, _Kind] = {kind: _Kind() for kind in TOPIC_KINDS}
        self.on_change = on_change
        self.malformed: collections.Counter[TopicKind] = collections.Counter()
        self.disagreements: collections.Counter[TopicKind] = collections.Counter()
        self.compared: collections.Counter[TopicKind] = collections.Counter()
        self._unconfirmed: list[tuple[float, TopicKind, int, Mapping[str, object]]] = []  # due, kind, slot, fields

    def trusted(self, kind: TopicKind) -> bool:
        return self._kinds[kind].distrusted is None

    def distrusted(self) -> dict[TopicKind, Why]:
        """The kinds not trusted now, and why."""
        return {kind: k.distrusted for kind, k in self._kinds.items() if k.distrusted is not None}

    def retry_at(self) -> float | None:
        """The earliest monotonic time a distrusted kind is to be tried again."""
        times = [k.retry_at for k in self._kinds.values() if k.distrusted is not None]
        return min(times) if times else None

    # ----- what the events and polls say ------------------------------------------------------
    def read(self, kind: TopicKind, readable: bool, body: Any = None) -> None:
        """One event of `kind`: whether anything in it could be read."""
        state = self._kinds[kind]
        if readable:
            state.unreadable_run = 0
            return
        self.malformed[kind] += 1
        state.unreadable_run += 1
        if not state.shape_logged:
            state.shape_logged = True
            log.warning("notification event with nothing readable ignored", kind=kind, shape=shape_of(body))
        if state.unreadable_run >= UNREADABLE_IN_A_ROW:
            self._distrust(kind, "unreadable")

    def compare(self, kind: TopicKind, differed: Mapping[str, object] | None, slot: int) -> None:
        """One polled item of a channel `slot` compared with what push showed: `differed` names the
        fields push had wrong for longer than the publishing delay (None or empty: they agreed)."""
        self.compared[kind] += 1
        if differed:
            self._unconfirmed.append((self._clock.monotonic() + CONFIRM_SECONDS, kind, slot, differed))
        else:
            self._kinds[kind].comparisons.append(False)

    def lost(self, slot: int) -> None:
        """A channel died: what its items missed was the gap's, not a disagreement."""
        self._unconfirmed = [u for u in self._unconfirmed if u[2] != slot]

    def confirm(self) -> None:
        """Count the disagreements whose channels have lived on since."""
        now = self._clock.monotonic()
        due = [u for u in self._unconfirmed if u[0] <= now]
        if due:
            self._unconfirmed = [u for u in self._unconfirmed if u[0] > now]
        for _, kind, _, differed in due:
            self._disagreed(kind, differed)

    def _disagreed(self, kind: TopicKind, differed: Mapping[str, object]) -> None:
        state = self._kinds[kind]
        state.comparisons.append(True)
        self.disagreements[kind] += 1
        if state.disagreements_logged < DISAGREEMENTS_LOGGED:
            state.disagreements_logged += 1
            log.warning("push disagrees with a poll", kind=kind, fields=sorted(differed))
        if sum(state.comparisons) >= DISAGREED_AT_LEAST:
            self._distrust(kind, "disagreeing")

    # ----- the verdict --------------------------------------------------------------------------
    def retry_due(self) -> list[TopicKind]:
        """Give the kinds whose time is up their trust back (from nothing); returns them."""
        now = self._clock.monotonic()
        due = [kind for kind, k in self._kinds.items() if k.distrusted is not None and k.retry_at <= now]
        for kind in due:
            self._kinds[kind] = _Kind()
            log.info("trying push again", kind=kind)
            self.on_change(kind)
        return due

    def _distrust(self, kind: TopicKind, why: Why) -> None:
        state = self._kinds[kind]
        if state.distrusted is not None:
            return
        state.distrusted = why
        state.retry_at = self._clock.monotonic() + RETRY_AFTER_SECONDS
        log.warning(
            "push no longer trusted for this kind; its items are polled",
            kind=kind,
            why=why,
            retry_in_s=RETRY_AFTER_SECONDS,
        )
        self.on_change(kind)


# ----- what a poll of a pushed item can say about push -------------------------------------------
# How long the service may take to publish a change (Unconfirmed): a poll that knows a change push
# has not shown is a disagreement only once the change is older than this.
PUBLISH_DELAY_SECONDS = 10.0
QUEUE_FIELDS = ("waiting", "interacting", "alerting", "available_agents", "agents_by_status", "member_agents")


def agent_differences(pushed: AgentState, polled: AgentState, now: float) -> dict[str, object]:
    """The fields a poll knows newer news of than push showed, news older than the publishing delay.

    Reports are ordered by the API's own times, so a poll older than push's news (the poll was slow)
    is no disagreement, and neither is a change too recent to have been published yet.
    """
    out: dict[str, object] = {}
    for field_name, since_name in (("routing_status", "status_since"), ("presence", "presence_since")):
        polled_value, polled_since = getattr(polled, field_name), getattr(polled, since_name)
        pushed_value, pushed_since = getattr(pushed, field_name), getattr(pushed, since_name)
        if polled_value is None or polled_since is None or polled_value == pushed_value:
            continue
        if pushed_since is not None and pushed_since >= polled_since:
            continue
        if now - polled_since > PUBLISH_DELAY_SECONDS:
            out[field_name] = True
    return out


def queue_differences(pushed: QueueState, polled: QueueState) -> dict[str, object]:
    """The fields of a queue's observation in which push and a poll differ (the oldest wait ages
    between the two, and is left out). Queue events carry no time: whether a difference is push's
    fault is decided later, by whether an event arrived after the poll was asked. A zero count is the
    same as none."""
    return {name: True for name in QUEUE_FIELDS if _nonzero(getattr(pushed, name)) != _nonzero(getattr(polled, name))}


def _nonzero(value: object) -> object:
    """A count by media type or status without its zeros: an event may name a zero a poll leaves out."""
    return {k: v for k, v in value.items() if v} if isinstance(value, Mapping) else value
