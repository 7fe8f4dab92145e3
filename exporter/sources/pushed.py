"""Push-fed parts: queue observations and agent activity from notification channels (`exporter.push`).

Push writes its groups into the queues' and the agents' own measurements (parts keyed by channel
slot and group), so the page and the stale limits treat them as those sources' data. What it needs
from the scheduler is one job: the slow sweep, a poll of every pushed item that repairs an event
the service never delivered.
"""

from __future__ import annotations

from exporter.sources.source import Poll, Source, Wiring


async def sweep(wiring: Wiring) -> None:
    if wiring.push is not None:
        await wiring.push.sweep()


SOURCE = Source(
    name="push",
    polls=(
        Poll(
            poller="push_sweep",
            cadence=lambda s: s.push_sweep_interval,
            priority=3,
            run=sweep,
            after="directory",
        ),
    ),
    when=lambda s: s.push == "auto",
)
