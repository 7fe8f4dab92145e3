"""TLS and basic auth on /metrics with a real TLS client, a self-signed certificate made here, and
bcrypt-hashed users, the way Prometheus exporters are secured; and label values that need escaping."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from exporter.app import Exporter
from exporter.config import ConfigError
from exporter.exposition import labels
from exporter.metrics import Telemetry, render
from exporter.simulator.api import serve_simulator
from exporter.snapshot import Part, PartKey, Snapshot
from exporter.sources.agent_directory import AGENTS, Agent
from exporter.sources.queue_directory import QUEUES, Queue
from exporter.sources.queue_states import QUEUE_STATES, QueueState
from exporter.webconfig import load_web_config
from tests.harness.net import basic_auth
from tests.harness.scraping import assert_promtool_accepts
from tests.harness.simulated_org import settings_for
from tests.harness.waiting import eventually

PASSWORD = "scrape-MARKER-pass"


def self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "server.crt", tmp / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    cert, _ = self_signed(tmp_path)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    client_tls = ssl.create_default_context(cafile=str(cert))
    async with (
        serve_simulator(queues=2, agents=6, seed=2) as org,
        Exporter(settings_for(org, web_config_file=web_config)) as exporter,
    ):
        await eventually(lambda: exporter.page.ready)
        yield exporter.url, client_tls


async def test_tls_and_basic_auth_guard_metrics_but_not_the_probes(secured):
    url, client_tls = secured
    assert url.startswith("https://127.0.0.1:")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/metrics", ssl=client_tls) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Basic")
        wrong = basic_auth("prometheus", "guess")
        async with http.get(f"{url}/metrics", ssl=client_tls, headers=wrong) as response:
            assert response.status == 401
        for _ in range(3):  # the second and third are served from the verified-password cache
            async with http.get(f"{url}/metrics", ssl=client_tls, headers=basic_auth("prometheus", PASSWORD)) as r:
                assert r.status == 200
                assert "genesys_queue_info{" in await r.text()
        async with http.get(f"{url}/", ssl=client_tls) as response:
            assert response.status == 401
        async with http.get(f"{url}/healthz", ssl=client_tls) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with http.get(f"{url}/healthz", ssl=ssl.create_default_context()):
                pass  # an untrusted certificate is refused by a real TLS client
        with pytest.raises(aiohttp.ClientError):
            async with http.get(url.replace("https://", "http://") + "/metrics"):
                pass


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n", "no such file"),
        ("tls_server_config:\n  cert_file: a.crt\n", "needs both cert_file and key_file"),
        ("basic_auth_users:\n  bob: plaintext\n", "not a bcrypt hash"),
        ("what: ever\n", "expected only"),
        ("basic_auth_users: [\n", "malformed YAML"),
    ],
)
def test_bad_web_configs_are_one_line_errors(tmp_path, content, words):
    path = tmp_path / "web.yml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=words) as caught:
        load_web_config(path)
    assert "\n" not in str(caught.value)


async def test_awkward_names_are_escaped_so_promtool_accepts_the_page(promtool):
    names = ['Sales "EMEA"', "Back\\slash", "New\nline", "Zoë ☎ 支持", ""]
    queues = {f"q{i}": Queue(f"q{i}", name, name) for i, name in enumerate(names)}
    state = QueueState({"voice": 1}, {"voice": 0}, {"voice": 0}, {}, 0, {"idle": 0}, 1, 1)
    snapshot = Snapshot().with_data(
        {
            QUEUES: queues,
            QUEUE_STATES: {PartKey.polled(0): Part(dict.fromkeys(queues, state), 0)},
            AGENTS: {"u1": Agent("u1", 'O\'Brien "Bob"\n', "Div\\1")},
        }
    )
    text = render(snapshot, Telemetry())
    assert labels(queue_name='Sales "EMEA"') in text
    await assert_promtool_accepts(promtool, text)
