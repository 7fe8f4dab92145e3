"""One request budget shared by every request of every poller.

Genesys Cloud allows an OAuth client's token 300 requests a minute (brief §3). The budget keeps the
start time of each request in a sliding 60 s log and admits a request only while fewer than
`limit` started in the last 60 s, so no 60 s window of any alignment (the server's included) ever
holds more than `limit`. The server's `inin-ratelimit-*` headers can only make it stricter: when
they show the window nearly spent (another client shares the token), every request waits for the
server's reset; a 429 pauses every request for its Retry-After.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from exporter.clock import Clock

WINDOW_SECONDS = 60.0


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


class RateBudget:
    def __init__(
        self, clock: Clock, requests_per_minute: float = 300, headroom: float = 0.10, concurrency: int = 8
    ) -> None:
        self._clock = clock
        self._headroom = headroom
        self._limit = max(1, math.floor(requests_per_minute * (1 - headroom)))
        self._starts: deque[float] = deque()
        self._paused_until = 0.0
        self._server_remaining: int | None = None
        self._server_seen_until = 0.0  # when the server's last reported window ends
        self._admission = asyncio.Lock()  # first come, first served
        self._in_flight = asyncio.Semaphore(concurrency)
        self.rate_limited_total = 0

    @property
    def requests_per_minute(self) -> int:
        """The most requests that may start in any 60 s."""
        return self._limit

    @property
    def remaining(self) -> int:
        """Requests left: the server's count while its window lasts, else ours."""
        now = self._clock.monotonic()
        ours = self._limit - sum(1 for s in self._starts if s + WINDOW_SECONDS > now)
        if self._server_remaining is not None and now < self._server_seen_until:
            return max(0, min(ours, self._server_remaining))
        return max(0, ours)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a place for one request: wait for the window, any pause, and a concurrency place."""
        async with self._in_flight:
            await self._admit()
            yield

    async def _admit(self) -> None:
        async with self._admission:
            while True:
                now = self._clock.monotonic()
                while self._starts and self._starts[0] + WINDOW_SECONDS <= now:
                    self._starts.popleft()
                wait = self._paused_until - now
                if len(self._starts) >= self._limit:
                    wait = max(wait, self._starts[0] + WINDOW_SECONDS - now)
                if wait <= 0:
                    self._starts.append(now)
                    return
                await self._clock.sleep(wait)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read `inin-ratelimit-allowed/-count/-reset` (any case); wait for the reset if the window is spent."""
        lowered = {k.lower(): v for k, v in headers.items()}
        allowed = _header_int(lowered, "inin-ratelimit-allowed")
        count = _header_int(lowered, "inin-ratelimit-count")
        reset = _header_int(lowered, "inin-ratelimit-reset")
        if allowed is None or count is None:
            return
        now = self._clock.monotonic()
        self._server_remaining = allowed - count
        self._server_seen_until = now + (reset if reset is not None else WINDOW_SECONDS)
        self._limit = min(self._limit, max(1, math.floor(allowed * (1 - self._headroom))))
        reserve = max(1, math.ceil(allowed * self._headroom))
        if self._server_remaining <= reserve and reset is not None:
            self._paused_until = max(self._paused_until, now + reset)

    def rate_limited(self, retry_after: float) -> None:
        """A 429: count it, and make every request of every poller wait `retry_after` seconds."""
        self.rate_limited_total += 1
        self._paused_until = max(self._paused_until, self._clock.monotonic() + retry_after)
