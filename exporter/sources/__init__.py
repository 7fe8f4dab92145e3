"""The registry of data sources, in page order: everything else derives its tables from this list.

Each source is a module of this package ending in a `Source` declaration (`exporter.sources.source`):
the snapshot key it keeps, the scheduler jobs that fetch it, and the page segment that shows it.
The app builds its jobs from `polls`, the page its segments and `collect[]` from `shows`.
"""

from __future__ import annotations

from collections.abc import Sequence

from exporter.config import ENV_NAMES, ConfigError, Settings
from exporter.sources import (
    agent_directory,
    agent_states,
    performance,
    pushed,
    queue_directory,
    queue_states,
    team_rollups,
    teams,
    user_listing,
)
from exporter.sources.source import Metric, Poll, Selection, Show, Source

SOURCES: tuple[Source, ...] = (
    queue_directory.SOURCE,
    queue_states.SOURCE,
    performance.QUEUE_TALLIES_SOURCE,
    agent_directory.SOURCE,
    user_listing.SOURCE,
    agent_states.SOURCE,
    pushed.SOURCE,
    teams.SOURCE,
    performance.AGENT_TALLIES_SOURCE,
    team_rollups.STATES_SOURCE,
    team_rollups.TALLIES_SOURCE,
)
SHOWS: tuple[Show, ...] = tuple(source.show for source in SOURCES if source.show is not None)
METRICS: dict[str, Metric] = {metric.name: metric for show in SHOWS for metric in show.metrics}
DEFAULT_SELECTION = Selection(frozenset(name for name, metric in METRICS.items() if metric.default))


def enabled(settings: Settings) -> list[Source]:
    return [source for source in SOURCES if source.when(settings)]


def polls(settings: Settings) -> list[Poll]:
    """The jobs these settings run, in registry order. A poller runs once: two sources may offer
    one (the users listing is the agents' job when push is off), for settings that exclude each other."""
    chosen = [poll for source in enabled(settings) for poll in source.polls if poll.when(settings)]
    names = [poll.poller.name for poll in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"a poller would run twice under these settings: {sorted(names)}")
    return chosen


def shows(settings: Settings) -> Sequence[Show]:
    """The page's segments under these settings, in page order."""
    return [source.show for source in enabled(settings) if source.show is not None]


def selection(settings: Settings) -> Selection:
    """The agents' part as the operator chose it; a family name no source offers stops the exporter."""
    chosen: set[str] = set()
    for word in settings.agent_metrics:
        if word == "default":
            chosen |= DEFAULT_SELECTION.metrics
        elif word == "all":
            chosen |= set(METRICS)
        elif word in METRICS:
            chosen.add(word)
        else:
            known = ", ".join(("default", "all", *sorted(METRICS)))
            raise ConfigError(f"{ENV_NAMES['agent_metrics']}: no agent family {word!r}; known: {known}")
    return Selection(
        frozenset(chosen),
        teams=frozenset(team.casefold() for team in settings.agent_teams),
        divisions=frozenset(division.casefold() for division in settings.agent_divisions),
        shards=settings.agent_shards,
        info_waits_for=frozenset(
            {
                teams.TEAMS_POLLER.name,
                *((agent_directory.AGENT_DIRECTORY_POLLER.name,) if settings.agent_scope == "members" else ()),
            }
        ),
    )
