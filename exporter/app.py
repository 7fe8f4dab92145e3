"""Wires settings into a running exporter: client, store, the sources' jobs, scheduler, page and server.

`Exporter` is an async context manager that owns every background task it starts and stops them
all on exit, so tests and the CLI share one lifecycle and nothing runs at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence
from types import TracebackType

import structlog

from exporter import sources
from exporter.clock import Clock, SystemClock
from exporter.config import OAuthClient, Settings
from exporter.genesys.client import GenesysClient
from exporter.metrics import Telemetry
from exporter.page import MetricsPage
from exporter.push.source import PushSource
from exporter.scheduling.budget import RateBudget
from exporter.scheduling.scheduler import Job, Scheduler
from exporter.server import ServingThread, create_app
from exporter.snapshot import Store
from exporter.sources.queue_states import IMPLAUSIBLE
from exporter.sources.source import Poll, Wiring
from exporter.webconfig import BasicAuth, WebConfig, load_web_config

log = structlog.get_logger(__name__)


def client_from_settings(
    settings: Settings, clock: Clock, *, max_retries: int = 3, clients: Sequence[OAuthClient] | None = None
) -> GenesysClient:
    """The API client, with a budget for each OAuth client of the settings (or of `clients`): the
    rate limit, headroom and concurrency are each client's."""

    def budget() -> RateBudget:
        return RateBudget(
            clock,
            requests_per_minute=settings.rate_limit_per_minute,
            headroom=settings.rate_headroom,
            concurrency=settings.concurrency,
        )

    return GenesysClient(
        api_url=settings.api_base,
        login_url=settings.login_base,
        clients=[(oauth, budget()) for oauth in (settings.clients if clients is None else clients)],
        clock=clock,
        timeout=settings.request_timeout,
        max_retries=max_retries,
    )


def job_of(poll: Poll, wiring: Wiring) -> Job:
    """A source's poll as the scheduler runs it under these settings."""
    settings, poller = wiring.settings, poll.poller
    return Job(
        poller.name,
        poller.cadence(settings),
        functools.partial(poll.run, wiring),
        after=poll.waits_for(settings),
        priority=poller.priority,
        refreshes=poller.refreshes,
        wait_at_most=poll.wait_at_most,
        first_priority=poller.first_priority,
        within_floor=poller.within_floor,
        expected_cost=functools.partial(poll.expected_cost, wiring) if poll.expected_cost is not None else None,
    )


class Exporter:
    def __init__(self, settings: Settings, *, clock: Clock | None = None, render_debounce: float = 0.05) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.store = Store(self.clock)
        self.client = client_from_settings(settings, self.clock)
        self.budget = self.client.budget
        self.push = (
            PushSource(self.client, self.clock, self.store, channels_per_client=settings.push_channels)
            if settings.push == "auto"
            else None
        )
        selection = sources.selection(settings)
        wiring = Wiring(settings, self.client, self.store, self.clock, selection, self.push)
        jobs = [job_of(poll, wiring) for poll in sources.polls(settings)]
        self.scheduler = Scheduler(self.store, self.clock, jobs, self.budget, jitter=settings.jitter)
        self.page = MetricsPage(
            self.store,
            self.telemetry,
            debounce=render_debounce,
            shows=sources.shows(settings),
            selection=selection,
        )
        self.web = load_web_config(settings.web_config_file) if settings.web_config_file else WebConfig()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: ServingThread | None = None
        self.url = ""

    def telemetry(self) -> Telemetry:
        return Telemetry(
            push=self.push.telemetry() if self.push is not None else None,
            requests=dict(self.client.stats.by_client),
            rate_limit_remaining={label: b.remaining for label, b in self.budget.members.items()},
            rate_limited_total={label: b.rate_limited_total for label, b in self.budget.members.items()},
            budget_per_minute={label: b.requests_per_minute for label, b in self.budget.members.items()},
            parse_errors=dict(self.client.stats.parse_errors),
            implausible=dict(IMPLAUSIBLE),
        )

    async def __aenter__(self) -> Exporter:
        self._tasks = [
            asyncio.create_task(self.scheduler.run(), name="scheduler"),
            asyncio.create_task(self.page.run(), name="metrics-page"),
        ]
        if self.push is not None:
            self._tasks.append(asyncio.create_task(self.push.run(), name="push"))
        app = create_app(
            self.page,
            self.store,
            BasicAuth(self.web.users) if self.web.users else None,
            push=self.push.telemetry if self.push is not None else lambda: None,
            home=asyncio.get_running_loop(),
        )
        listen = self.settings.listen
        tls = self.web.ssl_context()
        self._server = ServingThread(app, listen.host, listen.port, tls)
        host, port = await self._server.start()
        self.url = f"{'https' if tls else 'http'}://{'[' + host + ']' if ':' in host else host}:{port}"
        log.info("serving", url=f"{self.url}/metrics", api=self.settings.api_base)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.stop()
        await self.client.close()
