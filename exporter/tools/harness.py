"""What more than one tool needs: an exporter's settings against a simulated org, the org and Debian's
binaries as processes of their own, and memory as `ps` sees it.

Shared here rather than imported from one tool by another, so each tool stands on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from exporter.config import Settings
from exporter.simulator.api import SimulatedOrg


def settings_for(org: SimulatedOrg, **overrides: Any) -> Settings:
    """Exporter settings pointing at a simulated org on loopback, quiet and without jitter unless told otherwise.

    No jitter: cycles start on a fake clock's exact seconds, so tests can compare a scrape with the org.
    """
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "log_level": "error",
        "log_format": "json",
        "jitter": 0.0,
        **overrides,
    }
    return Settings(client_id=org.client_id, client_secret=org.client_secret, api_url=org.url, **values)


def rss_mib() -> float:
    """This process's resident memory now, in MiB, from /proc/self/status (NaN when it does not say)."""
    return status_mib("VmRSS:")


def status_mib(field: str) -> float:
    """A memory figure of /proc/self/status (`VmRSS:`, `VmHWM:` its peak), in MiB; NaN when it does not say."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib_of(pid: int) -> float:
    """Another process's resident memory, as `ps` shows it (measured from outside the process)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return math.nan
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmRSS:")), math.nan)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class SimulatorProcess:
    url: str
    client_id: str  # comma lists, one entry per OAuth client, as GENESYS_CLIENT_ID takes them
    client_secret: str
    pid: int


@contextlib.asynccontextmanager
async def simulator_process(
    queues: int, agents: int, rate_limit: int, clients: int = 1, *more: str
) -> AsyncIterator[SimulatorProcess]:
    """`genesys-exporter simulate` in a child process on 127.0.0.1, with `more` of its flags; yields its
    base URL and the demo credentials it prints (one client each) once it serves."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        "simulate",
        f"--listen=127.0.0.1:{port}",
        f"--queues={queues}",
        f"--agents={agents}",
        f"--rate-limit={rate_limit}",
        f"--clients={clients}",
        *more,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("GENESYS_")},  # its demo credentials
    )
    try:
        assert process.stdout is not None
        banner = await asyncio.wait_for(process.stdout.readline(), timeout=600)
        if not banner:
            raise RuntimeError("the simulated org exited before serving")
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode()
        credentials = dict(word.split("=", 1) for word in line.split() if word.startswith("GENESYS_CLIENT_"))
        if set(credentials) != {"GENESYS_CLIENT_ID", "GENESYS_CLIENT_SECRET"}:
            raise RuntimeError(f"the simulated org printed no demo credentials: {line!r}")
        url = f"http://127.0.0.1:{port}"
        yield SimulatorProcess(url, credentials["GENESYS_CLIENT_ID"], credentials["GENESYS_CLIENT_SECRET"], process.pid)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} not found: `make tools` installs Debian's prometheus package")
    return path


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL if it lingers: a tool stops what it started."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def wait_for(http: aiohttp.ClientSession, url: str, within: float, what: str) -> float:
    """Until `url` answers 200; the seconds it took."""
    began = time.monotonic()
    while not await answers(http, url):
        if time.monotonic() - began > within:
            raise RuntimeError(f"{what} not ready within {within:.0f} s")
        await asyncio.sleep(1)
    return time.monotonic() - began


@contextlib.asynccontextmanager
async def prometheus_process(
    config: Mapping[str, Any], work: Path, *, gogc: int | None = None
) -> AsyncIterator[tuple[str, int]]:
    """Debian's Prometheus with `config`, its data and log in `work`, on a free port of 127.0.0.1: its
    URL and process id (to read its memory from outside) until the block ends. `gogc`: the Go
    collector's target (GOGC), which releases of Prometheus set differently; None leaves Debian's."""
    port = free_port()
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread((work / "prometheus.yml").write_text, yaml.safe_dump(dict(config)))
    with (work / "prometheus.log").open("w") as log:
        process = await asyncio.create_subprocess_exec(
            binary("prometheus"),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
            env=None if gogc is None else {**os.environ, "GOGC": str(gogc)},
        )
    try:
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        await stop(process)
