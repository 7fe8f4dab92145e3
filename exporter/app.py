"""Wires settings into a running exporter: client, store, pollers, scheduler, page and server.

`Exporter` is an async context manager that owns every background task it starts and stops them
all on exit, so tests and the CLI share one lifecycle and nothing runs at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Mapping, Sequence
from types import TracebackType
from zoneinfo import ZoneInfo

import structlog

from exporter.clock import Clock, SystemClock
from exporter.config import OAuthClient, Settings
from exporter.genesys.client import GenesysClient
from exporter.genesys.notifications import TopicKind
from exporter.metrics import Telemetry
from exporter.page import MetricsPage
from exporter.pollers.agents import discover_members, poll_agent_states, poll_users_with_state
from exporter.pollers.directory import QueueScope, discover_queues
from exporter.pollers.performance import day_window, iso_interval, poll_performance
from exporter.pollers.queues import poll_queues
from exporter.push.source import PushSource
from exporter.scheduling.budget import RateBudget
from exporter.scheduling.scheduler import Job, Scheduler
from exporter.server import ServingThread, create_app
from exporter.snapshot import Agent, AgentState, Snapshot, Store
from exporter.webconfig import BasicAuth, WebConfig, load_web_config

log = structlog.get_logger(__name__)

FIRST_AGENTS_WITHIN_SECONDS = 10.0  # the first agent states are polled by then, whatever the directory's progress


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
        scope = QueueScope(settings.queue_ids, settings.queue_name, settings.division_ids)
        self.scheduler = Scheduler(self.store, self.clock, self._jobs(scope), self.budget, jitter=settings.jitter)
        self.page = MetricsPage(self.store, self.telemetry, debounce=render_debounce)
        self.web = load_web_config(settings.web_config_file) if settings.web_config_file else WebConfig()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: ServingThread | None = None
        self.url = ""

    def _jobs(self, scope: QueueScope) -> list[Job]:
        """Priorities: live queue data first, then today's figures, agent states, and the directories,
        which change least and stretch first when the budget cannot feed every cadence."""
        settings = self.settings
        queue_jobs = [
            Job("directory", settings.directory_interval, lambda: self._refresh_queues(scope), priority=3),
            Job("queues", settings.queue_interval, self._poll_queues, "directory", 0, ("queue_states",)),
        ]
        if settings.agent_scope == "users" and self.push is None:  # the listing carries the state: one job does both
            agent_jobs = [Job("agents", settings.agent_interval, self._poll_users, "directory", 2, ("agent_states",))]
        else:
            # Agents are polled by id, with push on only those no live channel keeps current. The
            # first cycle waits for the directory, but not for long: a 50,000-agent directory takes
            # minutes, and the agents it has found by then are polled meanwhile.
            listing = self._poll_users if settings.agent_scope == "users" else self._refresh_members
            agent_jobs = [
                Job("agent_directory", settings.directory_interval, listing, "directory", 4, first_priority=1),
                Job(
                    "agents",
                    settings.agent_interval,
                    self._poll_agents,
                    "agent_directory",
                    2,
                    ("agent_states",),
                    wait_at_most=FIRST_AGENTS_WITHIN_SECONDS,
                ),
            ]
        if self.push is not None:
            agent_jobs.append(Job("push_sweep", settings.push_sweep_interval, self.push.sweep, "directory", 3))
        performance = Job(
            "performance",
            settings.performance_interval,
            self._poll_performance,
            # It asks for the agents in scope: members wait for the member list; the user listing takes
            # minutes at 50,000 agents, so there it goes with the agents found so far.
            "directory" if settings.agent_scope == "users" else "agent_directory",
            1,
            ("agent_tallies", "queue_tallies"),
        )
        return [*queue_jobs, *agent_jobs, performance]

    def telemetry(self) -> Telemetry:
        return Telemetry(
            push=self.push.telemetry() if self.push is not None else None,
            requests=dict(self.client.stats.by_client),
            rate_limit_remaining={label: b.remaining for label, b in self.budget.members.items()},
            rate_limited_total={label: b.rate_limited_total for label, b in self.budget.members.items()},
            budget_per_minute={label: b.requests_per_minute for label, b in self.budget.members.items()},
            parse_errors=dict(self.client.stats.parse_errors),
        )

    async def _refresh_queues(self, scope: QueueScope) -> None:
        """The queues in scope and their names. Separate from the agents so queue data comes first."""
        queues = await discover_queues(self.client, scope)
        if not queues:
            log.warning(
                "no queue in scope", queue_ids=len(scope.ids), name=scope.name_glob, divisions=scope.division_ids
            )
        self.store.set_queues(queues)

    async def _refresh_members(self) -> None:
        """The agents in scope: members of the queues in scope (a request per queue), published as found."""
        self.store.set_agents(await discover_members(self.client, self.store.snapshot.queues, self.store.add_agents))

    async def _poll_users(self) -> None:
        """Users scope: every active user and their state, page by page, from one listing.

        With push on, this is the agent directory and the agents job polls their states by id: the
        listing's states are kept on its first pass only (no agent has any state yet), not held
        twice in the store ever after.
        """
        directory = self.store.status("agent_directory")
        with_states = directory is None or directory.last_success is None

        def publish(index: int, agents: Mapping[str, Agent], states: Mapping[str, AgentState]) -> None:
            self.store.add_agents(agents)
            if with_states:
                polled = self._polled("agents", states)  # a pushed agent's state is push's to tell
                self.store.put("agent_states", ("listing", index), {uid: states[uid] for uid in polled})

        self.store.set_agents(await poll_users_with_state(self.client, publish))

    def _freshly_listed(self, snapshot: Snapshot) -> set[str]:
        """Agents whose state the user listing's first pass gave within one agents cadence: polling them
        by id as well would cost a request per 100 of them and hold every state twice."""
        status = snapshot.pollers.get("agents")
        since = self.clock.monotonic() - (status.interval if status else self.settings.agent_interval)
        return {
            uid
            for key, part in snapshot.agent_states.items()
            if isinstance(key, tuple) and key[0] == "listing" and part.taken_at >= since
            for uid in part.items
        }

    def _polled(self, kind: TopicKind, ids: Collection[str]) -> list[str]:
        return self.push.polled(kind, ids) if self.push is not None else list(ids)

    async def _poll_agents(self) -> None:
        snapshot = self.store.snapshot
        listed = self._freshly_listed(snapshot)
        agent_ids = [uid for uid in self._polled("agents", snapshot.agents) if uid not in listed]
        if agent_ids:
            await poll_agent_states(
                self.client, agent_ids, lambda key, states: self.store.put("agent_states", key, states)
            )

    async def _poll_performance(self) -> None:
        snapshot = self.store.snapshot
        if not snapshot.queues:
            return
        start, end = day_window(self.clock.time(), ZoneInfo(self.settings.timezone), self.settings.day_start_time)
        agents, queues = await poll_performance(
            self.client, iso_interval(start, end), sorted(snapshot.queues), sorted(snapshot.agents)
        )
        self.store.put("agent_tallies", 0, agents)
        self.store.put("queue_tallies", 0, queues)

    async def _poll_queues(self) -> None:
        queue_ids = self._polled("queues", self.store.snapshot.queues)
        if queue_ids:
            await poll_queues(
                self.client,
                queue_ids,
                self.clock,
                lambda key, states: self.store.put("queue_states", key, states),
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
