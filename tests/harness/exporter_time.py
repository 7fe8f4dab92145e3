"""Moving a fake clock under an exporter whose requests travel over real sockets.

Fake time must not move while a request is on the wire: its answer would land seconds (of fake
time) late, a backoff would start late, a cycle would end after the instant a test compares. So
each tick (a fake second) waits, in real time, until every request sent has been answered and the
page shows what the answers changed; and tests wait on what they mean (a poller's status, an
endpoint having been called), never on a number of fake seconds that happens to be enough.
These are the tick family of tests/harness/waiting.py with that wait after each tick.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from exporter.app import Exporter
from exporter.clock import FakeClock
from tests.harness.scraping import scrape
from tests.harness.waiting import eventually, tick_for, tick_until


def on_the_wire(exporter: Exporter) -> int:
    """Requests sent and not answered yet: API requests (each attempt takes a budget place) and token
    requests, less the answers and transport errors the client has counted."""
    client = exporter.client
    sent = sum(client.budget.spent.values()) + sum(lane.tokens.requests for lane in client.lanes)
    return sent - sum(client.stats.by_client.values())


async def landed(exporter: Exporter) -> None:
    """Every request sent has its answer (or its error)."""
    await eventually(lambda: on_the_wire(exporter) == 0)


async def settled(exporter: Exporter) -> None:
    """Every request sent has its answer, and the page shows all the store holds."""
    await eventually(lambda: on_the_wire(exporter) == 0 and exporter.page.current)


async def ready(exporter: Exporter) -> None:
    """Every poller's first cycle has ended, and the page shows what they brought."""
    await eventually(lambda: exporter.scheduler.ready)
    await settled(exporter)


async def first_page(exporter: Exporter) -> dict[str, Any]:
    """The page's families once the exporter is `ready`."""
    await ready(exporter)
    _, families = await scrape(exporter.url)
    return families


async def run_for(
    exporter: Exporter,
    clock: FakeClock,
    seconds: float,
    *,
    wait: Callable[[Exporter], Awaitable[None]] = settled,
) -> None:
    """Fake time a second at a time, each second's requests answered (and, by default, shown) before the next."""
    await tick_for(clock, seconds, every=1, after=lambda: wait(exporter))


async def run_until(exporter: Exporter, clock: FakeClock, condition: Callable[[], bool], *, within: float) -> float:
    """Fake time a second at a time until `condition` holds; the fake seconds it took (at most `within`)."""
    await settled(exporter)
    # Each tick's wait is bounded in real time already (`eventually`), and timeouts can make ticks slow.
    return await tick_until(clock, condition, within=within, every=1, after=lambda: settled(exporter), real_within=None)
