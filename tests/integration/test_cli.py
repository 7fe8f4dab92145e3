"""The command line as operators use it: real processes on 127.0.0.1, signals, exit codes, output."""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr

from exporter import cli
from exporter.app import Exporter
from exporter.check import run_checks
from exporter.clock import FakeClock
from exporter.config import OAuthClient, Settings
from exporter.genesys.client import GenesysClient
from exporter.process import GC_THRESHOLDS
from exporter.scheduling.budget import RateBudget
from exporter.simulator.api import SimulatedOrg, serve_simulator
from tests.harness.net import free_port
from tests.harness.simulated_org import settings_for

SECRET = "MARKER-cli-secret-4d1e"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "EXPORTER_"))}
    return {**env, "EXPORTER_LOG_FORMAT": "json", **extra}


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "exporter", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def get_when_up(url: str, within: float = 15.0) -> str:
    """GET `url` once the process serving it is up; the body. Blocking, unlike tests/harness/waiting's
    `eventually`: these tests are synchronous, driving real processes rather than this event loop."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def simulator() -> Iterator[str]:
    port = free_port()
    proc = start(
        "simulate",
        "--listen",
        f"127.0.0.1:{port}",
        "--queues",
        "5",
        "--agents",
        "30",
        env=clean_env(GENESYS_CLIENT_ID="cli-client", GENESYS_CLIENT_SECRET=SECRET),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:  # any answer (401 without a token) means it is up
            try:
                urllib.request.urlopen(f"{url}/api/v2/routing/queues", timeout=1)  # noqa: S310
            except urllib.error.HTTPError:
                break
            except OSError:
                assert time.monotonic() < deadline, "simulator did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert SECRET not in out  # it accepts the secret from the environment without echoing it


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "GENESYS_CLIENT_ID: required but not set"),
        (
            {"GENESYS_CLIENT_ID": "x", "GENESYS_CLIENT_SECRET": SECRET, "GENESYS_REGION": "mars"},
            "GENESYS_REGION: unknown region",
        ),
        (
            {"GENESYS_CLIENT_ID": "x", "GENESYS_CLIENT_SECRET": SECRET, "GENESYS_API_URL": "http://10.1.2.3"},
            "plain http is allowed only for loopback",
        ),
        (
            {
                "GENESYS_CLIENT_ID": "x",
                "GENESYS_CLIENT_SECRET": SECRET,
                "GENESYS_API_URL": "http://127.0.0.1:9",
                "GENESYS_AGENT_METRICS": "default,genesys_agent_mood",
            },
            "GENESYS_AGENT_METRICS: no agent family 'genesys_agent_mood'; known: default, all, genesys_agent_",
        ),
    ],
)
def test_bad_config_exits_2_with_one_line(env, expected, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "run"],
        env=clean_env(**env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_run_serves_then_stops_on_sigterm_within_5_seconds(simulator, tmp_path):
    port = free_port()
    proc = start(
        "run",
        "--listen",
        f"127.0.0.1:{port}",
        env=clean_env(GENESYS_CLIENT_ID="cli-client", GENESYS_CLIENT_SECRET=SECRET, GENESYS_API_URL=simulator),
    )
    try:
        assert get_when_up(f"http://127.0.0.1:{port}/readyz") == "ready\n"
        page = get_when_up(f"http://127.0.0.1:{port}/metrics")
        assert "genesys_queue_waiting_interactions{" in page
        assert 'genesys_exporter_poller_up{poller="queues"} 1' in page
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        stopped_in = time.monotonic() - started
    assert proc.returncode == 0
    assert stopped_in < 5
    assert SECRET not in out + err


def test_check_says_ok_for_a_good_client(simulator):
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check"],
        env=clean_env(GENESYS_CLIENT_ID="cli-client", GENESYS_CLIENT_SECRET=SECRET, GENESYS_API_URL=simulator),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok  ") == 10  # login, 5 endpoints, work teams, the channel, 2 topic kinds
    assert "FAIL" not in result.stdout
    assert "streaming-" not in result.stdout  # the channel id is a capability: never printed
    wrong = subprocess.run(
        [sys.executable, "-m", "exporter", "check"],
        env=clean_env(GENESYS_CLIENT_ID="cli-client", GENESYS_CLIENT_SECRET="not-it", GENESYS_API_URL=simulator),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert wrong.returncode == 1
    assert "FAIL  login: OAuth client credentials rejected" in wrong.stdout


def client_of(org: SimulatedOrg, clock: FakeClock) -> GenesysClient:
    """A client of the simulated org that tries each call once, as `check` does."""
    return GenesysClient(
        api_url=org.url,
        login_url=org.url,
        clients=[(OAuthClient(org.client_id, SecretStr(org.client_secret)), RateBudget(clock))],
        clock=clock,
        max_retries=0,
    )


async def test_check_names_a_missing_permission(clock: FakeClock):
    async with (
        serve_simulator(queues=2, agents=5, clock=clock, permissions=frozenset({"routing:queue:view"})) as org,
        client_of(org, clock) as client,
    ):
        findings = await run_checks(client)
    lines = [f.line() for f in findings]
    assert lines[0].startswith("ok    login")
    assert lines[1].startswith("ok    GET /api/v2/routing/queues")
    failed = [line for line in lines if line.startswith("FAIL")]
    # Every missing permission in one run, not only the first: a client without the aggregate
    # permission used to pass and then show no AHT.
    assert len(failed) == 4, lines
    assert "lacks analytics:queueObservation:view (needed for live queue metrics" in failed[0]
    assert "lacks analytics:conversationAggregate:view (needed for today's handled interactions" in failed[1]
    assert failed[2].startswith("FAIL  topic v2.analytics.queues.{id}.observations") and "polled instead" in failed[2]
    assert failed[3].startswith("FAIL  topic v2.users.{id}.activity")
    # Work teams only add a label and a filter: without them it is a warning, and `check` passes on it.
    (teams,) = [f for f in findings if "/api/v2/teams" in f.what]
    assert teams.line().startswith("warn  GET /api/v2/teams") and not teams.fails
    assert "lacks groups:team:view" in teams.detail and "agents get no team label" in teams.detail


async def test_check_skips_push_when_it_is_off_and_members_in_the_users_scope(clock: FakeClock):
    async with (
        serve_simulator(queues=2, agents=5, clock=clock) as org,
        client_of(org, clock) as client,
    ):
        findings = await run_checks(client, agent_scope="users", push=False)
        assert org.notifications.channels_of(org.client_id) == []
    assert all(f.ok for f in findings)
    assert not any("members" in f.what or "notifications" in f.what for f in findings)


def test_demo_prints_the_metrics_url_and_serves_it():
    port = free_port()
    proc = start("demo", "--listen", f"127.0.0.1:{port}", "--queues", "4", "--agents", "20", env=clean_env())
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert f"http://127.0.0.1:{port}/metrics" in lines[1]
        get_when_up(f"http://127.0.0.1:{port}/readyz")
        assert "genesys_agent_routing_status_code{" in get_when_up(f"http://127.0.0.1:{port}/metrics")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


@pytest.fixture
def default_gc() -> Iterator[None]:
    """Python's default GC thresholds for the test, the process's own afterwards."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)
    structlog.reset_defaults()


async def test_an_exporter_leaves_the_process_gc_alone(default_gc, clock):
    async with (
        serve_simulator(queues=2, agents=5, seed=1, clock=clock) as org,
        Exporter(settings_for(org), clock=clock),
    ):
        assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize("command", ["run", "demo"])
def test_run_and_demo_tune_the_gc_of_the_process_they_own(command, request, default_gc, monkeypatch, tmp_path):
    seen = []

    async def stop_at_once() -> None:
        seen.append(gc.get_threshold())

    monkeypatch.setattr(cli, "_until_stopped", stop_at_once)
    monkeypatch.chdir(tmp_path)  # no .env of the working tree
    for name in os.environ:
        if name.startswith(("GENESYS_", "EXPORTER_")):
            monkeypatch.delenv(name)
    if command == "run":
        for name, value in {"GENESYS_CLIENT_ID": "cli-client", "GENESYS_CLIENT_SECRET": SECRET}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("GENESYS_API_URL", request.getfixturevalue("simulator"))
        argv = ["run", "--listen", "127.0.0.1:0", "--log-format", "json"]
    else:
        argv = ["demo", "--listen", "127.0.0.1:0", "--queues", "2", "--agents", "5", "--log-format", "json"]
    assert cli.main(argv) == 0
    assert seen == [GC_THRESHOLDS]


@pytest.fixture
def in_process(monkeypatch, tmp_path) -> Iterator[None]:
    """A command run in this process, stopped as soon as it is up, without the tree's .env or variables."""

    async def stop_at_once() -> None:
        return None

    monkeypatch.setattr(cli, "_until_stopped", stop_at_once)
    monkeypatch.chdir(tmp_path)
    for name in os.environ:
        if name.startswith(("GENESYS_", "EXPORTER_")):
            monkeypatch.delenv(name)
    yield
    structlog.reset_defaults()  # the command set up logging for its process, which is this one
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


def test_simulate_clients_prints_every_id_and_only_the_simulators_own_secrets(in_process, monkeypatch, capsys):
    assert cli.main(["simulate", "--listen", "127.0.0.1:0", "--clients", "3"]) == 0
    out = capsys.readouterr().out
    assert (
        "  demo credentials: GENESYS_CLIENT_ID=demo-client,demo-client-2,demo-client-3 "
        "GENESYS_CLIENT_SECRET=demo-secret,demo-secret-2,demo-secret-3\n"
    ) in out
    monkeypatch.setenv("GENESYS_CLIENT_ID", "cli-client")
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", SECRET)
    assert cli.main(["simulate", "--listen", "127.0.0.1:0", "--clients", "2"]) == 0
    out = capsys.readouterr().out
    assert "accepting the credentials in GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET for cli-client\n" in out
    assert "demo credentials: GENESYS_CLIENT_ID=demo-client-2 GENESYS_CLIENT_SECRET=demo-secret-2\n" in out
    assert SECRET not in out


def test_demo_clients_and_a_bad_count(in_process, capsys):
    argv = ["demo", "--listen", "127.0.0.1:0", "--queues", "2", "--agents", "5", "--log-format", "json"]
    assert cli.main([*argv, "--clients", "2"]) == 0
    assert "demo credentials: GENESYS_CLIENT_ID=demo-client,demo-client-2 " in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--clients", "0"])
    assert exited.value.code == 2
    assert "--clients: expected a whole number of OAuth clients, at least 1" in capsys.readouterr().err


async def test_check_runs_for_each_client_and_labels_its_lines(capsys: pytest.CaptureFixture[str]):
    async with serve_simulator(queues=2, agents=5, clients=2) as org:
        first, second = org.clients
        secrets = [org.clients[first], "not-its-secret"]
        settings = Settings(client_id=f"{first},{second}", client_secret=",".join(secrets), api_url=org.url)
        status = await cli._check(settings)
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert [line for line in lines if line.startswith(f"{first}  ")] == lines[1:11]
    # login, 5 endpoints, work teams, the channel, 2 topic kinds
    assert all(line.startswith(f"{first}  ok  ") for line in lines[1:11])
    assert lines[11].startswith(f"{second}  FAIL  login: OAuth client credentials rejected")
    assert len(lines) == 12
    assert not any(secret in line for line in lines for secret in secrets)
