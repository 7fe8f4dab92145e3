"""`genesys-exporter chaos` (`make chaos`): every fault the simulated org can throw, and what held.

For each fault: a fresh org and exporter on a fake clock (real sockets on 127.0.0.1), a minute of
calm, the fault for `duration` seconds, then calm again. Printed per row: how long after the fault
cleared every poller was fresh again; requests the org refused for exceeding its real rate limit
(injected 429s do not count); false values (a queue series that changed, or read 0 where the last
good poll said otherwise, without a successful poll behind it); parse errors counted; and the
process's resident memory before and after. Figures, not assertions: a row fails only where an
invariant broke, and the command then exits 1.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.simulator.api import serve_simulator
from exporter.simulator.faults import Fault
from exporter.tools.harness import rss_mib, settings_for

CALM_SECONDS = 60
RECOVERY_LIMIT = 300


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: tuple[Fault, ...]


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

    @property
    def ok(self) -> bool:
        return self.recovery <= RECOVERY_LIMIT and self.over_budget == 0 and self.false_values == 0


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


async def _step(exporter: Exporter, clock: FakeClock, watch: Watch | None = None) -> None:
    await clock.advance(1)
    for _ in range(200):  # let in-flight requests and the re-render land (real time, bounded)
        if exporter.page.current:
            break
        await asyncio.sleep(0.005)
    if watch is not None:
        watch.step()


def _fresh(exporter: Exporter, since: float) -> bool:
    """Every poller up, and each that polls within the recovery window has succeeded since `since`."""
    return all(
        s.up and s.last_success is not None and (s.interval > RECOVERY_LIMIT or s.last_success >= since)
        for s in exporter.store.snapshot.pollers.values()
    )


async def run_scenario(scenario: Scenario, duration: float) -> Row:
    clock = FakeClock(start=time.time())
    rss_before = rss_mib()
    async with serve_simulator(queues=20, agents=200, seed=5, clock=clock) as org:
        settings = settings_for(org, request_timeout=1.0)
        async with Exporter(settings, clock=clock, render_debounce=0.0) as exporter:
            while not exporter.page.ready:
                await _step(exporter, clock)
            for _ in range(CALM_SECONDS):
                await _step(exporter, clock)
            watch = Watch(exporter)
            watch.step()
            org.faults.arm(*scenario.faults)
            for _ in range(int(duration)):
                await _step(exporter, clock, watch)
            org.faults.clear()
            cleared = clock.time()
            recovery = 0.0
            while not _fresh(exporter, cleared) and recovery < RECOVERY_LIMIT + 1:
                await _step(exporter, clock, watch)
                recovery += 1
            parse_errors = sum(exporter.client.stats.parse_errors.values())
        over_budget = org.rate_limited
    return Row(scenario.name, recovery, over_budget, watch.false_values, parse_errors, rss_before, rss_mib())


def print_chaos(duration: float = 40.0) -> bool:
    header = (
        f"{'fault':<30} {'recovery s':>10} {'over budget':>11} {'false values':>12} {'parse errors':>12} "
        f"{'RSS MiB before':>14} {'after':>7}  verdict"
    )
    print(f"chaos: each fault for {duration:.0f} s (fake clock), then cleared; 20 queues, 200 agents")
    print(header)
    rows = []
    for scenario in SCENARIOS:
        row = asyncio.run(run_scenario(scenario, duration))
        rows.append(row)
        print(
            f"{row.name:<30} {row.recovery:>10.0f} {row.over_budget:>11} {row.false_values:>12} {row.parse_errors:>12} "
            f"{row.rss_before:>14.0f} {row.rss_after:>7.0f}  {'ok' if row.ok else 'FAILED'}",
            flush=True,
        )
    return all(row.ok for row in rows)
