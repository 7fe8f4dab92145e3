"""Ways the simulated org misbehaves, as the real one does: per route, by rate or for a time window.

A fault is armed for a route name (`queue_observations`, `oauth_token`, ... or `*` for every API
route), fires on a share of matching requests (`rate`, drawn from its own seeded generator so the
model's randomness is untouched), optionally only between two clock readings, and takes one form:

- `status`: an ErrorBody with that HTTP status (429 carries `Retry-After`, 180+ s is a daily cap);
- `slow`: the answer is held back `delay` seconds (real time: client timeouts are real time);
- `reset`: the connection is cut halfway through the body;
- `malformed`: a 200 whose body is not JSON;
- `wrong_shape`: a 200 of valid JSON in the wrong shape (nulls, strings for counts, missing keys);
- `drift`: the real answer plus fields and enum values the exporter has never seen (must be fine);
- `revoke`: every issued token is revoked first (the request then gets a 401);
- `forbid`: 403 `missing.permissions` for the route's permission;
- `reject` (`notification_subscriptions`): the call succeeds but every topic comes back Rejected
  with the permission it needs in `missingPermissions`, and none is subscribed.

Faults of the Notifications API's sockets are armed for the route `notification_socket` (or `*`)
and drawn by the notifications room once a tick (0.2 s) for each open socket, so `rate` is a
share of ticks and `limit` counts draws, not requests. (Request faults such as `status` reach the
socket's handshake only when armed for `notification_socket` by name.)

- `silent`: the socket sends nothing more (heartbeats and pongs included) and never closes;
- `closing`: a maintenance `v2.system.socket_closing`, then the close `delay` s later (0: the
  org's `closing_delay`, about a minute);
- `duplicate`: each event of the tick is sent twice;
- `reorder`: the tick's events are sent in reverse order;
- `lag`: the tick's events are held back `delay` s;
- `evict`: one of the socket's client's channels is evicted, as a 21st channel created elsewhere
  would (the least recently used, unconnected ones first);
- `result_404`: the socket says `{"result": "404"}` and its channel is gone, but the socket stays
  open, answering pings, and carries nothing more;
- `drop`: the tick's events are not sent (heartbeats go on): push silently disagrees with the REST
  answers;
- `event_shape`: the tick's events come in a shape the SDK's models do not have (an observation's
  metric rows straight in `data`, an activity's parts as bare strings).

`drop` and `event_shape` touch the events of one topic kind with `topics=queues` or `topics=agents`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

RequestFaultKind = Literal["status", "slow", "reset", "malformed", "wrong_shape", "drift", "revoke", "forbid", "reject"]
SocketFaultKind = Literal[
    "silent", "closing", "duplicate", "reorder", "lag", "evict", "result_404", "drop", "event_shape"
]
FaultKind = RequestFaultKind | SocketFaultKind
SOCKET_ROUTE = "notification_socket"
SOCKET_KINDS: tuple[FaultKind, ...] = get_args(SocketFaultKind)
REQUEST_KINDS: tuple[FaultKind, ...] = get_args(RequestFaultKind)
KINDS: tuple[FaultKind, ...] = REQUEST_KINDS + SOCKET_KINDS


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    route: str = "*"
    rate: float = 1.0
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    start: float = -math.inf  # clock.monotonic() bounds of the window it is active in
    end: float = math.inf
    limit: int | None = None  # fire at most this many times
    client: str | None = None  # only this OAuth client's requests and sockets (None: everyone's)
    topics: str | None = None  # `drop`, `event_shape`: only events of this topic kind (None: both)

    def matches(self, route: str, now: float, client: str | None = None) -> bool:
        """`*` is every API route and every socket, but neither the token endpoint nor a socket's handshake."""
        named_only = route == "oauth_token" or (route == SOCKET_ROUTE and self.kind not in SOCKET_KINDS)
        return (
            (self.route == route if named_only else self.route in ("*", route))
            and self.start <= now < self.end
            and self.client in (None, client)
        )


def parse_fault(spec: str) -> Fault:
    """`ROUTE:KIND[:key=value,...]` from the command line, e.g. `queue_observations:status:status=503,rate=0.2`."""
    parts = spec.split(":", 2)
    if len(parts) < 2 or parts[1] not in KINDS:
        raise ValueError(f"invalid fault {spec!r}: use ROUTE:KIND[:key=value,...], KIND one of {', '.join(KINDS)}")
    options: dict[str, Any] = {}
    for item in filter(None, (parts[2] if len(parts) == 3 else "").split(",")):
        key, _, value = item.partition("=")
        if key not in ("rate", "status", "retry_after", "delay", "start", "end", "limit", "client", "topics"):
            raise ValueError(f"invalid fault option {key!r} in {spec!r}")
        if key == "topics" and value not in ("queues", "agents"):
            raise ValueError(f"invalid fault option topics={value!r} in {spec!r}: queues or agents")
        text_option = key in ("client", "topics")
        options[key] = value if text_option else int(value) if key in ("status", "limit") else float(value)
    return Fault(parts[1], parts[0], **options)


@dataclass
class Faults:
    """The armed faults; the first that matches and draws its rate wins."""

    seed: int = 0
    armed: list[Fault] = field(default_factory=list)
    fired: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._uses: dict[int, int] = {}

    def arm(self, *faults: Fault) -> None:
        self.armed.extend(faults)

    def clear(self) -> None:
        self.armed.clear()
        self._uses.clear()

    def pick(
        self, route: str, now: float, kinds: Collection[FaultKind] = KINDS, client: str | None = None
    ) -> Fault | None:
        """The fault for this request (or socket tick) of `client`, among those of the given kinds."""
        for index, fault in enumerate(self.armed):
            if fault.kind not in kinds or (fault.limit is not None and self._uses.get(index, 0) >= fault.limit):
                continue
            if fault.matches(route, now, client) and (fault.rate >= 1 or self._rng.random() < fault.rate):
                self._uses[index] = self._uses.get(index, 0) + 1
                self.fired[fault.kind] = self.fired.get(fault.kind, 0) + 1
                return fault
        return None


def wrong_shape(_: Any) -> Any:
    """Valid JSON that no Genesys response looks like: a group missing, a count that is a word."""
    return {
        "results": [
            {"data": [{"metric": "oWaiting", "stats": {"count": "many"}}]},
            {"group": None, "data": None},
        ],
        "entities": "none",
        "pageCount": "x",
    }


def drifted(body: Any) -> Any:
    """The same answer with fields and enum values from a future API version."""
    if isinstance(body, dict):
        out = {key: drifted(value) for key, value in body.items()}
        out["someFutureField"] = {"nested": [1, 2, 3]}
        rows = out.get("data")
        if isinstance(rows, list) and any(
            isinstance(r, dict) and r.get("metric") == "oUserRoutingStatuses" for r in rows
        ):
            rows.append({"metric": "oUserRoutingStatuses", "qualifier": "SOME_NEW_STATUS", "stats": {"count": 1}})
        return out
    if isinstance(body, list):
        return [drifted(item) for item in body]
    return body
