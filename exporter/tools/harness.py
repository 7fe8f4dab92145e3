"""What more than one tool needs: an exporter's settings against a simulated org, and this process's memory.

Shared here rather than imported from one tool by another, so each tool stands on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporter.config import Settings
from exporter.simulator.api import SimulatedOrg


def settings_for(org: SimulatedOrg, **overrides: Any) -> Settings:
    """Exporter settings pointing at a simulated org on loopback, quiet and without jitter unless told otherwise.

    No jitter: cycles start on a fake clock's exact seconds, so tests can compare a scrape with the org.
    """
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "log_level": "error",
        "log_format": "json",
        "jitter": 0.0,
        **overrides,
    }
    return Settings(client_id=org.client_id, client_secret=org.client_secret, api_url=org.url, **values)


def rss_mib() -> float:
    """This process's resident memory now, in MiB, from /proc/self/status (NaN when it does not say)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
