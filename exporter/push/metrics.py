"""Push's self-metrics (public contract, README): channels, topics, the pushed/polled split, events.

Rendered into the exporter's own segment of the page. The channel id is a capability and never a
label: channels are counted, not named. Channels and conflicts are per OAuth client (`client`, the
client id, as on the request metrics); topics, items, events and reconnects are the exporter's
totals, since one plan spreads them over every client.
"""

from __future__ import annotations

from exporter.exposition import family, labels
from exporter.push.telemetry import PushTelemetry


def render_push(push: PushTelemetry) -> tuple[str, ...]:
    return (
        family(
            "genesys_exporter_push_channels",
            "gauge",
            "Notification channels with a connected socket, by OAuth client.",
            ((labels(client=client), n) for client, n in push.channels_by_client.items()),
        ),
        family(
            "genesys_exporter_push_planned_channels",
            "gauge",
            "Notification channels the topic plan uses, by OAuth client (one of each client's 20 is kept "
            "spare for handovers).",
            ((labels(client=client), n) for client, n in push.slots_by_client.items()),
        ),
        family(
            "genesys_exporter_push_conflict",
            "gauge",
            "1 while another exporter uses this OAuth client's notification channels (they evict each other): "
            "its items are polled, and push is tried again after 30 minutes. Give each exporter its own client.",
            ((labels(client=client), int(conflict)) for client, conflict in push.conflicts.items()),
        ),
        family(
            "genesys_exporter_push_topics",
            "gauge",
            "Planned notification topics by kind and state: live (pushed), pending (subscribing, "
            "reconciling or reconnecting: polled meanwhile), distrusted (the kind's events are unreadable or "
            "disagree with the polls: polled, push tried again later) or rejected (polled; see the log for "
            "the permission).",
            ((labels(kind=kind, state=state), n) for (kind, state), n in sorted(push.topics.items())),
        ),
        family(
            "genesys_exporter_push_items",
            "gauge",
            "Queues and agents in scope by where their live data comes from: push (a live channel) or poll.",
            ((labels(kind=kind, source=source), n) for (kind, source), n in sorted(push.items.items())),
        ),
        family(
            "genesys_exporter_push_events_total",
            "counter",
            "Notification events received, by kind (queues: observations, agents: activity).",
            ((labels(kind=kind), n) for kind, n in sorted(push.events.items())),
        ),
        family(
            "genesys_exporter_push_malformed_events_total",
            "counter",
            "Notification events with nothing readable in them (the wrong shape), ignored, by kind; the log "
            "shows the first one's shape. Ten in a row end the trust in that kind's push.",
            ((labels(kind=kind), n) for kind, n in sorted(push.malformed_events.items())),
        ),
        family(
            "genesys_exporter_push_unknown_frames_total",
            "counter",
            "Socket frames of no shape the Notifications API is known to send, ignored (not taken as a sign of life).",
            [("", push.unknown_frames)],
        ),
        family(
            "genesys_exporter_push_compared_total",
            "counter",
            "Polls of pushed items (reconciliations, the sweep, doubt polls, the audit sample) checked "
            "against what push showed, by kind.",
            ((labels(kind=kind), n) for kind, n in sorted(push.compared.items())),
        ),
        family(
            "genesys_exporter_push_disagreements_total",
            "counter",
            "Of those, the polls that found push wrong for longer than the service's publishing delay, by kind.",
            ((labels(kind=kind), n) for kind, n in sorted(push.disagreements.items())),
        ),
        family(
            "genesys_exporter_push_distrusted",
            "gauge",
            "1 while a kind's push is not believed, by why (unreadable: its events could not be read; "
            "disagreeing: polls found it wrong): its items are polled, and push is tried again after 10 minutes.",
            ((labels(kind=kind, why=why), 1) for kind, why in sorted(push.distrusted.items())),
        ),
        family(
            "genesys_exporter_push_reconnects_total",
            "counter",
            "Channels lost or replaced, by reason (silent, closed, error, another_channel_subscribed, "
            "user_tokens_revoked, maintenance, renewal, open_failed, ...).",
            ((labels(reason=reason), n) for reason, n in sorted(push.reconnects.items())),
        ),
        family(
            "genesys_exporter_push_last_event_timestamp_seconds",
            "gauge",
            "Unix time the last notification event arrived.",
            [] if push.last_event is None else [("", push.last_event)],
        ),
    )
