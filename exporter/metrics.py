"""Snapshot -> metric families: what `/metrics` says, as exposition text.

Metric names, labels and help texts here are the public contract (README, dashboards, alert rules
depend on them). Every function is a pure read of an immutable snapshot, so the page
(`exporter.page`) may call them from its worker thread and keep what they return for as long as
their inputs are the same objects. How often and in which pieces they run is the page's business.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from exporter import __version__
from exporter.exposition import escape, family, family_header, labels, value_text
from exporter.push.metrics import render_push
from exporter.push.telemetry import PushTelemetry
from exporter.snapshot import Agent, AgentState, Part, Queue, QueueState, Snapshot, Tally, merged

ROUTING_STATUSES = ("idle", "interacting", "communicating", "not_responding", "off_queue")


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The exporter's own counters at render time (the API client's, not the snapshot's)."""

    # Per OAuth client, by its label (`OAuthClient.label`): the `client` label of the families.
    requests: Mapping[tuple[str, str, str], int] = field(default_factory=dict)  # (endpoint, code, client) -> count
    rate_limit_remaining: Mapping[str, int] = field(default_factory=dict)
    rate_limited_total: Mapping[str, int] = field(default_factory=dict)
    budget_per_minute: Mapping[str, int] = field(default_factory=dict)
    parse_errors: Mapping[str, int] = field(default_factory=dict)  # endpoint -> responses of the wrong shape
    push: PushTelemetry | None = None  # None when push is off


Families = tuple[str, ...]  # exposition text in family order (one family may come in several pieces)
StateLines = tuple[str, str, str]  # one state part's lines of the three state families


def render(snapshot: Snapshot, telemetry: Telemetry) -> str:
    """The page as text, from scratch (the served page is built segment by segment: `exporter.page`)."""
    parts = (render_queues, render_queue_performance, render_agents)
    return "".join((*(text for part in parts for text in part(snapshot)), *render_self(snapshot, telemetry)))


def render_queues(snapshot: Snapshot) -> Families:
    queues = snapshot.queues
    by_queue = {qid: labels(queue_id=qid, queue_name=q.name) for qid, q in sorted(queues.items())}
    states = [(by_queue[qid], s) for qid, s in sorted(merged(snapshot.queue_states, queues).items())]

    def per_media(pick: Callable[[QueueState], Mapping[str, float]]) -> Iterator[tuple[str, float]]:
        for block, state in states:
            for media, value in sorted(pick(state).items()):
                yield f'{block},media_type="{media}"', value

    def per_status(state: QueueState) -> Iterator[tuple[str, int]]:
        known = {status: state.agents_by_status.get(status, 0) for status in ROUTING_STATUSES}
        yield from known.items()
        yield from sorted((s, n) for s, n in state.agents_by_status.items() if s not in known)

    return (
        family(
            "genesys_queue_info",
            "gauge",
            "Queue in scope (value 1), from GET /api/v2/routing/queues.",
            ((_info_labels(qid, q), 1) for qid, q in sorted(queues.items())),
        ),
        family(
            "genesys_queue_waiting_interactions",
            "gauge",
            "Interactions waiting in the queue now (oWaiting observation).",
            per_media(lambda s: s.waiting),
        ),
        family(
            "genesys_queue_interacting_interactions",
            "gauge",
            "Interactions connected to an agent now (oInteracting observation).",
            per_media(lambda s: s.interacting),
        ),
        family(
            "genesys_queue_alerting_interactions",
            "gauge",
            "Interactions ringing an agent now (oAlerting observation).",
            per_media(lambda s: s.alerting),
        ),
        family(
            "genesys_queue_oldest_waiting_seconds",
            "gauge",
            "Age of the oldest waiting interaction when polled (oLongestWaiting observation).",
            per_media(lambda s: s.oldest_waiting_seconds),
        ),
        family(
            "genesys_queue_available_agents",
            "gauge",
            "Agents on queue and idle (oOnQueueUsers observation, qualifier IDLE).",
            ((block, s.available_agents) for block, s in states),
        ),
        family(
            "genesys_queue_agents",
            "gauge",
            "Joined queue members by routing status (oUserRoutingStatuses observation).",
            ((f'{block},routing_status="{status}"', n) for block, s in states for status, n in per_status(s)),
        ),
        family(
            "genesys_queue_member_agents",
            "gauge",
            "Agents who are members of the queue (oMemberUsers observation).",
            ((block, s.member_agents) for block, s in states),
        ),
        family(
            "genesys_queue_joined_agents",
            "gauge",
            "Queue members who have joined the queue (oActiveUsers observation).",
            ((block, s.joined_agents) for block, s in states),
        ),
    )


# Today's figures, from conversation aggregates: (name suffix, help, value, who has it). A value of
# None (no AHT with nothing closed, no service level) is left out, never written as 0.
Who = Literal["queue", "agent", "both"]
TALLY_METRICS: tuple[tuple[str, str, Callable[[Tally], float | None], Who], ...] = (
    ("offered_interactions", "Interactions offered today (nOffered).", lambda t: t.offered, "queue"),
    ("answered_interactions", "Interactions answered today (tAnswered count).", lambda t: t.answered, "queue"),
    ("abandoned_interactions", "Interactions abandoned today (tAbandon count).", lambda t: t.abandoned, "queue"),
    ("connected_interactions", "Conversations connected today (nConnected).", lambda t: t.connected, "agent"),
    (
        "handled_interactions",
        "Closed conversations today: tHandle count (ends after wrap-up).",
        lambda t: t.handled,
        "both",
    ),
    ("handle_seconds", "Handle time of today's closed conversations: tHandle sum.", lambda t: t.handle_seconds, "both"),
    (
        "average_handle_seconds",
        "average handle time of today's closed conversations; absent when none closed.",
        lambda t: t.average_handle_seconds,
        "both",
    ),
    (
        "service_level_ratio",
        "share of today's answered interactions within the service level (oServiceLevel).",
        lambda t: t.service_level,
        "queue",
    ),
)


def _tally_families(prefix: str, subject: str, tallies: Sequence[tuple[str, Tally]], of: Who) -> Iterator[str]:
    """The tally families of queues or of agents (`of`), a line per (label block, tally) with a value."""
    for suffix, help_text, pick, who in TALLY_METRICS:
        if who in (of, "both"):
            samples = ((b, v) for b, t in tallies if (v := pick(t)) is not None)
            yield family(f"{prefix}_{suffix}", "gauge", f"{subject}: {help_text}", samples)


def with_zeros(tallies: Mapping[str, Tally], media_types: Iterable[str]) -> dict[str, Tally]:
    """A queue's tallies plus a zero tally for each media type it serves that had nothing today.

    The aggregates API leaves out empty groups; the live observation says which media a queue serves.
    """
    return {media: tallies.get(media, Tally()) for media in {*tallies, *media_types}}


def render_queue_performance(snapshot: Snapshot) -> Families:
    queues = snapshot.queues
    served = {qid: state.waiting.keys() for qid, state in merged(snapshot.queue_states, queues).items()}
    tallies = [
        (f'{labels(queue_id=qid, queue_name=queues[qid].name)},media_type="{media}"', tally)
        for qid, by_media in sorted(merged(snapshot.queue_tallies, queues).items())
        for media, tally in sorted(with_zeros(by_media, served.get(qid, ())).items())
    ]
    return tuple(_tally_families("genesys_queue", "Per queue and media type", tallies, "queue"))


STATE_FAMILIES = (
    (
        "genesys_agent_routing_status",
        "The agent's current routing status (value 1; one series per agent), from GET /api/v2/users.",
    ),
    ("genesys_agent_presence", "The agent's current system presence (value 1; one series per agent)."),
    ("genesys_agent_status_since_timestamp_seconds", "Unix time when the agent's current routing status began."),
)


def agent_label_blocks(agents: Mapping[str, Agent]) -> dict[str, str]:
    """Each agent's label block (user_id, agent_name), shared by every per-agent line."""
    return {uid: labels(user_id=uid, agent_name=a.name) for uid, a in sorted(agents.items())}


def render_agents(snapshot: Snapshot) -> Families:
    blocks = agent_label_blocks(snapshot.agents)
    return (
        *render_agent_info(snapshot),
        *render_agent_states(snapshot, blocks),
        *render_agent_tallies(snapshot, blocks),
    )


def render_agent_info(snapshot: Snapshot) -> Families:
    agents = sorted(snapshot.agents.items())
    return (
        family(
            "genesys_agent_info",
            "gauge",
            "Agent in scope (value 1), from queue members or the user list.",
            ((labels(user_id=uid, agent_name=a.name, division=a.division), 1) for uid, a in agents),
        ),
    )


def render_agent_states(snapshot: Snapshot, blocks: Mapping[str, str]) -> Families:
    """The three state families, each as its header and then one piece of lines per state part."""
    lines = [
        agent_state_lines(uids, part.items, blocks)
        for _, part, uids in agent_state_parts(snapshot.agent_states, blocks)
    ]
    return tuple(text for _, header, pieces in agent_state_families(lines) for text in (header, *pieces))


def agent_state_parts(
    parts: Mapping[Hashable, Part[AgentState]], blocks: Mapping[str, str]
) -> Iterator[tuple[Hashable, Part[AgentState], list[str]]]:
    """Each state part in page order with the agents it shows: where parts overlap, the newest part
    has the agent, and an agent out of scope (no label block) is left out."""
    owner: dict[str, Hashable] = {}
    for key, part in sorted(parts.items(), key=lambda kv: kv[1].taken_at):
        owner.update(dict.fromkeys(part.items, key))
    for key in sorted(parts, key=str):
        part = parts[key]
        yield key, part, sorted(uid for uid in part.items if owner[uid] == key and uid in blocks)


def agent_state_lines(uids: list[str], states: Mapping[str, AgentState], blocks: Mapping[str, str]) -> StateLines:
    """One part's lines of the three state families, for the agents given."""
    routing, presence, since = (name for name, _ in STATE_FAMILIES)
    pairs = [(blocks[uid], states[uid]) for uid in uids]
    return (
        "".join(
            f'{routing}{{{b},routing_status="{escape(s.routing_status)}"}} 1\n' for b, s in pairs if s.routing_status
        ),
        "".join(f'{presence}{{{b},presence="{escape(s.presence)}"}} 1\n' for b, s in pairs if s.presence),
        "".join(f"{since}{{{b}}} {value_text(s.status_since)}\n" for b, s in pairs if s.status_since is not None),
    )


def agent_state_families(parts: Sequence[StateLines]) -> Iterator[tuple[int, str, list[str]]]:
    """Each state family with lines: its index, its HELP/TYPE header, and a piece of lines per part.

    Pieces, not one joined text: at 50,000 agents a family is 7 MB, and joining it (then encoding
    it) would hold two more copies of what the compressor reads piece by piece anyway.
    """
    by_family: tuple[list[str], list[str], list[str]] = ([], [], [])
    for lines in parts:
        for pieces, text in zip(by_family, lines, strict=True):
            pieces.append(text)
    for index, ((name, help_text), pieces) in enumerate(zip(STATE_FAMILIES, by_family, strict=True)):
        if any(pieces):
            yield index, family_header(name, "gauge", help_text), pieces


def render_agent_tallies(snapshot: Snapshot, blocks: Mapping[str, str]) -> Iterator[str]:
    """All agents' tally lines: new figures come once a performance cycle, for every agent at once.

    Family by family, as the page's compressor asks for them: at 50,000 agents the families are
    23 MB of text, and made all at once they were the exporter's largest transient allocation.
    """
    tallies = merged(snapshot.agent_tallies, snapshot.agents)
    rows = [(blocks[uid], tallies[uid]) for uid in sorted(tallies)]
    return _tally_families("genesys_agent", "Per agent", rows, "agent")


def _info_labels(qid: str, queue: Queue) -> str:
    return labels(queue_id=qid, queue_name=queue.name, division=queue.division)


def render_self(snapshot: Snapshot, telemetry: Telemetry) -> Families:
    pollers = sorted(snapshot.pollers.items())

    def per_client(values: Mapping[str, int]) -> list[tuple[str, int]]:
        return [(labels(client=client), n) for client, n in values.items()]  # in the order configured

    return (
        family(
            "genesys_exporter_poller_up",
            "gauge",
            "1 when the poller's last cycle fully succeeded, 0 when it failed.",
            ((labels(poller=name), int(bool(s.up))) for name, s in pollers if s.up is not None),
        ),
        family(
            "genesys_exporter_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the poller's last fully successful cycle.",
            ((labels(poller=name), s.last_success) for name, s in pollers if s.last_success is not None),
        ),
        family(
            "genesys_exporter_poller_duration_seconds",
            "gauge",
            "Wall time the poller's last cycle took.",
            ((labels(poller=name), s.last_duration) for name, s in pollers if s.last_duration is not None),
        ),
        family(
            "genesys_exporter_poller_interval_seconds",
            "gauge",
            "The poller's effective cadence: the configured one, or longer when the rate budget cannot fit it.",
            ((labels(poller=name), s.interval) for name, s in pollers),
        ),
        family(
            "genesys_exporter_poller_configured_interval_seconds",
            "gauge",
            "The poller's configured cadence.",
            ((labels(poller=name), s.configured_interval) for name, s in pollers if s.configured_interval),
        ),
        family(
            "genesys_exporter_poller_requests_per_cycle",
            "gauge",
            "API requests the poller's last successful cycle sent: what the planner fits into the budget.",
            ((labels(poller=name), s.cost) for name, s in pollers if s.cost is not None),
        ),
        family(
            "genesys_exporter_api_requests_total",
            "counter",
            "Genesys Cloud API responses by endpoint, HTTP status ('error' when no response came) and OAuth client.",
            ((labels(endpoint=e, code=c, client=k), n) for (e, c, k), n in sorted(telemetry.requests.items())),
        ),
        family(
            "genesys_exporter_parse_errors_total",
            "counter",
            "Genesys responses that were not JSON or not of the expected shape, by endpoint (none were used).",
            ((labels(endpoint=e), n) for e, n in sorted(telemetry.parse_errors.items())),
        ),
        family(
            "genesys_exporter_rate_limited_total",
            "counter",
            "HTTP 429 responses received from Genesys Cloud, by OAuth client.",
            per_client(telemetry.rate_limited_total),
        ),
        family(
            "genesys_exporter_budget_requests_per_minute",
            "gauge",
            "Requests the exporter allows itself in any 60 s per OAuth client: rate limit less headroom, tightened "
            "by the server.",
            per_client(telemetry.budget_per_minute),
        ),
        family(
            "genesys_exporter_rate_limit_remaining",
            "gauge",
            "Requests left in the OAuth client's current rate-limit window (inin-ratelimit-* headers, else our count).",
            per_client(telemetry.rate_limit_remaining),
        ),
        *(render_push(telemetry.push) if telemetry.push is not None else ()),
        family(
            "genesys_exporter_build_info",
            "gauge",
            "Build information (value 1).",
            [(labels(version=__version__, python_version=platform.python_version()), 1)],
        ),
    )
