"""Models of the response parts the exporter reads; every other field is ignored.

Lenient where the API is Unconfirmed or best effort (optional fields, unknown enum values kept as
plain strings) and strict where a wrong shape must not turn into a number: a page that does not
fit raises `pydantic.ValidationError` (`msgspec.ValidationError` for the aggregates), which the
pollers count as a parse error.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _string_dimensions(value: object) -> object:
    """Group keys we know are strings; a future dimension of another type is dropped, not fatal."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if isinstance(v, str)}
    return value


Group = Annotated[dict[str, str], BeforeValidator(_string_dimensions)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Division(_Model):
    id: str
    name: str | None = None


class QueueEntity(_Model):
    id: str
    name: str
    division: Division | None = None


class Stats(_Model):
    """StatisticalSummary: observations mostly fill `count`; `calculatedMetricValue` carries oLongest*."""

    count: int | None = None
    sum: float | None = None
    max: float | None = None
    ratio: float | None = None
    numerator: float | None = None
    denominator: float | None = None
    calculated_metric_value: float | None = Field(None, alias="calculatedMetricValue")


class MetricRow(_Model):
    metric: str
    qualifier: str | None = None
    stats: Stats = Stats()


class ObservationResult(_Model):
    group: Group
    data: list[MetricRow] = []


class ObservationResponse(_Model):
    """QueueObservationQueryResponse."""

    results: list[ObservationResult] = []


class UserRef(_Model):
    id: str
    name: str | None = None
    division: Division | None = None


class QueueMemberEntity(_Model):
    """QueueMember: `id` is the user's id; `user` may carry the name and division; `joined` says whether
    the member is active in the queue."""

    id: str
    name: str | None = None
    user: UserRef | None = None
    joined: bool | None = None


class TeamRef(_Model):
    """The team a user belongs to (`expand=team`), or one entry of `GET /api/v2/teams`."""

    id: str
    name: str | None = None
    division: Division | None = None


class TeamListing(_Model):
    """TeamEntityListing: cursor paging, `nextUri` until the last page."""

    entities: list[TeamRef] = []


class TeamMemberListing(_Model):
    """TeamMemberEntityListing: the members' ids (and names with `expand=entities`), cursor paging."""

    entities: list[UserRef] = []


class RoutingStatusPart(_Model):
    status: str | None = None
    start_time: str | None = Field(None, alias="startTime")


class PresenceDefinitionRef(_Model):
    id: str | None = None
    system_presence: str | None = Field(None, alias="systemPresence")


class PresencePart(_Model):
    presence_definition: PresenceDefinitionRef | None = Field(None, alias="presenceDefinition")
    modified_date: str | None = Field(None, alias="modifiedDate")


class UserEntity(_Model):
    """User, with `routingStatus`/`presence` only when the best-effort expand delivered them."""

    id: str
    name: str | None = None
    division: Division | None = None
    state: str | None = None
    routing_status: RoutingStatusPart | None = Field(None, alias="routingStatus")
    presence: PresencePart | None = None
    team: TeamRef | None = None  # only with `expand=team`, best effort: missing is unknown, not "no team"


# The aggregate answers are msgspec structs, not pydantic: a per-user answer of a large org is
# megabytes, and msgspec checks it in a fraction of pydantic's time on the event loop, into objects
# the collector does not track (gc=False: they hold no references back, so no cycles).


class AggregateStats(msgspec.Struct, gc=False):
    count: int | None = None
    sum: float | None = None
    numerator: float | None = None
    denominator: float | None = None


class AggregateRow(msgspec.Struct, gc=False):
    metric: str
    stats: AggregateStats | None = None


class AggregateBucket(msgspec.Struct, gc=False):
    metrics: list[AggregateRow] = []


class AggregateResult(msgspec.Struct, gc=False):
    group: dict[str, object] = {}  # dimension -> value; a value that is not a string is ignored where it is read
    data: list[AggregateBucket] = []


class AggregateResponse(msgspec.Struct, gc=False):
    """ConversationAggregateQueryResponse: empty groups and metric rows are left out by the API."""

    results: list[AggregateResult] = []


AGGREGATE_RESPONSE = msgspec.json.Decoder(AggregateResponse)


class QueueListing(_Model):
    entities: list[QueueEntity] = []


class MemberListing(_Model):
    entities: list[QueueMemberEntity] = []


class UserListing(_Model):
    entities: list[UserEntity] = []
