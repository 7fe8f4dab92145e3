"""`genesys-exporter check`: log in, call each endpoint once, say in plain words what is missing.

Meant for the moment an operator wires up a new OAuth client: one run tells whether the
credentials, the region and each permission are right, instead of a day of failing polls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from exporter.genesys.client import GenesysClient
from exporter.genesys.endpoints import QUEUE_OBSERVATIONS, ROUTING_QUEUES, Endpoint
from exporter.genesys.errors import CredentialsRejected, GenesysError, PermissionDenied
from exporter.genesys.queries import queue_observation_query


@dataclass(frozen=True, slots=True)
class Finding:
    what: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}: {self.detail}"


async def run_checks(client: GenesysClient) -> list[Finding]:
    """Every finding, in order; stops after the login when the login fails (nothing else can work)."""
    try:
        await client.tokens.token()
    except GenesysError as error:
        hint = str(error) if isinstance(error, CredentialsRejected) else f"cannot log in: {error}"
        return [Finding("login", False, hint)]
    findings = [Finding("login", True, "the OAuth client credentials were accepted")]
    first_queue: list[str] = []

    async def list_queues() -> Any:
        page = await client.get(ROUTING_QUEUES, params={"pageSize": 1})
        first_queue.extend(e["id"] for e in (page.get("entities") or [])[:1])
        return page

    async def observe() -> Any:
        if not first_queue:
            raise LookupError("no queue visible to this client to query")
        return await client.post(QUEUE_OBSERVATIONS, queue_observation_query(first_queue))

    probes: list[tuple[Endpoint, Callable[[], Awaitable[Any]]]] = [
        (ROUTING_QUEUES, list_queues),
        (QUEUE_OBSERVATIONS, observe),
    ]
    for endpoint, probe in probes:
        findings.append(await _probe(endpoint, probe))
    return findings


async def _probe(endpoint: Endpoint, call: Callable[[], Awaitable[Any]]) -> Finding:
    what = f"{endpoint.method} {endpoint.path} ({endpoint.purpose})"
    try:
        await call()
    except PermissionDenied as error:
        return Finding(what, False, str(error))
    except LookupError as error:
        return Finding(what, False, f"skipped: {error}")
    except GenesysError as error:
        return Finding(what, False, str(error))
    return Finding(what, True, "permitted")
