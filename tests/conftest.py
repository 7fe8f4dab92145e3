"""Shared fixtures: JSON payloads shaped like the real API, golden exposition files, a fake clock."""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.clock import FakeClock

HERE = Path(__file__).parent
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers that cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    """The token endpoint's Authorization header (aiohttp.BasicAuth is deprecated)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.fixture
def fixture() -> Callable[[str], Any]:
    def load(name: str) -> Any:
        return json.loads((HERE / "fixtures" / name).read_text(encoding="utf-8"))

    return load


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare text with tests/golden/<name>; UPDATE_GOLDEN=1 rewrites the file instead."""

    def check(name: str, actual: str) -> None:
        path = HERE / "golden" / name
        if UPDATE_GOLDEN:
            path.write_text(actual, encoding="utf-8")
        assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1 and review it"
        assert actual == path.read_text(encoding="utf-8")

    return check


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
