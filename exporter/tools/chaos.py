"""`genesys-exporter chaos` (`make chaos`): every fault the simulated org can throw, and what held.

For each fault: a fresh org and exporter on a fake clock (real sockets on 127.0.0.1), a minute of
calm, the fault for `duration` seconds, then calm again. Printed per row: how long after the fault
cleared every poller was fresh again (and, with push, every item pushed again); requests the org
refused for exceeding its real rate limit (injected 429s do not count); false values; parse errors
counted; and the process's resident memory before and after. Figures, not assertions: a row fails
only where an invariant broke, and the command then exits 1.

The API faults run with push off: they prove the polling safety net, where a false value is a
queue series that changed, or read 0 where the last good poll said otherwise, without a successful
poll behind it. The push faults run with push on, where values change with every event: there a
false value is a queue or agent series whose value the org did not have at any moment of the last
`TRUTH_WINDOW` seconds (a changed value still on its way is not false; a stale or invented one is).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.genesys.notifications import TopicKind
from exporter.push.trust import RETRY_AFTER_SECONDS
from exporter.simulator.api import SimulatedOrg, serve_simulator
from exporter.simulator.faults import SOCKET_ROUTE as SOCKET
from exporter.simulator.faults import Fault
from exporter.simulator.model import SimAgent
from exporter.sources.agent_directory import AGENTS
from exporter.sources.agent_states import ROUTING_CODES
from exporter.sources.queue_directory import QUEUES
from exporter.tools.harness import rss_mib, settings_for

CALM_SECONDS = 60
RECOVERY_LIMIT = 300


# Seconds of the org's past a pushed value may come from: a socket that goes silent without a close
# is known dead 30 s after its last word (a ping unanswered for 10 s), and its items' fallback poll
# lands a few seconds later. Until then its data is the last it told.
TRUTH_WINDOW = 45


# A stream gone wrong without a sound is found by the audit (a poll of pushed items every 20 s, each
# disagreement counted once its channel has lived 35 s more) or by ten unreadable events in a row; a
# kind found wrong is polled, and push is tried again after 10 minutes, the longest such a row takes
# to recover.
DETECTION_WINDOW = 90
DISTRUST_RECOVERY_LIMIT = RETRY_AFTER_SECONDS + RECOVERY_LIMIT


@dataclass(frozen=True)
class Scenario:
    """A fault armed for the row; false values count from `judged_after` seconds into it (a detection
    window), and recovery is judged against `recovery_limit`."""

    name: str
    faults: tuple[Fault, ...]
    push: bool = False
    judged_after: float = 0.0
    recovery_limit: float = RECOVERY_LIMIT


def distrusting(name: str, fault: Fault) -> Scenario:
    """A push fault the exporter must find out by itself: judged after the detection window, and
    recovered once push is tried again."""
    return Scenario(name, (fault,), push=True, judged_after=DETECTION_WINDOW, recovery_limit=DISTRUST_RECOVERY_LIMIT)


SCENARIOS = (
    Scenario("429 storm, Retry-After 5 s", (Fault("status", status=429, retry_after=5, rate=0.5),)),
    Scenario("503 burst", (Fault("status", status=503),)),
    Scenario(
        "500/502/504 mix",
        (Fault("status", status=500, rate=0.3), Fault("status", status=502, rate=0.4), Fault("status", status=504)),
    ),
    Scenario("slow past the 1 s timeout", (Fault("slow", "queue_observations", delay=1.5),)),
    Scenario("connection reset mid-body", (Fault("reset", rate=0.5),)),
    Scenario("malformed JSON", (Fault("malformed", "queue_observations"),)),
    Scenario("valid JSON, wrong shape", (Fault("wrong_shape", "users"),)),
    Scenario("new fields and enum values", (Fault("drift"),)),
    Scenario("tokens revoked early", (Fault("revoke", rate=0.05),)),
    Scenario("403 on queue observations", (Fault("forbid", "queue_observations"),)),
    Scenario("token endpoint down", (Fault("revoke", limit=1), Fault("status", "oauth_token", status=503))),
    Scenario(
        "429 with Retry-After 600 s", (Fault("status", "queue_observations", status=429, retry_after=600, limit=1),)
    ),
    Scenario("push: socket silent, no close", (Fault("silent", SOCKET, limit=1),), push=True),
    Scenario("push: socket_closing, then close", (Fault("closing", SOCKET, delay=20, limit=1),), push=True),
    Scenario("push: duplicated events", (Fault("duplicate", SOCKET),), push=True),
    Scenario("push: out-of-order events", (Fault("reorder", SOCKET),), push=True),
    Scenario("push: events delayed 5 s", (Fault("lag", SOCKET, delay=5),), push=True),
    Scenario("push: evicted by a 21st channel", (Fault("evict", SOCKET, limit=1),), push=True),
    Scenario("push: tokens revoked, sockets closed", (Fault("revoke", limit=1),), push=True),
    Scenario(
        "push: evicted, topics Rejected",
        (Fault("evict", SOCKET, limit=1), Fault("reject", "notification_subscriptions")),
        push=True,
    ),
    Scenario(
        "push: evicted, subscriptions 403",
        (Fault("evict", SOCKET, limit=1), Fault("forbid", "notification_subscriptions")),
        push=True,
    ),
    Scenario(
        "push: evicted, 429 on new channels",
        (Fault("evict", SOCKET, limit=1), Fault("status", "notification_channels", status=429, retry_after=5)),
        push=True,
    ),
    Scenario("push: result 404 frame, socket open", (Fault("result_404", SOCKET, limit=1),), push=True),
    distrusting("push: queue events, unknown shape", Fault("event_shape", SOCKET, topics="queues")),
    distrusting("push: agent events, unknown shape", Fault("event_shape", SOCKET, topics="agents")),
    distrusting("push: events silently lost", Fault("drop", SOCKET)),
)


@dataclass
class Row:
    name: str
    recovery: float
    over_budget: int
    false_values: int
    parse_errors: int
    rss_before: float
    rss_after: float
    recovery_limit: float = RECOVERY_LIMIT

    @property
    def ok(self) -> bool:
        return self.recovery <= self.recovery_limit and self.over_budget == 0 and self.false_values == 0


class Watch:
    """Reads the page each step and counts queue values no successful poll stands behind."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.last_success: float | None = None
        self.last_good: dict[tuple[str, ...], float] = {}
        self.false_values = 0

    def step(self) -> None:
        status = self.exporter.store.status("queues")
        values = {
            (sample.name, *sorted(f"{k}={v}" for k, v in sample.labels.items())): sample.value
            for family in text_string_to_metric_families(self.exporter.page.plain.decode())
            if family.name.startswith("genesys_queue_") and family.name != "genesys_queue_info"
            for sample in family.samples
        }
        rendered_success = self.exporter.page.snapshot.pollers.get("queues")
        success = rendered_success.last_success if rendered_success else None
        if success != self.last_success or status is None:
            self.last_success, self.last_good = success, values
            return
        for key, value in values.items():
            if key[0].startswith(("genesys_queue_waiting", "genesys_queue_available", "genesys_queue_agents")) and (
                key not in self.last_good or self.last_good[key] != value
            ):
                self.false_values += 1


ROUTING_NAMES = {code: name for name, code in ROUTING_CODES.items()}


class TruthWatch:
    """Counts pushed-era values the org did not have at any moment of the last `TRUTH_WINDOW` seconds.

    It listens to the org's change feed, so a state that lasted a moment (an agent idle for a
    second between two calls) counts as true: each value keeps the last time it held.
    """

    def __init__(self, exporter: Exporter, org: SimulatedOrg) -> None:
        self.exporter, self.org = exporter, org
        self.held: dict[tuple[str, ...], float] = {}  # (series..., value) -> last fake time it held
        self.false_values = 0
        org.model.listeners.append(self)
        self._now = exporter.clock.time
        self._record_all()

    def agent_changed(self, agent: SimAgent) -> None:
        self.held[("routing", agent.id, agent.routing_status.lower(), "1")] = self._now()
        for queue_id in agent.queues:  # their queues' available agents changed with them
            self.queue_changed(queue_id)

    def queue_changed(self, queue_id: str) -> None:
        truth, now = self.org.model.queue_truth(queue_id), self._now()
        for media, n in truth.waiting.items():
            self.held[("waiting", queue_id, media, str(float(n)))] = now
        self.held[("available", queue_id, str(float(truth.on_queue.get("IDLE", 0))))] = now

    def _record_all(self) -> None:
        for agent in self.org.model.agents.values():
            self.held[("routing", agent.id, agent.routing_status.lower(), "1")] = self._now()
        for queue_id in self.org.model.queues:
            self.queue_changed(queue_id)

    def step(self) -> None:
        self.org.model.advance(self._now())
        self._record_all()  # what holds now has held until now
        since = self._now() - TRUTH_WINDOW
        for family in text_string_to_metric_families(self.exporter.page.plain.decode()):
            for sample in family.samples:
                labels, value = sample.labels, str(float(sample.value))
                if sample.name == "genesys_queue_waiting_interactions":
                    key: tuple[str, ...] = ("waiting", labels["queue_id"], labels["media_type"], value)
                elif sample.name == "genesys_queue_available_agents":
                    key = ("available", labels["queue_id"], value)
                elif sample.name == "genesys_agent_routing_status_code":
                    key = ("routing", labels["user_id"], ROUTING_NAMES.get(int(sample.value), "another"), "1")
                else:
                    continue
                if self.held.get(key, -math.inf) < since:
                    self.false_values += 1


async def _step(exporter: Exporter, clock: FakeClock, watch: Watch | TruthWatch | None = None) -> None:
    await clock.advance(1)
    for _ in range(200):  # let in-flight requests and the re-render land (real time, bounded)
        if exporter.page.current:
            break
        await asyncio.sleep(0.005)
    if watch is not None:
        watch.step()


def _fresh(exporter: Exporter, since: float) -> bool:
    """Every poller up, each that polls within the recovery window has succeeded since `since`, and
    with push, every item that was pushed before the fault pushed again."""
    return all(
        s.up and s.last_success is not None and (s.interval > RECOVERY_LIMIT or s.last_success >= since)
        for s in exporter.store.snapshot.pollers.values()
    ) and (exporter.push is None or _all_pushed(exporter))


def _all_pushed(exporter: Exporter) -> bool:
    """Every item pushed again, but those whose topic the service refused (those are polled)."""
    assert exporter.push is not None
    snapshot, pool = exporter.store.snapshot, exporter.push.pool
    scopes: dict[TopicKind, frozenset[str]] = {
        "agents": frozenset(snapshot[AGENTS]),
        "queues": frozenset(snapshot[QUEUES]),
    }
    return all(pool.owned(kind) | pool.rejected(kind) == scope for kind, scope in scopes.items())


async def run_scenario(scenario: Scenario, duration: float) -> Row:
    clock = FakeClock(start=time.time())
    rss_before = rss_mib()
    async with serve_simulator(queues=20, agents=200, seed=5, clock=clock) as org:
        settings = settings_for(org, request_timeout=1.0, push="auto" if scenario.push else "off")
        async with Exporter(settings, clock=clock, render_debounce=0.0) as exporter:
            while not exporter.page.ready:
                await _step(exporter, clock)
            truth = TruthWatch(exporter, org) if scenario.push else None  # the org's past, from the calm on
            for _ in range(CALM_SECONDS):
                await _step(exporter, clock, truth)
            watch: Watch | TruthWatch = truth or Watch(exporter)
            watch.step()
            watch.false_values = 0  # judged from the fault on
            org.faults.arm(*scenario.faults)
            for second in range(int(max(duration, scenario.judged_after + 10))):
                if second == scenario.judged_after:
                    watch.false_values = 0  # judged from the end of the detection window on
                await _step(exporter, clock, watch)
            org.faults.clear()
            cleared = clock.time()
            recovery = 0.0
            while not _fresh(exporter, cleared) and recovery < scenario.recovery_limit + 1:
                await _step(exporter, clock, watch)
                recovery += 1
            parse_errors = sum(exporter.client.stats.parse_errors.values())
        over_budget = org.rate_limited
    return Row(
        scenario.name,
        recovery,
        over_budget,
        watch.false_values,
        parse_errors,
        rss_before,
        rss_mib(),
        scenario.recovery_limit,
    )


def print_chaos(duration: float = 40.0, only: str = "") -> bool:
    header = (
        f"{'fault':<36} {'recovery s':>10} {'over budget':>11} {'false values':>12} {'parse errors':>12} "
        f"{'RSS MiB before':>14} {'after':>7}  verdict"
    )
    print(f"chaos: each fault for {duration:.0f} s (fake clock), then cleared; 20 queues, 200 agents")
    print(header)
    rows = []
    for scenario in (s for s in SCENARIOS if only in s.name):
        row = asyncio.run(run_scenario(scenario, duration))
        rows.append(row)
        print(
            f"{row.name:<36} {row.recovery:>10.0f} {row.over_budget:>11} {row.false_values:>12} {row.parse_errors:>12} "
            f"{row.rss_before:>14.0f} {row.rss_after:>7.0f}  {'ok' if row.ok else 'FAILED'}",
            flush=True,
        )
    return all(row.ok for row in rows)
