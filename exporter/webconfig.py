"""TLS and basic auth for the exporter's own server, configured the way Prometheus exporters do it.

The file has the shape of the exporter-toolkit web config, so operators can reuse theirs:

    tls_server_config:
      cert_file: server.crt        # relative paths are relative to this file
      key_file: server.key
    basic_auth_users:
      prometheus: $2y$10$...       # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\\n')

`/metrics` and the landing page then need the password; `/healthz` and `/readyz` stay open for
probes (they tell nothing about the org). bcrypt is slow on purpose, so a verified password is
remembered by its SHA-256 and a scrape every 15 s costs one hash, not one bcrypt round.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml
from aiohttp import web

from exporter.config import ConfigError

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class WebConfig:
    cert_file: Path | None = None
    key_file: Path | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.cert_file is None or self.key_file is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def load_web_config(path: Path) -> WebConfig:
    """Read and check the file; any problem is one `ConfigError` line naming it."""
    where = f"--web.config.file {path}"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it: {error.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{where}: malformed YAML") from None
    if not isinstance(raw, dict) or set(raw) - {"tls_server_config", "basic_auth_users"}:
        raise ConfigError(f"{where}: expected only tls_server_config and basic_auth_users")
    tls = raw.get("tls_server_config") or {}
    cert, key = tls.get("cert_file"), tls.get("key_file")
    if bool(cert) != bool(key):
        raise ConfigError(f"{where}: tls_server_config needs both cert_file and key_file")
    cert_path = (path.parent / cert) if cert else None
    key_path = (path.parent / key) if key else None
    for name, file in (("cert_file", cert_path), ("key_file", key_path)):
        if file is not None and not file.is_file():
            raise ConfigError(f"{where}: tls_server_config.{name}: no such file {file}")
    users: dict[str, bytes] = {}
    for user, hashed in (raw.get("basic_auth_users") or {}).items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(f"{where}: basic_auth_users.{user}: not a bcrypt hash")
        users[str(user)] = hashed.encode()
    config = WebConfig(cert_path, key_path, users)
    try:
        config.ssl_context()
    except (ssl.SSLError, ValueError) as error:
        raise ConfigError(f"{where}: the certificate and key do not load: {error}") from None
    return config


class BasicAuth:
    """The middleware that asks for a password on every path but the probes."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._verified: set[bytes] = set()  # SHA-256 of user:password pairs bcrypt has accepted

    def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self._users.get(user)
        if hashed is None:
            return False
        digest = hashlib.sha256(f"{user}:{password}".encode()).digest()
        if any(hmac.compare_digest(digest, known) for known in self._verified):
            return True
        if bcrypt.checkpw(password.encode(), hashed):
            self._verified.add(digest)
            return True
        return False

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or self.check(request.headers.get("Authorization")):
            return await handler(request)
        return web.Response(
            status=401, text="Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="genesys-exporter"'}
        )
