"""What push reports about itself: the values behind its self-metrics and the landing page's push section.

A plain value, made by the channel pool and read by the renderer and the server: neither needs
to know the pool to show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.genesys.notifications import TopicKind


@dataclass(frozen=True, slots=True)
class PushTelemetry:
    """What `/metrics` and the landing page say about push (see the README's self-metrics)."""

    channels_by_client: dict[str, int] = field(default_factory=dict)  # channels with a connected socket
    slots_by_client: dict[str, int] = field(default_factory=dict)  # channels the plan uses
    conflicts: dict[str, bool] = field(default_factory=dict)  # client -> another exporter uses its channels
    topics: dict[tuple[TopicKind, str], int] = field(default_factory=dict)  # (kind, live|pending|rejected)
    items: dict[tuple[TopicKind, str], int] = field(default_factory=dict)  # (kind, push|poll): the split
    events: dict[TopicKind, int] = field(default_factory=dict)
    reconnects: dict[str, int] = field(default_factory=dict)  # reason -> count
    last_event: float | None = None
    malformed_events: dict[TopicKind, int] = field(default_factory=dict)  # events with nothing readable
    unknown_frames: int = 0  # socket frames of no known shape
    compared: dict[TopicKind, int] = field(default_factory=dict)  # polls of pushed items checked against push
    disagreements: dict[TopicKind, int] = field(default_factory=dict)  # ... where push had it wrong
    distrusted: dict[TopicKind, str] = field(default_factory=dict)  # kind -> why its push is not believed now

    @property
    def channels(self) -> int:
        return sum(self.channels_by_client.values())

    @property
    def slots(self) -> int:
        return sum(self.slots_by_client.values())
