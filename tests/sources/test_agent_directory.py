"""Queue member pages and user pages in, the agents in scope out."""

from __future__ import annotations

from exporter.genesys.models import MemberListing, UserListing
from exporter.sources.agent_directory import Agent, parse_member_pages
from exporter.sources.user_listing import parse_user_pages


def test_directories_from_users_and_members(fixture):
    agents = parse_user_pages([UserListing.model_validate(fixture("users_state_page.json"))])
    assert agents["u-ann"] == Agent("u-ann", "Ann O'Neill", "Home")
    assert agents["u-cy"].division == ""
    members = parse_member_pages(
        MemberListing.model_validate(page)
        for page in [
            {
                "entities": [
                    {
                        "id": "u-1",
                        "name": "Ann",
                        "joined": True,
                        "user": {"id": "u-1", "division": {"id": "d", "name": "EU"}},
                    }
                ]
            },
            {"entities": [{"id": "u-2", "user": {"id": "u-2", "name": "Bo"}}, {"id": "u-1", "name": "Ann"}]},
        ]
    )
    assert set(members) == {"u-1", "u-2"}
    assert members["u-2"].name == "Bo"
