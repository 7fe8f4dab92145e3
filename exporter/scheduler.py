"""Runs every poller on its own cadence and records how each cycle went.

A job is a coroutine function plus a cadence. Cycles start on a fixed grid (start + n x interval),
so a slow cycle does not push every later one back; an overrun skips to the next slot rather than
firing twice. A job can wait for another's first success (queue observations need the queue list).
Failures are logged once per cycle with the Genesys code and contextId; the job keeps its cadence
and its last good data, which the store expires when it grows too old.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import structlog

from exporter.clock import Clock
from exporter.snapshot import PollerStatus, Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    name: str  # the `poller` label
    interval: float
    run: Callable[[], Awaitable[object]]
    after: str | None = None  # name of a job whose first success this one waits for


def describe_failure(error: BaseException) -> dict[str, object]:
    """Log fields for a failed cycle: the Genesys status, code and contextId when there are some."""
    fields: dict[str, object] = {
        "error": str(error) or type(error).__name__,
        "error_type": type(error).__name__,
    }
    for attr, key in (("status", "status"), ("code", "code"), ("context_id", "context_id")):
        value = getattr(error, attr, None)
        if value is not None:
            fields[key] = value
    errors = getattr(error, "errors", None)  # BatchesFailed: describe the first underlying error too
    if isinstance(errors, list) and errors:
        for key, value in describe_failure(errors[0]).items():
            fields.setdefault(key, value)
    return fields


class Scheduler:
    def __init__(self, store: Store, clock: Clock, jobs: list[Job], *, sweep_every: float = 1.0) -> None:
        self._store = store
        self._clock = clock
        self._jobs = jobs
        self._sweep_every = sweep_every
        self._succeeded: dict[str, asyncio.Event] = {job.name: asyncio.Event() for job in jobs}
        for job in jobs:
            store.set_status(job.name, PollerStatus(interval=job.interval))

    @property
    def ready(self) -> bool:
        """True once every job has succeeded at least once (`/readyz`)."""
        return all(event.is_set() for event in self._succeeded.values())

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for job in self._jobs:
                group.create_task(self._loop(job), name=f"poller-{job.name}")
            group.create_task(self._sweep(), name="expire-stale")

    async def _loop(self, job: Job) -> None:
        if job.after:
            await self._succeeded[job.after].wait()
        first = self._clock.monotonic()
        while True:
            await self.run_once(job)
            elapsed = self._clock.monotonic() - first
            await self._clock.sleep((math.floor(elapsed / job.interval) + 1) * job.interval - elapsed)

    async def run_once(self, job: Job) -> bool:
        started = self._clock.monotonic()
        previous = self._store.status(job.name) or PollerStatus(interval=job.interval)
        try:
            await job.run()
        except Exception as error:
            status = replace(
                previous,
                up=False,
                last_duration=self._clock.monotonic() - started,
                last_error=str(error) or type(error).__name__,
                consecutive_failures=previous.consecutive_failures + 1,
            )
            self._store.set_status(job.name, status)
            log.warning(
                "poll failed",
                poller=job.name,
                failures=status.consecutive_failures,
                **describe_failure(error),
            )
            return False
        self._store.set_status(
            job.name,
            replace(
                previous,
                up=True,
                last_success=self._clock.time(),
                last_duration=self._clock.monotonic() - started,
                last_error=None,
                consecutive_failures=0,
            ),
        )
        if previous.consecutive_failures:
            log.info("poll recovered", poller=job.name, after_failures=previous.consecutive_failures)
        self._succeeded[job.name].set()
        return True

    async def _sweep(self) -> None:
        while True:
            await self._clock.sleep(self._sweep_every)
            self._store.expire()
