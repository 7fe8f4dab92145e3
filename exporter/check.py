"""`genesys-exporter check`: log in, try everything the configured exporter will use, say what is missing.

Meant for the moment an operator wires up a new OAuth client: one run tells whether the
credentials, the region and each permission are right, instead of a day of failing polls or a
dashboard without AHT. Every endpoint and every notification topic kind the configured exporter
uses is tried, each on its own (one missing permission never hides another), and all are reported.
The push probe takes over a channel an earlier run left before it opens one (the client holds at
most 20), subscribes one topic of each kind with `ignoreErrors`, and reads back which were
Rejected and for lack of what. The channel id is never printed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import (
    CONVERSATION_AGGREGATES,
    NOTIFICATION_CHANNELS,
    NOTIFICATION_SUBSCRIPTIONS,
    QUEUE_MEMBERS,
    QUEUE_OBSERVATIONS,
    ROUTING_QUEUES,
    TEAMS,
    USERS,
    Endpoint,
)
from exporter.genesys.errors import CredentialsRejected, GenesysError
from exporter.genesys.notifications import (
    TopicKind,
    create_channel,
    item_of,
    list_channels,
    subscribe,
    topic_for,
)
from exporter.genesys.queries import aggregate_query, queue_observation_query
from exporter.sources.agent_states import STATE_EXPAND
from exporter.sources.performance import iso_interval

TOPIC_PURPOSE: dict[TopicKind, str] = {
    "queues": "pushed queue observations",
    "agents": "pushed agent routing status and presence",
}


@dataclass(frozen=True, slots=True)
class Finding:
    what: str
    ok: bool
    detail: str
    optional: bool = False  # what it checks only adds to the exporter: missing, it is a warning, not a failure

    @property
    def fails(self) -> bool:
        return not self.ok and not self.optional

    def line(self) -> str:
        word = "ok  " if self.ok else ("warn" if self.optional else "FAIL")
        return f"{word}  {self.what}: {self.detail}"


class _Skipped(LookupError):
    """A probe that needs something an earlier one could not find (a queue, a user)."""


async def run_checks(client: GenesysClient, *, agent_scope: str = "members", push: bool = True) -> list[Finding]:
    """Every finding, in order; only a failed login stops the run (nothing else can work without it)."""
    try:
        await client.tokens.token()
    except GenesysError as error:
        hint = str(error) if isinstance(error, CredentialsRejected) else f"cannot log in: {error}"
        return [Finding("login", False, hint)]
    findings = [Finding("login", True, "the OAuth client credentials were accepted")]
    found: dict[str, str] = {}

    def first(name: str, page: Any) -> None:
        for entity in (page.get("entities") or [])[:1] if isinstance(page, dict) else []:
            found[name] = str(entity["id"])

    async def list_queues() -> None:
        first("queue", await client.get(ROUTING_QUEUES, params={"pageSize": 1}))

    async def list_users() -> None:
        params: dict[str, str | int] = {"pageSize": 1, "state": "active", "expand": STATE_EXPAND}
        first("user", await client.get(USERS, params=params))

    def needs(name: str) -> str:
        if name not in found:
            raise _Skipped(f"no {name} visible to this client to try it on")
        return found[name]

    async def observe() -> Any:
        return await client.post(QUEUE_OBSERVATIONS, queue_observation_query([needs("queue")]))

    async def members() -> Any:
        return await client.get(QUEUE_MEMBERS, params={"pageSize": 1}, queueId=needs("queue"))

    async def aggregates() -> Any:
        now = datetime.now(UTC)
        interval = iso_interval(now - timedelta(hours=1), now)
        return await client.post(
            CONVERSATION_AGGREGATES, aggregate_query(interval, ["queueId"], ["tHandle"], [needs("queue")])
        )

    probes: list[tuple[Endpoint, Callable[[], Awaitable[Any]]]] = [(ROUTING_QUEUES, list_queues), (USERS, list_users)]
    probes.append((QUEUE_OBSERVATIONS, observe))
    if agent_scope == "members":
        probes.append((QUEUE_MEMBERS, members))
    probes.append((CONVERSATION_AGGREGATES, aggregates))
    for endpoint, probe in probes:
        findings.append(await _probe(endpoint, probe))
    teams = await _probe(TEAMS, lambda: client.get(TEAMS, params={"pageSize": 1}))
    if not teams.ok:  # work teams only add a label and a filter: without them the rest works
        teams = replace(teams, detail=f"{teams.detail}; agents get no team label", optional=True)
    findings.append(teams)
    if push:
        findings.extend(await _push_findings(client, found))
    return findings


async def _probe(endpoint: Endpoint, call: Callable[[], Awaitable[Any]]) -> Finding:
    what = f"{endpoint.method} {endpoint.path} ({endpoint.purpose})"
    try:
        await call()
    except _Skipped as error:
        return Finding(what, False, f"skipped: {error}")
    except GenesysError as error:
        return Finding(what, False, str(error))
    return Finding(what, True, "permitted")


async def _push_findings(client: GenesysClient, found: dict[str, str]) -> list[Finding]:
    """A channel, then one topic of each kind the exporter subscribes: Permitted, or what is missing."""
    what = f"{NOTIFICATION_CHANNELS.method} {NOTIFICATION_CHANNELS.path} ({NOTIFICATION_CHANNELS.purpose})"
    try:
        leftovers = await list_channels(client)
        channel = leftovers[0] if leftovers else await create_channel(client)
    except GenesysError as error:
        return [Finding(what, False, f"{error}; set GENESYS_PUSH=off to poll only")]
    findings = [Finding(what, True, "a channel" + (" left by an earlier run" if leftovers else "") + " is open")]
    items: dict[TopicKind, str | None] = {"queues": found.get("queue"), "agents": found.get("user")}
    topics = [topic_for(kind, item) for kind, item in items.items() if item]
    try:
        states = await subscribe(client, channel, topics) if topics else []
        await subscribe(client, channel, [])  # leave it empty: the exporter subscribes what it plans
    except GenesysError as error:
        where = f"{NOTIFICATION_SUBSCRIPTIONS.method} {NOTIFICATION_SUBSCRIPTIONS.path}"
        return [*findings, Finding(where, False, str(error))]
    answered = {item_of(state.id): state for state in states}
    for kind, purpose in TOPIC_PURPOSE.items():
        item = items[kind]
        topic_what = f"topic {topic_for(kind, '{id}')} ({purpose})"
        state = answered.get((kind, item)) if item else None
        if item is None:
            findings.append(Finding(topic_what, False, "skipped: nothing visible to this client to subscribe"))
        elif state is None:
            findings.append(Finding(topic_what, False, "the subscription answer did not mention it"))
        elif state.permitted:
            findings.append(Finding(topic_what, True, "permitted"))
        else:
            missing = ", ".join(state.missing_permissions)
            reason = f"rejected: the OAuth client's role lacks {missing}" if missing else "rejected"
            detail = state.rejection_reason if not missing and state.rejection_reason else reason
            findings.append(Finding(topic_what, False, f"{detail} (those items are polled instead)"))
    return findings
