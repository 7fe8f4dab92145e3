"""A live contact centre: queues, agents and interactions, simulated event by event.

Interactions arrive per queue and media type as Poisson processes, wait, ring an idle joined agent
who is on queue, are talked (sometimes held), wrapped up, or abandoned; agents go on breaks and
meals and log off and on. One seeded `random.Random` is consumed only in event order, and time
advances lazily to whatever instant is asked about, so the state at time T is the same however
often the model is queried: a seed gives a reproducible org.

The model also keeps the ledger of what happened today and yesterday (offers, answers, abandons,
handle times), written when each thing ends, as Genesys does, to answer aggregate queries.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from exporter.simulator.ledger import Ledger, LedgerEntry

ROUTING_STATUSES = ("OFF_QUEUE", "IDLE", "INTERACTING", "NOT_RESPONDING", "COMMUNICATING")
SYSTEM_PRESENCES = ("AVAILABLE", "AWAY", "BUSY", "OFFLINE", "IDLE", "ON_QUEUE", "MEAL", "TRAINING", "MEETING", "BREAK")
PRESENCE_NAMES = {p: p.replace("_", " ").title() for p in SYSTEM_PRESENCES}
MEDIA_TYPES = ("voice", "chat", "email", "message", "callback")
MEDIA_SETTING_KEY = {"voice": "call", "chat": "chat", "email": "email", "message": "message", "callback": "callback"}
# Mean talk seconds by media; wrap-up and hold are drawn separately.
TALK_SECONDS = {"voice": 240.0, "chat": 420.0, "email": 600.0, "message": 360.0, "callback": 200.0}
PATIENCE_SECONDS = {"voice": 150.0, "chat": 300.0, "email": 3600.0, "message": 900.0, "callback": 1800.0}
SERVICE_LEVEL_SECONDS = 20.0
LEDGER_KEEP_SECONDS = 2 * 86400.0

_PREFIXES = ("Support", "Sales", "Billing", "Retention", "Tech", "Claims", "VIP", "Onboarding")
_FIRST = (
    "Ann",
    "Bob",
    "Chloe",
    "Dara",
    "Eoin",
    "Fiona",
    "Gus",
    "Hana",
    "Ivan",
    "Jo",
    "Kai",
    "Lena",
    "Mo",
    "Nia",
    "Owen",
    "Pia",
    "Quinn",
    "Rui",
    "Sara",
    "Tom",
    "Uma",
    "Vik",
    "Wen",
    "Xia",
    "Yusuf",
    "Zoe",
)
_LAST = (
    "Byrne",
    "Chen",
    "Diaz",
    "Evans",
    "Fox",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Kelly",
    "Lopez",
    "Murphy",
    "Novak",
    "O'Brien",
    "Patel",
    "Quirke",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Walsh",
    "Young",
    "Zhang",
)


@dataclass(frozen=True, slots=True)
class SimConfig:
    queues: int = 20
    agents: int = 200
    seed: int = 1
    load: float = 0.92  # offered work / on-queue capacity: near 1 keeps queues interesting
    on_queue_share: float = 0.75  # agents on queue at the start
    answer_probability: float = 0.97  # else the agent is NOT_RESPONDING for a while
    wrap_up_seconds: float = 45.0
    divisions: int = 3
    agents_per_team: int = 250  # work teams of about this many agents, each within one division
    in_a_team: float = 0.9  # the share of agents in a team (a user belongs to one at most)
    others: int = 0  # active users who are no queue's member (supervisors, administrators), besides the agents
    warm_up_seconds: float = 600.0  # simulated before anyone looks, so the org starts mid-morning busy


@dataclass(slots=True)
class Conversation:
    id: str
    queue_id: str
    media: str
    arrived: float  # when it entered the queue (waiting time counts from here)
    state: str = "waiting"  # waiting, alerting, interacting
    agent_id: str | None = None
    answered: float | None = None
    session: str = ""


@dataclass(slots=True)
class SimQueue:
    id: str
    name: str
    division: tuple[str, str]
    media: tuple[str, ...]
    members: list[str] = field(default_factory=list)  # agent ids
    waiting: dict[str, Conversation] = field(default_factory=dict)  # arrival order
    active: dict[str, Conversation] = field(default_factory=dict)  # alerting or interacting


@dataclass(slots=True)
class SimAgent:
    id: str
    name: str
    division: tuple[str, str]
    queues: dict[str, bool]  # queue id -> joined
    presence: str  # system presence
    presence_since: float
    routing_status: str
    status_since: float
    conversation: Conversation | None = None
    busy_until_presence: str | None = None  # presence to take once the current interaction ends
    idle_since: float = 0.0
    pinned: bool = False  # held in its presence by a scenario: the day's rhythm leaves it alone
    team: str | None = None  # work team id


@dataclass(frozen=True, slots=True)
class SimTeam:
    id: str
    name: str
    division: tuple[str, str]
    members: list[str] = field(default_factory=list)  # agent ids


@dataclass(frozen=True, slots=True)
class QueueTruth:
    """What the real API would observe for a queue right now."""

    waiting: dict[str, int]
    interacting: dict[str, int]
    alerting: dict[str, int]
    oldest_waiting_since: dict[str, float]  # media -> epoch seconds of the oldest waiting arrival
    statuses: dict[str, int]  # routing status of joined members -> count
    on_queue: dict[str, int]  # routing status of joined members who are ON_QUEUE -> count
    presences: dict[str, int]  # system presence of joined members -> count
    members: int
    joined: int
    off_queue: int


_MemberCounts = tuple[dict[str, int], dict[str, int], dict[str, int], int]  # statuses, on queue, presences, joined


class ChangeListener(Protocol):
    """Told of each change as the model makes it (the Notifications API publishes from these).

    Called synchronously from inside the event loop of `advance`: a listener must be quick and must
    not touch the model's random stream (it never draws), so a seed gives the same org with or
    without listeners.
    """

    def agent_changed(self, agent: SimAgent) -> None:
        """The agent's routing status and/or presence has just changed (read its state now)."""

    def queue_changed(self, queue_id: str) -> None:
        """An interaction of the queue has just arrived, left, or moved between waiting/alerting/talking."""


class OrgModel:
    def __init__(self, config: SimConfig, start: float) -> None:
        self.config = config
        self.now = start
        self.listeners: list[ChangeListener] = []  # the change feed; empty costs one loop test a change
        self._rng = random.Random(config.seed)
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.presence_ids = {p: self._uuid() for p in SYSTEM_PRESENCES}
        self.divisions = [(self._uuid(), name) for name in ("Home", "Europe", "Americas", "APAC")[: config.divisions]]
        self.queues: dict[str, SimQueue] = {}
        self.agents: dict[str, SimAgent] = {}
        self.teams: dict[str, SimTeam] = {}
        self.ledger = Ledger()
        self._by_name: list[SimAgent] = []
        self.held_queues: set[str] = set()  # scenario: no new arrivals
        # Queue id -> its joined members counted, until one of them changes: a big org observes every
        # queue every second, and each has dozens of members.
        self._member_counts: dict[str, _MemberCounts] = {}
        self._build()
        self._rates = self._arrival_rates()
        for (queue_id, media), rate in sorted(self._rates.items()):
            self._schedule(self.now + self._rng.expovariate(rate), functools.partial(self._arrive, queue_id, media))
        for agent in self.agents.values():
            self._schedule_presence_change(agent)
        self._warm_up()

    # ----- construction -------------------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _build(self) -> None:
        rng = self._rng
        for i in range(self.config.queues):
            media = (
                "voice",
                *(
                    m
                    for m, p in (("chat", 0.4), ("email", 0.2), ("message", 0.2), ("callback", 0.1))
                    if rng.random() < p
                ),
            )
            queue = SimQueue(
                self._uuid(),
                f"{_PREFIXES[i % len(_PREFIXES)]} {i + 1:03d}",
                self.divisions[i % len(self.divisions)],
                media,
            )
            self.queues[queue.id] = queue
        queue_ids = list(self.queues)
        names: set[str] = set()
        for _ in range(self.config.agents):
            name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            while name in names:
                name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}-{rng.randint(2, 99)}"
            names.add(name)
            home = rng.randrange(len(queue_ids))
            count = min(len(queue_ids), rng.choice((1, 2, 2, 3, 3, 4)))
            picks = {queue_ids[(home + k * 7) % len(queue_ids)] for k in range(count)}
            on_queue = rng.random() < self.config.on_queue_share
            presence = "ON_QUEUE" if on_queue else rng.choice(("AVAILABLE", "BREAK", "MEAL", "OFFLINE", "MEETING"))
            agent = SimAgent(
                id=self._uuid(),
                name=name,
                division=self.divisions[home % len(self.divisions)],
                queues={q: rng.random() < 0.9 for q in sorted(picks)},
                presence=presence,
                presence_since=self.now - rng.uniform(0, 3600),
                routing_status="IDLE" if on_queue else "OFF_QUEUE",
                status_since=self.now - rng.uniform(0, 600),
            )
            agent.idle_since = agent.status_since
            self.agents[agent.id] = agent
            for q in agent.queues:
                self.queues[q].members.append(agent.id)
        self._build_teams()
        self._build_others()

    def _build_others(self) -> None:
        """Users of the org who take no queue's calls, from a generator of their own: the agents are as
        they were. The users listing has them; no queue's member listing does."""
        rng = random.Random(self.config.seed + 2)
        for n in range(self.config.others):
            user = SimAgent(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)} (supervisor {n + 1})",
                division=rng.choice(self.divisions),
                queues={},
                presence=rng.choice(("AVAILABLE", "OFFLINE", "MEETING")),
                presence_since=self.now - rng.uniform(0, 3600),
                routing_status="OFF_QUEUE",
                status_since=self.now - rng.uniform(0, 600),
            )
            user.idle_since = user.status_since
            self.agents[user.id] = user

    def _build_teams(self) -> None:
        """Teams of a division's agents, from a generator of their own: the rest of the org is as it was."""
        rng = random.Random(self.config.seed + 1)
        count = max(len(self.divisions), round(self.config.agents / self.config.agents_per_team))
        teams = [
            SimTeam(str(uuid.UUID(int=rng.getrandbits(128), version=4)), f"Team {i + 1:03d}", division)
            for i, division in enumerate(self.divisions[n % len(self.divisions)] for n in range(count))
        ]
        for team in teams:
            self.teams[team.id] = team
        for agent in self.agents.values():
            own = [team for team in teams if team.division == agent.division]
            if own and rng.random() < self.config.in_a_team:
                team = rng.choice(own)
                agent.team = team.id
                team.members.append(agent.id)

    def _arrival_rates(self) -> dict[tuple[str, str], float]:
        """Per queue and media: share of the on-queue capacity its joined members bring, times the load."""
        rates: dict[tuple[str, str], float] = {}
        for queue in self.queues.values():
            capacity = (
                sum(1 / len(self.agents[a].queues) for a in queue.members if self.agents[a].queues[queue.id])
                * self.config.on_queue_share
            )
            weight = self._rng.lognormvariate(0, 0.4)
            for media in queue.media:
                share = 0.7 if media == "voice" else 0.3 / max(1, len(queue.media) - 1)
                if len(queue.media) == 1:
                    share = 1.0
                mean_handle = TALK_SECONDS[media] + self.config.wrap_up_seconds
                rates[(queue.id, media)] = max(1e-4, self.config.load * capacity * share * weight / mean_handle)
        return rates

    def _warm_up(self) -> None:
        """Start busy: simulate `warm_up_seconds` before the start time, then look."""
        shift = self.config.warm_up_seconds
        target, self.now = self.now, self.now - shift
        self._events = [(t - shift, s, fn) for t, s, fn in self._events]
        heapq.heapify(self._events)
        for agent in self.agents.values():
            agent.status_since -= shift
            agent.presence_since -= shift
            agent.idle_since -= shift
        self.advance(target)

    # ----- the event loop -----------------------------------------------------------------------
    def _schedule(self, at: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (at, next(self._seq), action))

    def advance(self, now: float) -> None:
        """Process every event up to `now` (never backwards)."""
        while self._events and self._events[0][0] <= now:
            at, _, action = heapq.heappop(self._events)
            self.now = max(self.now, at)
            action()
        self.now = max(self.now, now)
        self.ledger.keep_since(self.now - LEDGER_KEEP_SECONDS)

    def _record(self, conv: Conversation, metric: str, value_ms: float | None = None, user: str | None = None) -> None:
        self.ledger.record(LedgerEntry(self.now, conv.queue_id, conv.media, user, metric, value_ms))

    def agents_by_name(self) -> list[SimAgent]:
        """The `/users` listing order, sorted once (agents are only ever added, at build time)."""
        if len(self._by_name) != len(self.agents):
            self._by_name = sorted(self.agents.values(), key=lambda a: a.name)
        return self._by_name

    def _set_status(self, agent: SimAgent, status: str, *, tell: bool = True) -> bool:
        """Change the routing status; `tell=False` when the caller reports the change itself."""
        if agent.routing_status == status:
            return False
        agent.routing_status, agent.status_since = status, self.now
        if status == "IDLE":
            agent.idle_since = self.now
        if tell:
            self._agent_changed(agent)
        return True

    def _agent_changed(self, agent: SimAgent) -> None:
        for queue_id in agent.queues:  # their members' counts are counted again when next observed
            self._member_counts.pop(queue_id, None)
        for listener in self.listeners:
            listener.agent_changed(agent)

    def _queue_changed(self, queue_id: str) -> None:
        for listener in self.listeners:
            listener.queue_changed(queue_id)

    # ----- interactions -------------------------------------------------------------------------
    def _arrive(self, queue_id: str, media: str, patience: float | None = None) -> None:
        if patience is None:  # a Poisson arrival, which schedules the next one
            rate = self._rates[(queue_id, media)]
            self._schedule(self.now + self._rng.expovariate(rate), lambda: self._arrive(queue_id, media))
            if queue_id in self.held_queues:
                return
            patience = self._rng.expovariate(1 / PATIENCE_SECONDS[media])
        conv = Conversation(self._uuid(), queue_id, media, self.now, session=self._uuid())
        self.queues[queue_id].waiting[conv.id] = conv
        self._record(conv, "nOffered")
        self._queue_changed(queue_id)
        if math.isfinite(patience):
            self._schedule(self.now + patience, lambda: self._abandon(conv))
        self._dispatch_queue(self.queues[queue_id])

    def _abandon(self, conv: Conversation) -> None:
        queue = self.queues[conv.queue_id]
        if queue.waiting.pop(conv.id, None) is not None:
            self._record(conv, "tAbandon", (self.now - conv.arrived) * 1000)
            self._record(conv, "oServiceLevelMiss")
            self._queue_changed(conv.queue_id)

    def _idle_agent_for(self, queue: SimQueue) -> SimAgent | None:
        best: SimAgent | None = None
        for agent_id in queue.members:
            agent = self.agents[agent_id]
            available = agent.queues[queue.id] and agent.presence == "ON_QUEUE" and agent.routing_status == "IDLE"
            if available and (best is None or agent.idle_since < best.idle_since):
                best = agent
        return best

    def _dispatch_queue(self, queue: SimQueue) -> None:
        while queue.waiting:
            agent = self._idle_agent_for(queue)
            if agent is None:
                return
            self._offer(next(iter(queue.waiting.values())), agent)

    def _dispatch_agent(self, agent: SimAgent) -> None:
        """An agent just became idle: take the oldest interaction waiting in any of their queues."""
        oldest: Conversation | None = None
        for queue_id, joined in agent.queues.items():
            waiting = self.queues[queue_id].waiting
            if joined and waiting:
                first = next(iter(waiting.values()))
                if oldest is None or first.arrived < oldest.arrived:
                    oldest = first
        if oldest is not None:
            self._offer(oldest, agent)

    def _offer(self, conv: Conversation, agent: SimAgent) -> None:
        queue = self.queues[conv.queue_id]
        del queue.waiting[conv.id]
        queue.active[conv.id] = conv
        conv.state, conv.agent_id = "alerting", agent.id
        agent.conversation = conv
        self._queue_changed(queue.id)
        self._set_status(agent, "INTERACTING")
        ring = self._rng.uniform(2, 8)
        if self._rng.random() < self.config.answer_probability:
            self._schedule(self.now + ring, lambda: self._answer(conv, agent))
        else:
            self._schedule(self.now + ring, lambda: self._not_responding(conv, agent))

    def _not_responding(self, conv: Conversation, agent: SimAgent) -> None:
        queue = self.queues[conv.queue_id]
        queue.active.pop(conv.id, None)
        conv.state, conv.agent_id = "waiting", None
        queue.waiting[conv.id] = conv
        queue.waiting = dict(sorted(queue.waiting.items(), key=lambda kv: kv[1].arrived))
        agent.conversation = None
        self._queue_changed(queue.id)
        self._set_status(agent, "NOT_RESPONDING")
        self._schedule(self.now + self._rng.uniform(30, 120), lambda: self._back_on_queue(agent))
        self._dispatch_queue(queue)

    def _back_on_queue(self, agent: SimAgent) -> None:
        if agent.pinned and agent.busy_until_presence and agent.conversation is None:
            # a scenario moved the agent while an offer was ringing, and the offer went unanswered
            presence, agent.busy_until_presence = agent.busy_until_presence, None
            self._take_presence(agent, presence)
            return
        if agent.routing_status in ("NOT_RESPONDING", "COMMUNICATING") and agent.presence == "ON_QUEUE":
            self._set_status(agent, "IDLE")
            self._dispatch_agent(agent)

    def _answer(self, conv: Conversation, agent: SimAgent) -> None:
        conv.state, conv.answered = "interacting", self.now
        self._queue_changed(conv.queue_id)
        wait = self.now - conv.arrived
        self._record(conv, "tAnswered", wait * 1000)
        self._record(conv, "oServiceLevelHit" if wait <= SERVICE_LEVEL_SECONDS else "oServiceLevelMiss")
        self._record(conv, "nConnected", user=agent.id)
        talk = self._rng.lognormvariate(math.log(TALK_SECONDS[conv.media]) - 0.18, 0.6)
        hold = self._rng.uniform(20, 90) if conv.media == "voice" and self._rng.random() < 0.2 else 0.0
        self._schedule(self.now + talk + hold, lambda: self._end_talk(conv, agent, talk, hold))

    def _end_talk(self, conv: Conversation, agent: SimAgent, talk: float, hold: float) -> None:
        self._record(conv, "tTalk", talk * 1000, agent.id)
        self._record(conv, "tTalkComplete", talk * 1000, agent.id)
        if hold:
            self._record(conv, "tHeld", hold * 1000, agent.id)
        self.queues[conv.queue_id].active.pop(conv.id, None)  # the customer is gone; the agent wraps up
        self._queue_changed(conv.queue_id)
        acw = self._rng.uniform(0.5, 1.5) * self.config.wrap_up_seconds
        self._schedule(self.now + acw, lambda: self._end_wrap_up(conv, agent, talk + hold + acw, acw))

    def _end_wrap_up(self, conv: Conversation, agent: SimAgent, handle: float, acw: float) -> None:
        self._record(conv, "tAcw", acw * 1000, agent.id)
        self._record(conv, "tHandle", handle * 1000, agent.id)
        agent.conversation = None
        if agent.busy_until_presence:
            presence, agent.busy_until_presence = agent.busy_until_presence, None
            self._take_presence(agent, presence)
            return
        self._set_status(agent, "IDLE")
        self._dispatch_agent(agent)

    # ----- presence over the day ----------------------------------------------------------------
    def _schedule_presence_change(self, agent: SimAgent) -> None:
        mean = 2700.0 if agent.presence == "ON_QUEUE" else 900.0
        self._schedule(self.now + self._rng.expovariate(1 / mean), lambda: self._presence_due(agent))

    def _presence_due(self, agent: SimAgent) -> None:
        if agent.pinned:
            self._schedule_presence_change(agent)
            return
        if agent.presence == "ON_QUEUE":
            draw = self._rng.random()
            target = (
                "BREAK"
                if draw < 0.4
                else "MEAL"
                if draw < 0.6
                else "MEETING"
                if draw < 0.75
                else ("AVAILABLE" if draw < 0.9 else "OFFLINE")
            )
        else:
            target = "ON_QUEUE"
        if agent.conversation is not None:
            agent.busy_until_presence = target  # leave after the wrap-up
        else:
            self._take_presence(agent, target)
        self._schedule_presence_change(agent)

    def _take_presence(self, agent: SimAgent, presence: str) -> None:
        """Presence and the routing status it brings change together: one change, told once."""
        moved = agent.presence != presence
        agent.presence, agent.presence_since = presence, self.now
        if presence == "ON_QUEUE":
            communicating = self._rng.random() < 0.05
            moved |= self._set_status(agent, "COMMUNICATING" if communicating else "IDLE", tell=False)
            if moved:
                self._agent_changed(agent)
            if communicating:
                self._schedule(self.now + self._rng.uniform(60, 300), lambda: self._back_on_queue(agent))
            else:
                self._dispatch_agent(agent)
        else:
            moved |= self._set_status(agent, "OFF_QUEUE", tell=False)
            if moved:
                self._agent_changed(agent)

    # ----- scenarios (tests and demos steer the org through these) ------------------------------
    def unstaff(self, queue_id: str) -> list[str]:
        """Every joined member of the queue goes on break and stays there; new arrivals stop.

        Interactions already connected carry on; the members leave after their wrap-up.
        """
        self.held_queues.add(queue_id)
        members = [a for a in self.queues[queue_id].members if self.agents[a].queues[queue_id]]
        for agent_id in members:
            agent = self.agents[agent_id]
            agent.pinned = True
            if agent.conversation is not None:
                agent.busy_until_presence = "BREAK"
            else:
                self._take_presence(agent, "BREAK")
        return members

    def add_waiting(self, queue_id: str, media: str, count: int = 1) -> None:
        """Interactions that wait without ever abandoning."""
        for _ in range(count):
            self._arrive(queue_id, media, patience=math.inf)

    def set_presence(self, agent_id: str, presence: str) -> None:
        """The agent takes `presence` now and keeps it (pinned); routing status follows as it would.

        An agent with an interaction changes presence at once but stays INTERACTING until the
        wrap-up ends, when the routing status the new presence brings follows.
        """
        agent = self.agents[agent_id]
        agent.pinned, agent.busy_until_presence = True, None
        if agent.conversation is None:
            self._take_presence(agent, presence)
            return
        if agent.presence != presence:
            agent.presence, agent.presence_since = presence, self.now
            self._agent_changed(agent)
        agent.busy_until_presence = presence

    def staff(self, agent_id: str) -> None:
        """The agent goes on queue (and stays): they take what waits in their queues."""
        agent = self.agents[agent_id]
        agent.pinned, agent.busy_until_presence = True, None
        if agent.conversation is None:
            self._take_presence(agent, "ON_QUEUE")
        if agent.routing_status == "COMMUNICATING":
            self._set_status(agent, "IDLE")
            self._dispatch_agent(agent)

    # ----- what an observer sees ----------------------------------------------------------------
    def queue_truth(self, queue_id: str) -> QueueTruth:
        queue = self.queues[queue_id]
        waiting = dict.fromkeys(queue.media, 0)
        interacting = dict.fromkeys(queue.media, 0)
        alerting = dict.fromkeys(queue.media, 0)
        oldest: dict[str, float] = {}
        for conv in queue.waiting.values():
            waiting[conv.media] += 1
            oldest[conv.media] = min(oldest.get(conv.media, math.inf), conv.arrived)
        for conv in queue.active.values():
            (alerting if conv.state == "alerting" else interacting)[conv.media] += 1
        members = self._member_counts.get(queue_id)
        if members is None:
            members = self._member_counts[queue_id] = self._count_members(queue)
        statuses, on_queue, presences, joined = members
        return QueueTruth(
            waiting=waiting,
            interacting=interacting,
            alerting=alerting,
            oldest_waiting_since=oldest,
            statuses=dict(statuses),
            on_queue=dict(on_queue),
            presences=dict(presences),
            members=len(queue.members),
            joined=joined,
            off_queue=statuses.get("OFF_QUEUE", 0),
        )

    def _count_members(self, queue: SimQueue) -> _MemberCounts:
        """The queue's joined members by routing status, by presence, and on queue by routing status."""
        statuses: dict[str, int] = defaultdict(int)
        on_queue: dict[str, int] = defaultdict(int)
        presences: dict[str, int] = defaultdict(int)
        joined = 0
        for agent_id in queue.members:
            agent = self.agents[agent_id]
            if not agent.queues[queue.id]:
                continue
            joined += 1
            statuses[agent.routing_status] += 1
            presences[agent.presence] += 1
            if agent.presence == "ON_QUEUE":
                on_queue[agent.routing_status] += 1
        return dict(statuses), dict(on_queue), dict(presences), joined

    def waiting_conversations(self, queue_id: str, media: str) -> Iterator[Conversation]:
        return (c for c in self.queues[queue_id].waiting.values() if c.media == media)

    def active_conversations(self, queue_id: str, media: str, state: str) -> Iterator[Conversation]:
        return (c for c in self.queues[queue_id].active.values() if c.media == media and c.state == state)
