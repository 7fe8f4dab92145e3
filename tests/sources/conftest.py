"""Set-ups the source tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from exporter.genesys.models import QueueListing


@pytest.fixture
def queue_listings(fixture: Callable[[str], Any]) -> list[QueueListing]:
    """The two recorded pages of `GET /routing/queues`: three queues, in two divisions."""
    return [QueueListing.model_validate(fixture(f"routing_queues_page{n}.json")) for n in (1, 2)]
