"""Moving a fake clock under an exporter whose requests travel over real sockets.

Fake time must not move while a request is on the wire: its answer would land seconds (of fake
time) late, a backoff would start late, a cycle would end after the instant a test compares. So
each step waits, in real time, until every request sent has been answered and the page shows what
the answers changed; and tests wait on what they mean (a poller's status, an endpoint having been
called), never on a number of fake seconds that happens to be enough.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from exporter.app import Exporter
from exporter.clock import FakeClock


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Wait in real time (the fake clock stays put) for the background tasks to catch up."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def on_the_wire(exporter: Exporter) -> int:
    """Requests sent and not answered yet: API requests (each attempt takes a budget place) and token
    requests, less the answers and transport errors the client has counted."""
    client = exporter.client
    sent = sum(client.budget.spent.values()) + sum(lane.tokens.requests for lane in client.lanes)
    return sent - sum(client.stats.by_client.values())


async def landed(exporter: Exporter) -> None:
    """Every request sent has its answer (or its error)."""
    await eventually(lambda: on_the_wire(exporter) == 0)


async def settle(exporter: Exporter) -> None:
    """Every request sent has its answer, and the page shows all the store holds."""
    await eventually(lambda: on_the_wire(exporter) == 0 and exporter.page.current)


async def run_for(exporter: Exporter, clock: FakeClock, seconds: float) -> None:
    """Fake time a second at a time, each second's requests answered and shown before the next."""
    for _ in range(int(seconds)):
        await clock.advance(1)
        await settle(exporter)


async def run_until(exporter: Exporter, clock: FakeClock, condition: Callable[[], bool], *, within: float) -> float:
    """Fake time a second at a time until `condition` holds; the fake seconds it took (at most `within`)."""
    waited = 0
    await settle(exporter)
    while not condition():
        assert waited < within, f"condition not met within {within:g} fake seconds"
        await clock.advance(1)
        await settle(exporter)
        waited += 1
    return waited
