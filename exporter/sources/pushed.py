"""Push-fed parts: queue observations and agent activity from notification channels (`exporter.push`).

Push writes its groups into the queues' and the agents' own measurements (parts keyed by channel
slot and group), so the page and the stale limits treat them as those sources' data. What it needs
from the scheduler is one job: the slow sweep, a poll of every pushed item that repairs an event
the service never delivered.
"""

from __future__ import annotations

from exporter.sources.queue_directory import DIRECTORY_POLLER
from exporter.sources.source import Poll, Poller, Source, Wiring


async def sweep(wiring: Wiring) -> None:
    if wiring.push is not None:
        await wiring.push.sweep()


PUSH_SWEEP_POLLER = Poller(name="push_sweep", cadence=lambda s: s.push_sweep_interval, priority=3)
SOURCE = Source(
    name="push",
    polls=(Poll(PUSH_SWEEP_POLLER, sweep, after=DIRECTORY_POLLER),),
    when=lambda s: s.push == "auto",
)
