"""Shared fixtures: JSON payloads shaped like the real API, golden exposition files, a fake clock, promtool.

Helpers that are not fixtures live in tests/harness/: a test module never imports from a conftest.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.clock import FakeClock

HERE = Path(__file__).parent
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.fixture
def fixture() -> Callable[[str], Any]:
    """Load tests/fixtures/<name>: JSON answers recorded in the shape of the real API."""

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
    """A clock that moves only when the test says, so hours of schedule run in milliseconds."""
    return FakeClock()


@pytest.fixture(scope="session")
def promtool() -> str:
    """Debian's promtool, which checks pages, rules and configs as Prometheus reads them."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: `make tools` installs Debian's prometheus package")
    return path
