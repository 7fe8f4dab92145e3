"""Settings for an exporter pointed at a simulated org on 127.0.0.1, as the integration tests run it."""

from __future__ import annotations

from typing import Any

from exporter.config import Settings
from exporter.simulator.api import SimulatedOrg
from exporter.tools.harness import settings_for as tool_settings

QUIET = {"listen": "127.0.0.1:0", "log_level": "info", "log_format": "json", "jitter": 0.0}


def settings_for(org: SimulatedOrg, **overrides: Any) -> Settings:
    """The org's first client, with cadences that divide the 30 s steps the tests take, so every poll lands
    on the instant compared.

    Polling only, unless a test says otherwise: the tests that compare at frozen instants prove the safety
    net (polling, which push falls back to); tests/integration/test_push.py proves push.
    """
    return tool_settings(org, log_level="info", **{"queue_interval": 10, "push": "off", **overrides})


def settings_of(org: SimulatedOrg, secrets: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Every client of the org, as comma lists, on the default cadences; `secrets` replaces some clients'
    secrets (bad credentials). Polling only unless told."""
    clients = {**org.clients, **(secrets or {})}
    return Settings(
        client_id=",".join(clients),
        client_secret=",".join(clients.values()),
        api_url=org.url,
        **{**QUIET, "push": "off", **overrides},
    )
