"""The Genesys Cloud endpoints the exporter calls, with the permission each one needs.

Each row serves three purposes: the `endpoint` label of `genesys_exporter_api_requests_total`
(bounded: one value per row, never a raw path), the 403 message that names the missing
permission, and the line `genesys-exporter check` prints for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    method: str
    path: str  # may hold `{queueId}`-style placeholders
    permissions: tuple[str, ...]  # any one of them is enough
    purpose: str  # what the operator loses without it, in plain words
    per_client: bool = False  # its answer is the asking OAuth client's own (a channel): the caller names the client

    def url_path(self, **params: str) -> str:
        return self.path.format(**params) if params else self.path


OAUTH_TOKEN = Endpoint("oauth_token", "POST", "/oauth/token", (), "logging in")
ROUTING_QUEUES = Endpoint(
    "routing_queues",
    "GET",
    "/api/v2/routing/queues",
    ("routing:queue:view",),
    "the list of queues and their names",
)
QUEUE_OBSERVATIONS = Endpoint(
    "queue_observations",
    "POST",
    "/api/v2/analytics/queues/observations/query",
    ("analytics:queueObservation:view",),
    "live queue metrics (waiting, available agents)",
)
QUEUE_MEMBERS = Endpoint(
    "queue_members",
    "GET",
    "/api/v2/routing/queues/{queueId}/members",
    ("routing:queue:view", "routing:queue:edit", "routing:queue:readonly", "routing:queueMember:manage"),
    "the agents of each queue",
)
USERS = Endpoint("users", "GET", "/api/v2/users", (), "agent names and live state")
CONVERSATION_AGGREGATES = Endpoint(
    "conversation_aggregates",
    "POST",
    "/api/v2/analytics/conversations/aggregates/query",
    ("analytics:conversationAggregate:view",),
    "today's handled interactions and handle time",
)

TEAMS = Endpoint(
    "teams",
    "GET",
    "/api/v2/teams",
    ("groups:team:view",),
    "work teams (the team label of the agents and the leaderboard's team filter)",
)
TEAM_MEMBERS = Endpoint(
    "team_members",
    "GET",
    "/api/v2/teams/{teamId}/members",
    ("groups:team:view",),
    "the members of each work team",
)

# Notifications (https://developer.genesys.cloud/notificationsalerts/notifications/): channel calls need
# no permission; each topic kind may (read from Rejected).
NOTIFICATION_CHANNELS = Endpoint(
    "notification_channels",
    "POST",
    "/api/v2/notifications/channels",
    (),
    "push notifications (a channel)",
    per_client=True,
)
NOTIFICATION_CHANNEL_LIST = Endpoint(
    "notification_channel_list",
    "GET",
    "/api/v2/notifications/channels",
    (),
    "finding the channels an earlier run left",
    per_client=True,
)
NOTIFICATION_SUBSCRIPTIONS = Endpoint(
    "notification_subscriptions",
    "PUT",
    "/api/v2/notifications/channels/{channelId}/subscriptions",
    (),
    "push notifications (topic subscriptions)",
    per_client=True,
)
