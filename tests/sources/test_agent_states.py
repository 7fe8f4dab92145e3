"""Agent pages in, states out; state pages are independent: one failing page never holds back or spoils
the others."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from exporter.genesys.endpoints import USERS, Endpoint
from exporter.genesys.errors import ServerError
from exporter.genesys.models import UserListing
from exporter.sources.agent_states import AgentState, parse_agent_states, poll_agent_states
from exporter.sources.batches import BatchesFailed


def test_states_read_best_effort_expands_without_guessing(fixture):
    states = parse_agent_states(UserListing.model_validate(fixture("users_state_page.json")))
    assert states["u-ann"].routing_status == "idle"
    assert states["u-ann"].presence == "on_queue"  # "On Queue" (definitions API) and ON_QUEUE agree
    assert states["u-bob"].presence == "on_queue"
    assert states["u-ann"].status_since == datetime(2026, 5, 14, 9, 58, tzinfo=UTC).timestamp()
    cy = states["u-cy"]
    assert (cy.routing_status, cy.presence, cy.status_since) == (None, None, None)


class FlakyUsersApi:
    """Answers `GET /users?id=...` from a table, failing for batches that contain `broken`."""

    def __init__(self, broken: str) -> None:
        self.broken = broken
        self.asked: list[list[str]] = []

    async def get_as(self, endpoint: Endpoint, model: type[UserListing], *, params: Mapping[str, Any]) -> UserListing:
        assert endpoint is USERS
        ids = list(params["id"])
        assert params["expand"] == "routingStatus,presence" and params["pageSize"] == 100
        self.asked.append(ids)
        if self.broken in ids:
            raise ServerError("users", "Genesys server error", status=503)
        return model.model_validate({"entities": [{"id": i, "routingStatus": {"status": "IDLE"}} for i in ids]})


async def test_a_failed_page_leaves_the_other_pages_published():
    ids = [f"u{i:03d}" for i in range(250)]
    api = FlakyUsersApi(broken="u150")
    published: dict[int, Mapping[str, AgentState]] = {}
    with pytest.raises(BatchesFailed) as caught:
        await poll_agent_states(api, ids, published.__setitem__)  # type: ignore[arg-type]
    assert sorted(len(batch) for batch in api.asked) == [50, 100, 100]
    assert sorted(published) == [0, 2]  # batch 1 (u100..u199) failed; 0 and 2 are in
    assert published[0]["u000"].routing_status == "idle"
    assert "1 of 3 batches failed" in str(caught.value)
    assert isinstance(caught.value.errors[0], ServerError)
