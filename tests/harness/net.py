"""Loopback plumbing: a port for a server that cannot take port 0, and an OAuth client's Basic header."""

from __future__ import annotations

import base64
import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers that cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    """The token endpoint's Authorization header (aiohttp.BasicAuth is deprecated)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}
