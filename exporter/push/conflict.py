"""Two exporters on one OAuth client: noticed, reported once, and settled by giving way, not by fighting.

A client's channels are its own, whoever uses its credentials. Two exporters configured with the
same client share its 20 channels and its sockets: a restart takes over the other's channels, a
21st channel evicts one of the other's, and each reopens what it lost, evicting the other again, in
a loop that keeps both pushing nothing. The service says so: the evicted socket closes with reason
`another_channel_subscribed`. A few such evictions of one client's channels in a short while
(3 in 10 minutes) and that client is in conflict: the warning names the client (never a channel),
`genesys_exporter_push_conflict{client}` is 1, and its slots stay closed, their items polled, for a
long back-off (30 minutes) before they try again. The exporter that sees it first gives way, so the
other keeps its channels; a single eviction (a one-off restart) is recovered as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from exporter.clock import Clock

log = structlog.get_logger(__name__)

EVICTED = "another_channel_subscribed"  # the close reason that means someone else uses our client
CONFLICT_EVICTIONS = 3
CONFLICT_WINDOW_SECONDS = 600.0
CONFLICT_BACKOFF_SECONDS = 1800.0


@dataclass(slots=True)
class _Client:
    evictions: deque[float] = field(default_factory=deque)  # monotonic times, within the window
    until: float = 0.0  # monotonic: its slots stay closed until then
    reported: bool = False  # the warning is logged once per conflict


class Conflicts:
    """Per OAuth client (by label): its recent evictions, and whether its slots give way."""

    def __init__(
        self,
        clock: Clock,
        clients: Iterable[str],
        *,
        evictions: int = CONFLICT_EVICTIONS,
        window: float = CONFLICT_WINDOW_SECONDS,
        backoff: float = CONFLICT_BACKOFF_SECONDS,
    ) -> None:
        self._clock = clock
        self._evictions = evictions
        self._window = window
        self._backoff = backoff
        self._clients = {label: _Client() for label in clients}

    def lost(self, client: str, reason: str) -> None:
        """A slot of the client lost its channel; an eviction counts towards a conflict."""
        if reason != EVICTED:
            return
        state = self._clients[client]
        now = self._clock.monotonic()
        if state.until > now:
            return
        state.evictions.append(now)
        while state.evictions and state.evictions[0] <= now - self._window:
            state.evictions.popleft()
        if len(state.evictions) >= self._evictions:
            state.until = now + self._backoff
            state.evictions.clear()
            if not state.reported:
                state.reported = True
                log.warning(
                    "another exporter uses this OAuth client's notification channels; its items are polled "
                    "instead of fighting over the channels (give each exporter its own client)",
                    client=client,
                    evictions=self._evictions,
                    within_s=round(self._window),
                    retry_in_s=round(self._backoff),
                )

    def in_conflict(self, client: str) -> bool:
        return self._clients[client].until > self._clock.monotonic()

    async def wait_clear(self, client: str) -> None:
        """Until the client's back-off is over (at once when it is in no conflict); logged when it ends."""
        state = self._clients[client]
        waited = False
        while (left := state.until - self._clock.monotonic()) > 0:
            waited = True
            await self._clock.sleep(left)
        if waited and state.reported:
            state.reported = False
            log.info("retrying push on an OAuth client after a channel conflict", client=client)

    def states(self) -> dict[str, bool]:
        """Each client: in conflict (its slots polled) or not, for the self-metrics."""
        return {label: self.in_conflict(label) for label in self._clients}
