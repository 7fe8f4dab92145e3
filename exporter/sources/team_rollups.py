"""Each work team's agents by routing status and its closed conversations today, summed here.

The exporter already knows every agent's team, division, state and tallies; a dashboard that drew a
team's figures from the per-agent families would join 50,000 series to `genesys_agent_info` at every
refresh and every rule evaluation, which costs a Prometheus seconds a time. These few series per team
(and division: a team's members share its division, https://help.mypurecloud.com/articles/work-teams-overview/)
are what the team panels and the recording rules read instead, as `genesys_queue_agents` is for a
queue. They sum the exported agents (the operator's team and division choice), whatever the shard.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator

from exporter.exposition import family, labels
from exporter.snapshot import Snapshot, merged
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


def render_team_rollups(snapshot: Snapshot, selection: Selection) -> Iterator[Piece]:
    if not labels_settled(snapshot, selection.info_waits_for):
        return  # an agent counted in no team, then in its own, would leave a dead series behind
    agents, rows = snapshot[AGENTS], exported_agents(snapshot, selection).by_id
    members, listed, teams = snapshot[TEAM_MEMBERS_OF], snapshot[LISTED_TEAM_OF], snapshot[TEAMS_BY_ID]
    states, tallies = merged(snapshot[AGENT_STATES], rows), merged(snapshot[AGENT_TALLIES], rows)
    size: Counter[str] = Counter()
    by_status: dict[str, Counter[str]] = defaultdict(Counter)  # a team without a known state has none
    handled: Counter[str] = Counter()
    handle_seconds: dict[str, float] = defaultdict(float)
    told: set[str] = set()  # teams with at least one agent's tally
    for uid in rows:
        team = team_of(uid, members, listed, teams)
        group = labels(team_id=team.id if team else "", team=team.name if team else "", division=agents[uid].division)
        size[group] += 1
        state = states.get(uid)
        if state is not None and state.routing_status in ROUTING_CODES:
            by_status[group][state.routing_status] += 1
        tally = tallies.get(uid)
        if tally is not None:
            told.add(group)
            handled[group] += tally.handled
            handle_seconds[group] += tally.handle_seconds
    groups = sorted(size)
    chosen = selection.metrics
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
        yield (
            None,
            family(
                BY_STATUS.name,
                "gauge",
                "Exported agents per work team and division by current routing status; an agent whose status is "
                "unknown is not counted, a team without any known status has no series.",
                (
                    (f'{g},routing_status="{status}"', by_status[g][status])
                    for g in groups
                    if g in by_status
                    for status in ROUTING_CODES
                ),
            ),
        )
    for metric, sums, what in (
        (HANDLED, handled, "Conversations the team's agents handled (closed) today"),
        (HANDLE_SECONDS, handle_seconds, "Handle time (tHandle) of the team's closed conversations today"),
    ):
        if metric.name in chosen:
            yield (
                None,
                family(
                    metric.name,
                    "gauge",
                    f"{what}, summed from its agents' own figures.",
                    ((g, sums[g]) for g in groups if g in told),
                ),
            )


SOURCE = Source(
    name="team_rollups",
    show=Show(
        segment="team_rollups",
        collector="teams",
        reads=(*ExportedAgents.reads, AGENT_STATES, AGENT_TALLIES, SETTLED),
        render=render_team_rollups,
        paced=True,  # it reads every agent's state, as the per-agent segments do
        metrics=(MEMBERS, BY_STATUS, HANDLED, HANDLE_SECONDS),
    ),
)
