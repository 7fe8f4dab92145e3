"""Each work team's agents by routing status and its closed conversations today, summed here.

The exporter already knows every agent's team, division, state and tallies; a dashboard that drew a
team's figures from the per-agent families would join 50,000 series to `genesys_agent_info` at every
refresh and every rule evaluation, which costs a Prometheus seconds a time. These few series per team
(and division: a team's members share its division, https://help.mypurecloud.com/articles/work-teams-overview/)
are what the team panels and the recording rules read instead, as `genesys_queue_agents` is for a
queue. They sum the exported agents (the operator's team and division choice), whatever the shard.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping

from exporter.exposition import family, labels
from exporter.snapshot import Key, Snapshot, merged
from exporter.sources.agent_directory import AGENTS, ExportedAgents, exported_agents
from exporter.sources.agent_states import AGENT_STATES, ROUTING_CODES
from exporter.sources.performance import AGENT_TALLIES
from exporter.sources.settled import SETTLED, labels_settled
from exporter.sources.source import Metric, Piece, Selection, Show, Source
from exporter.sources.teams import LISTED_TEAM_OF, TEAM_MEMBERS_OF, TEAMS_BY_ID, team_of

MEMBERS = Metric("genesys_team_member_agents")
BY_STATUS = Metric("genesys_team_agents")
HANDLED = Metric("genesys_team_handled_interactions")
HANDLE_SECONDS = Metric("genesys_team_handle_seconds")


class Grouped:
    """Each exported agent's team group (its label block) and the groups' sizes, kept while the exported
    agents and the teams are the same objects: a rebuild then only counts states. Any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[tuple[object, ...], tuple[dict[str, str], Counter[str]]] | None = None

    def __call__(self, snapshot: Snapshot, selection: Selection) -> tuple[dict[str, str], Counter[str]]:
        exported = exported_agents(snapshot, selection)
        inputs = (exported, *(snapshot[key] for key in ExportedAgents.reads))
        with self._lock:
            if self._last is None or any(a is not b for a, b in zip(self._last[0], inputs, strict=True)):
                self._last = (inputs, self._groups(snapshot, exported.by_id))
            return self._last[1]

    @staticmethod
    def _groups(snapshot: Snapshot, rows: Mapping[str, object]) -> tuple[dict[str, str], Counter[str]]:
        agents, members, listed = snapshot[AGENTS], snapshot[TEAM_MEMBERS_OF], snapshot[LISTED_TEAM_OF]
        teams = snapshot[TEAMS_BY_ID]
        blocks: dict[tuple[str, str], str] = {}
        group_of = {}
        for uid in rows:
            team = team_of(uid, members, listed, teams)
            key = (team.id if team else "", agents[uid].division)
            block = blocks.get(key)
            if block is None:
                block = blocks[key] = labels(team_id=key[0], team=team.name if team else "", division=key[1])
            group_of[uid] = block
        return group_of, Counter(group_of.values())


grouped = Grouped()


def render_team_states(snapshot: Snapshot, selection: Selection) -> Iterator[Piece]:
    if not labels_settled(snapshot, selection.info_waits_for):
        return  # an agent counted in no team, then in its own, would leave a dead series behind
    group_of, size = grouped(snapshot, selection)
    groups, chosen = sorted(size), selection.metrics
    if MEMBERS.name in chosen:
        yield (
            None,
            family(
                MEMBERS.name,
                "gauge",
                "Exported agents per work team and division ('' for none).",
                ((g, size[g]) for g in groups),
            ),
        )
    if BY_STATUS.name in chosen:
        states = merged(snapshot[AGENT_STATES], group_of)
        counted = Counter((group_of[uid], state.routing_status) for uid, state in states.items())
        known = {group for (group, status), _ in counted.items() if status in ROUTING_CODES}
        yield (
            None,
            family(
                BY_STATUS.name,
                "gauge",
                "Exported agents per work team and division by current routing status; an agent whose status is "
                "unknown is not counted, a team without any known status has no series.",
                (
                    (f'{g},routing_status="{status}"', counted[g, status])
                    for g in groups
                    if g in known
                    for status in ROUTING_CODES
                ),
            ),
        )


def render_team_tallies(snapshot: Snapshot, selection: Selection) -> Iterator[Piece]:
    if not labels_settled(snapshot, selection.info_waits_for):
        return
    group_of, size = grouped(snapshot, selection)
    handled: Counter[str] = Counter()
    handle_seconds: dict[str, float] = defaultdict(float)
    for uid, tally in merged(snapshot[AGENT_TALLIES], group_of).items():
        handled[group_of[uid]] += tally.handled
        handle_seconds[group_of[uid]] += tally.handle_seconds
    for metric, sums, what in (
        (HANDLED, handled, "Conversations the team's agents handled (closed) today"),
        (HANDLE_SECONDS, handle_seconds, "Handle time (tHandle) of the team's closed conversations today"),
    ):
        if metric.name in selection.metrics:
            yield (
                None,
                family(
                    metric.name,
                    "gauge",
                    f"{what}, summed from its agents' own figures.",
                    ((g, sums[g]) for g in sorted(size) if g in sums),
                ),
            )


def team_segment(
    segment: str, render: Callable[[Snapshot, Selection], Iterable[Piece]], reads: Key, *metrics: Metric
) -> Show:
    """A segment of team sums: in the `teams` part, paced as the per-agent segments it sums are (each
    reads every agent), rebuilt only when what it sums moves."""
    return Show(
        segment=segment,
        collector="teams",
        reads=(*ExportedAgents.reads, reads, SETTLED),
        render=render,
        paced=True,
        metrics=metrics,
    )


# Two segments: the states move many times a second, today's figures once a cycle.
STATES_SOURCE = Source(
    name="team_states", show=team_segment("team_states", render_team_states, AGENT_STATES, MEMBERS, BY_STATUS)
)
TALLIES_SOURCE = Source(
    name="team_tallies", show=team_segment("team_tallies", render_team_tallies, AGENT_TALLIES, HANDLED, HANDLE_SECONDS)
)
