from __future__ import annotations

import logging

import pytest
import structlog

from exporter import logs

MARKER = "MARKER-secret-7f3a"


@pytest.fixture(autouse=True)
def restore_logging():
    yield
    structlog.reset_defaults()
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


def test_secrets_are_masked_in_structlog_and_stdlib_lines(capsys):
    logs.configure("json", "debug")
    logs.redact(MARKER)
    log = structlog.get_logger("t")
    log.info("login", url=f"https://x/?s={MARKER}", client_secret="anything", note="plain")
    log.error("failed", error=RuntimeError(f"bad {MARKER}"))
    logging.getLogger("aiohttp.server").error("boom %s", MARKER)
    try:
        raise ValueError(MARKER)
    except ValueError:
        log.exception("crash")
    err = capsys.readouterr().err
    assert MARKER not in err
    assert err.count(logs.MASK) >= 4
    assert '"note": "plain"' in err
