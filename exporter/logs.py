"""structlog set-up: JSON lines for machines, a console view for people, and secrets redacted.

Redaction works on values, not only on key names: every secret the process knows (the client
secret, each access token) is registered with `redact()`, and any log field or message that
contains one is masked before it is rendered, whatever the code that logged it meant to do.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRETS: set[str] = set()
_SENSITIVE_KEYS = {"client_secret", "secret", "password", "token", "access_token", "authorization"}
MASK = "[REDACTED]"


def redact(secret: str) -> None:
    """Register a value that must never be rendered in a log line."""
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def shape_of(value: Any, depth: int = 4) -> Any:
    """The keys and types of a JSON value, never its values: what a log line may say of a payload
    the exporter could not read. Keys that look like ids (a map keyed by queue or user) are written
    `<id>`; a list shows its first element's shape."""
    if isinstance(value, dict):
        if depth == 0:
            return "object"
        return {("<id>" if _ID.match(str(k)) else str(k)): shape_of(v, depth - 1) for k, v in list(value.items())[:20]}
    if isinstance(value, list):
        return [shape_of(value[0], depth - 1)] if value and depth else "list"
    return "null" if value is None else type(value).__name__


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _SECRETS:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, BaseException):
        return _mask(f"{type(value).__name__}: {value}")
    return value


def _redact_processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        event[key] = MASK if key.lower() in _SENSITIVE_KEYS else _mask(event[key])
    return event


class _RedactingFilter(logging.Filter):
    """The same masking for stdlib records (aiohttp's own loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = _mask(record.getMessage()), None
        if record.exc_info:
            record.msg = f"{record.msg} ({_mask(record.exc_info[1])})"
            record.exc_info = None
        return True


def _stderr_logger(*_: Any) -> structlog.PrintLogger:
    """Whatever `sys.stderr` is when the line is written (test harnesses swap it)."""
    return structlog.PrintLogger(sys.stderr)


def configure(log_format: str = "auto", level: str = "info") -> None:
    """Set up structlog (and the stdlib loggers of aiohttp) once, at start-up."""
    as_console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()) if as_console else structlog.processors.JSONRenderer()
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RedactingFilter())
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=max(numeric, logging.WARNING), handlers=[handler], force=True)
