"""`genesys-exporter bench long-soak`: a large exporter over a long wall-clock run, and its memory.

An exporter at 50,000 agents runs for weeks, and what grows slowly shows only over hours. The
simulated org runs in a process of its own (its ledger and sockets are not the exporter's memory),
changing hundreds of agent states a second; the exporter runs in this process as `run` sets it up
(the process tuned, the heap frozen once ready), with push on and the shipped defaults, so that
its tasks and heap can be read from inside. Within the run, on purpose:

- a midnight: the day's figures start (`GENESYS_DAY_START`) a third of the way in, so the day rolls
  over and the tallies start again from nothing;
- channel renewals: the org's channels live `channel_ttl` seconds (the service's are 24 h) and the
  exporter replaces each an hour before it ends, so they are replaced halfway through;
- sweeps, every 10 minutes, as shipped.

Printed every `every` seconds: RSS and its peak, Python's allocated blocks (the live heap's trend:
cheap to read, unlike a walk of the heap), asyncio tasks, open file descriptors (sockets
included), and the channel replacements and reconnects so far.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exporter.app import Exporter
from exporter.config import load_settings
from exporter.process import freeze_heap, tune_process
from exporter.sources.agent_directory import AGENTS
from exporter.tools.harness import simulator_process, status_mib


@dataclass(frozen=True, slots=True)
class Sample:
    minute: float
    rss_mib: float
    peak_rss_mib: float
    allocated_blocks: int
    tasks: int
    open_fds: int
    renewals: int
    reconnects: int
    agents: int
    day_rolled: bool


async def long_soak(queues: int, agents: int, clients: int, minutes: float, every: float = 60.0) -> list[Sample]:
    started = time.monotonic()
    duration = minutes * 60
    day_start = (datetime.now(UTC) + timedelta(seconds=duration / 3)).replace(second=0, microsecond=0)
    channel_ttl = 3600 + duration / 2  # renewed an hour before it ends: halfway through
    samples: list[Sample] = []
    async with simulator_process(queues, agents, 300, clients, f"--channel-ttl={channel_ttl:.0f}", "--seed=4") as org:
        settings = load_settings(
            None,
            {
                "client_id": org.client_id,
                "client_secret": org.client_secret,
                "api_url": org.url,
                "timezone": "UTC",
                "day_start": day_start.strftime("%H:%M"),
            },
        )
        async with Exporter(settings) as exporter:
            frozen = False
            while (elapsed := time.monotonic() - started) < duration:
                if not frozen and exporter.page.ready:
                    freeze_heap()
                    frozen = True
                push = exporter.push.pool.reconnects if exporter.push is not None else {}
                samples.append(
                    Sample(
                        minute=elapsed / 60,
                        rss_mib=status_mib("VmRSS:"),
                        peak_rss_mib=status_mib("VmHWM:"),
                        allocated_blocks=sys.getallocatedblocks(),
                        tasks=len(asyncio.all_tasks()),
                        open_fds=len(os.listdir("/proc/self/fd")),
                        renewals=push.get("renewal", 0),
                        reconnects=sum(n for reason, n in push.items() if reason not in ("renewal", "maintenance")),
                        agents=len(exporter.store.snapshot[AGENTS]),
                        day_rolled=datetime.now(UTC) >= day_start,
                    )
                )
                print(_row(samples[-1]), flush=True)
                await asyncio.sleep(every)
    return samples


HEADING = ("minute", "RSS MiB", "peak MiB", "blocks", "tasks", "fds", "renewals", "reconnects", "agents", "new day")
WIDTHS = (7, 8, 9, 10, 6, 5, 9, 11, 7, 8)


def _row(sample: Sample) -> str:
    values = (
        f"{sample.minute:.1f}",
        f"{sample.rss_mib:.0f}",
        f"{sample.peak_rss_mib:.0f}",
        str(sample.allocated_blocks),
        str(sample.tasks),
        str(sample.open_fds),
        str(sample.renewals),
        str(sample.reconnects),
        str(sample.agents),
        "yes" if sample.day_rolled else "no",
    )
    return " ".join(f"{v:>{w}}" for v, w in zip(values, WIDTHS, strict=True))


def print_long_soak(queues: int, agents: int, clients: int, minutes: float) -> None:
    tune_process()  # as `run` does
    print(
        f"long soak: {queues} queues, {agents} agents, {clients} OAuth clients, push on, {minutes:.0f} minutes of "
        "wall time; a new day a third of the way in, channels renewed halfway, sweeps every 10 minutes"
    )
    print(" ".join(f"{h:>{w}}" for h, w in zip(HEADING, WIDTHS, strict=True)), flush=True)
    samples = asyncio.run(long_soak(queues, agents, clients, minutes))
    settled = [s for s in samples if s.minute >= 10]
    if settled:
        first, last = settled[0], settled[-1]
        peak = max(s.peak_rss_mib for s in samples)
        print(
            f"from minute {first.minute:.0f} to {last.minute:.0f}: RSS {first.rss_mib:.0f} -> {last.rss_mib:.0f} MiB, "
            f"allocated blocks {first.allocated_blocks} -> {last.allocated_blocks}, tasks {first.tasks} -> "
            f"{last.tasks}, fds {first.open_fds} -> {last.open_fds}; peak RSS {peak:.0f} MiB"
        )
