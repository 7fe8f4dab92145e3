"""The exporter's own metrics, and the whole page as text.

Each source renders its own families (`exporter.sources`); this module has what belongs to no
source: the pollers' status, the API client's counters and push's health (`render_self`), and
`render`, the page from scratch, which the tests compare with what the page serves. Metric
names, labels and help texts are the public contract (README, dashboards, alert rules depend on
them). Every function is a pure read of immutable values, so the page may call them from its
worker thread.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from exporter import __version__
from exporter.exposition import family, info, labels
from exporter.push.metrics import render_push
from exporter.push.telemetry import PushTelemetry
from exporter.snapshot import Snapshot
from exporter.sources import DEFAULT_SELECTION, SHOWS
from exporter.sources.source import Selection, Show


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The exporter's own counters at render time (the API client's, not the snapshot's)."""

    # Per OAuth client, by its label (`OAuthClient.label`): the `client` label of the families.
    requests: Mapping[tuple[str, str, str], int] = field(default_factory=dict)  # (endpoint, code, client) -> count
    rate_limit_remaining: Mapping[str, int] = field(default_factory=dict)
    rate_limited_total: Mapping[str, int] = field(default_factory=dict)
    budget_per_minute: Mapping[str, int] = field(default_factory=dict)
    parse_errors: Mapping[str, int] = field(default_factory=dict)  # endpoint -> responses of the wrong shape
    implausible: Mapping[str, int] = field(default_factory=dict)  # metric -> values no reading made sense of
    push: PushTelemetry | None = None  # None when push is off


@dataclass(frozen=True, slots=True)
class PartSize:
    """What a scrape of one `collect[]` part brings a Prometheus: series, and bytes before compression."""

    series: int
    bytes: int


def render_parts(
    snapshot: Snapshot, telemetry: Telemetry, shows: Sequence[Show] = SHOWS, selection: Selection = DEFAULT_SELECTION
) -> dict[str, str]:
    """Each `collect[]` part of the page as text, from scratch, in page order (the served page is built
    segment by segment: `exporter.page`; the tests compare the two)."""
    texts: dict[str, list[str]] = {}
    for show in shows:
        texts.setdefault(show.collector, []).extend(text for _, text in show.render(snapshot, selection))
    parts = {}
    for collector, pieces in texts.items():
        data = [text.encode() for text in pieces]
        series = sum(d.count(b"\n") - d.count(b"\n#") - d.startswith(b"#") for d in data)
        parts[collector] = PartSize(series, sum(len(d) for d in data))
    return {**{c: "".join(t) for c, t in texts.items()}, "exporter": "".join(render_self(snapshot, telemetry, parts))}


def render(
    snapshot: Snapshot, telemetry: Telemetry, shows: Sequence[Show] = SHOWS, selection: Selection = DEFAULT_SELECTION
) -> str:
    """The page as text, from scratch."""
    return "".join(render_parts(snapshot, telemetry, shows, selection).values())


def render_self(
    snapshot: Snapshot, telemetry: Telemetry, parts: Mapping[str, PartSize] | None = None
) -> tuple[str, ...]:
    pollers = sorted(snapshot.pollers.items())
    parts = parts or {}

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
            "genesys_exporter_implausible_values_total",
            "counter",
            "Values of a form the API documents nowhere (Unconfirmed) that no reading made sense of, by metric "
            "(an oldest wait in the future or over a day): left out, and a sign the real service differs.",
            ((labels(metric=m), n) for m, n in sorted(telemetry.implausible.items())),
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
        family(
            "genesys_exporter_collector_series",
            "gauge",
            "Series in each collect[] part of the page but the exporter's own (what one scrape of it stores; "
            "the agents' part split in shards holds about this over the number of shards each): what "
            "sample_limit guards.",
            ((labels(collector=name), size.series) for name, size in parts.items()),
        ),
        family(
            "genesys_exporter_collector_bytes",
            "gauge",
            "Bytes of each collect[] part before compression: what body_size_limit guards.",
            ((labels(collector=name), size.bytes) for name, size in parts.items()),
        ),
        *(render_push(telemetry.push) if telemetry.push is not None else ()),
        info(
            "genesys_exporter_build_info",
            "Build information (value 1).",
            [labels(version=__version__, python_version=platform.python_version())],
        ),
    )
