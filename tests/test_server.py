"""The exporter's own HTTP surface: cached pages, gzip, probes, and refusals without stack traces."""

from __future__ import annotations

import asyncio
import gzip
import threading
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from exporter import server
from exporter.clock import FakeClock
from exporter.metrics import Telemetry, render_parts
from exporter.page import MetricsPage
from exporter.server import create_app, slices, wants_gzip
from exporter.snapshot import PartKey, PollerStatus, Snapshot, Store
from exporter.sources import DEFAULT_SELECTION
from exporter.sources.agent_directory import AGENTS, Agent
from exporter.sources.agent_states import AGENT_STATES, AgentState
from exporter.sources.queue_directory import QUEUES, Queue
from exporter.sources.queue_states import QUEUE_STATES, QueueState
from tests.harness.scraping import by_labels, families_of


@pytest.fixture
async def served(clock: FakeClock) -> AsyncIterator[tuple[TestClient, Store, MetricsPage]]:
    store = Store(clock, {QUEUE_STATES: 30})
    store.set(QUEUES, {"q1": Queue("q1", "Sales <b>", "Home")})
    store.set_status("queues", PollerStatus(interval=10, up=False, last_error="403 <script>"))
    page = MetricsPage(store, lambda: Telemetry(requests={("queue_observations", "200", "cid"): 3}))
    page.refresh()
    client = TestClient(TestServer(create_app(page, store)))
    await client.start_server()
    yield client, store, page
    await client.close()


async def test_metrics_serves_the_cached_page_plain_and_gzip(served):
    client, store, page = served
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    body = await plain.read()
    assert body == page.plain
    assert b'genesys_queue_info{queue_id="q1",queue_name="Sales <b>",division="Home"} 1' in body
    assert b'genesys_exporter_api_requests_total{endpoint="queue_observations",code="200",client="cid"} 3' in body
    zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await zipped.read()) == page.plain
    store.set(QUEUES, {})  # a change is not rendered by a scrape: the page job does that
    assert await (await client.get("/metrics")).read() == body


async def test_probes_judge_readiness_on_the_page_being_served(served, clock):
    client, store, page = served
    assert (await client.get("/healthz")).status == 200
    not_ready = await client.get("/readyz")
    assert not_ready.status == 503
    assert "queues" in await not_ready.text()
    store.set_status("queues", PollerStatus(interval=10, up=True, last_success=clock.time()))
    assert (await client.get("/readyz")).status == 503  # succeeded, but /metrics does not show it yet
    page.refresh()
    assert (await client.get("/readyz")).status == 200


async def test_landing_page_escapes_what_the_api_said(served):
    client, *_ = served
    text = await (await client.get("/")).text()
    assert "/metrics" in text
    assert "403 &lt;script&gt;" in text
    assert "<script>" not in text


async def test_unknown_paths_wrong_methods_and_big_bodies_are_refused_plainly(served):
    client, *_ = served
    missing = await client.get("/nope")
    assert missing.status == 404
    wrong = await client.post("/metrics", data=b"x")
    assert wrong.status == 405
    big = await client.post("/metrics", data=b"x" * 200_000)
    assert big.status in (405, 413)
    for response in (missing, wrong, big):
        assert "Traceback" not in await response.text()


@pytest.mark.parametrize(
    ("header", "expected"),
    [("gzip", True), ("deflate, gzip;q=0.5", True), ("gzip;q=0", False), ("identity", False), ("", False)],
)
def test_accept_encoding(header, expected):
    request = make_mocked_request("GET", "/metrics", headers={"Accept-Encoding": header})
    assert wants_gzip(request) is expected


async def test_the_gzip_page_is_written_in_slices_and_head_gets_none(served, monkeypatch):
    client, _, page = served
    monkeypatch.setattr(server, "WRITE_BYTES", 7)  # many slices across the page's pieces
    zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert int(zipped.headers["Content-Length"]) == page.gzip_bytes
    assert await zipped.read() == page.gzipped
    head = await client.head("/metrics", headers={"Accept-Encoding": "gzip"})
    assert head.status == 200 and head.headers["Content-Encoding"] == "gzip"
    assert await head.read() == b""


async def test_a_scraper_that_hangs_up_mid_page_is_no_error(served, monkeypatch, caplog):
    """Prometheus drops a scrape at its timeout: aiohttp then fails the handler's next write (when it
    was waiting for the socket to drain), and the exporter's log must not call that an error."""
    client, _, _ = served
    written = asyncio.Event()

    async def write(self: web.StreamResponse, data: bytes) -> None:
        written.set()
        raise ConnectionError("Connection lost")  # as aiohttp's drain raises once the peer is gone

    monkeypatch.setattr(web.StreamResponse, "write", write)
    _, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
    await asyncio.wait_for(written.wait(), 10)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.2)  # what the handler's caller logs of how it ended
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


@pytest.fixture
async def whole_org(clock: FakeClock) -> AsyncIterator[tuple[TestClient, MetricsPage]]:
    """A page with every collector's part: queues, agents and the exporter's own."""
    store = Store(clock)
    store.set(QUEUES, {"q1": Queue("q1", "Sales", "Home")})
    store.set(AGENTS, {"u1": Agent("u1", "Ann", "Home")})
    store.put(AGENT_STATES, PartKey.polled(0), {"u1": AgentState("idle", "on_queue", 1.0)})
    store.put(QUEUE_STATES, PartKey.polled(0), {"q1": QueueState({"voice": 2}, {}, {}, {}, 1, {"idle": 1}, 2, 1)})
    store.set_status("queues", PollerStatus(interval=10, up=True, last_success=clock.time()))
    page = MetricsPage(store, Telemetry)
    page.refresh()
    client = TestClient(TestServer(create_app(page, store)))
    await client.start_server()
    yield client, page
    await client.close()


def text_of(*collectors: str, snapshot: Snapshot) -> str:
    """The collectors' families rendered from scratch, in page order: what their joined segments must inflate to."""
    return "".join(text for name, text in render_parts(snapshot, Telemetry()).items() if name in collectors)


async def test_collect_serves_only_the_chosen_collectors_in_page_order(whole_org):
    client, page = whole_org
    query = "collect[]=exporter&collect[]=queues"  # asked in any order, served in page order
    zipped = await client.get(f"/metrics?{query}", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert zipped.status == 200 and zipped.headers["Content-Encoding"] == "gzip"
    body = await zipped.read()
    assert int(zipped.headers["Content-Length"]) == len(body)
    text = gzip.decompress(body).decode()  # one valid member: the segments' CRCs combined
    assert text == text_of("queues", "exporter", snapshot=page.snapshot)
    assert "genesys_queue_waiting_interactions{" in text and "genesys_exporter_poller_up{" in text
    assert "genesys_agent_" not in text
    plain = await client.get(f"/metrics?{query}", headers={"Accept-Encoding": "identity"})
    assert (await plain.text()) == text
    head = await client.head(f"/metrics?{query}", headers={"Accept-Encoding": "gzip"})
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(body)
    assert await head.read() == b""
    head_plain = await client.head(f"/metrics?{query}", headers={"Accept-Encoding": "identity"})
    assert head_plain.status == 200 and int(head_plain.headers["Content-Length"]) == len(text.encode())
    assert await head_plain.read() == b""


@pytest.mark.parametrize("collector", ["queues", "agents", "teams", "exporter"])
async def test_each_collector_alone_and_all_of_them(whole_org, collector):
    client, page = whole_org
    alone = await (await client.get(f"/metrics?collect[]={collector}")).text()
    assert alone == text_of(collector, snapshot=page.snapshot)
    assert alone.strip(), f"{collector}: an empty part proves little"
    prefix = {
        "queues": "genesys_queue_",
        "agents": "genesys_agent_",
        "teams": "genesys_team_",
        "exporter": "genesys_exporter_",
    }[collector]
    assert all(line.startswith(prefix) for line in alone.splitlines() if not line.startswith("#"))  # as the README says
    every = "&".join(f"collect[]={name}" for name in ("agents", "exporter", "teams", "queues", collector))
    zipped = await client.get(f"/metrics?{every}", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert await zipped.read() == page.gzipped  # all of them (repeats allowed) is the page itself


async def test_an_unknown_collector_is_a_400_with_one_line(whole_org):
    client, _ = whole_org
    response = await client.get("/metrics?collect[]=queues&collect[]=agent")
    assert response.status == 400
    reason = await response.text()
    assert reason.count("\n") == 1 and "'agent'" in reason and "queues, agents, teams, exporter" in reason
    assert (await client.get("/metrics?collect[]=")).status == 400


@given(st.lists(st.binary(max_size=40), max_size=30), st.integers(1, 16))
def test_a_page_is_written_in_slices_of_one_size_whatever_its_pieces(pieces: list[bytes], size: int) -> None:
    chunks = [bytes(chunk) for chunk in slices(pieces, size)]
    assert b"".join(chunks) == b"".join(pieces)
    assert all(len(chunk) == size for chunk in chunks[:-1]) and all(chunks)


@pytest.fixture
async def threaded(clock: FakeClock) -> AsyncIterator[tuple[str, Store]]:
    """The app as the exporter serves it: on a thread and loop of its own, reading push's state at home."""
    store = Store(clock)
    store.set_status("queues", PollerStatus(interval=10, up=True, last_success=clock.time()))
    page = MetricsPage(store, Telemetry)
    page.refresh()
    app = create_app(page, store, push=lambda: None, home=asyncio.get_running_loop())
    serving = server.ServingThread(app, "127.0.0.1", 0, None)
    host, port = await serving.start()
    yield f"http://{host}:{port}", store
    await serving.stop()


async def test_scrapes_are_answered_while_the_exporters_loop_is_held(threaded):
    """A fold or a flush that holds the exporter's loop holds no scrape: the server has a loop of its own."""
    url, _ = threaded
    answered = threading.Event()
    bodies: list[bytes] = []

    def scrape() -> None:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:  # noqa: S310 (our own http URL)
            bodies.append(response.read())
        answered.set()

    scraper = threading.Thread(target=scrape)
    scraper.start()
    held = answered.wait(timeout=10)  # blocks this loop, as a long callback would, until the scrape is answered
    scraper.join()
    assert held, "the scrape waited for the exporter's loop"
    assert b"genesys_exporter_poller_up" in bodies[0]


async def test_the_landing_page_reads_push_on_the_exporters_loop(threaded):
    url, _ = threaded
    async with aiohttp.ClientSession() as http, http.get(f"{url}/") as response:
        assert response.status == 200
        assert "Push is off" in await response.text()


async def test_a_port_in_use_is_an_error_from_start(threaded):
    url, store = threaded
    port = int(url.rsplit(":", 1)[1])
    app = create_app(MetricsPage(store, Telemetry), store)
    with pytest.raises(OSError, match="address already in use"):
        await server.ServingThread(app, "127.0.0.1", port, None).start()


@pytest.fixture
async def sharded(clock: FakeClock) -> AsyncIterator[tuple[TestClient, MetricsPage]]:
    """Six agents served in two shards of collect[]=agents."""
    store = Store(clock)
    agents = {f"u{n}": Agent(f"u{n}", f"Agent {n}", "Home") for n in range(6)}
    store.set(AGENTS, agents)
    store.put(AGENT_STATES, PartKey.polled(0), dict.fromkeys(agents, AgentState("idle", "on_queue", 1.0)))
    page = MetricsPage(store, Telemetry, selection=replace(DEFAULT_SELECTION, shards=2))
    page.refresh()
    client = TestClient(TestServer(create_app(page, store)))
    await client.start_server()
    yield client, page
    await client.close()


def samples(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


async def test_the_agents_shards_together_are_the_agents_part_each_with_every_header(sharded):
    client, _ = sharded
    whole = await (await client.get("/metrics?collect[]=agents")).text()
    shards = [await (await client.get(f"/metrics?collect[]=agents&shard={k}/2")).text() for k in (1, 2)]
    assert sorted(samples(shards[0]) + samples(shards[1])) == sorted(samples(whole))
    assert all(samples(shard) for shard in shards), "six agents and neither shard empty"
    headers = [line for line in whole.splitlines() if line.startswith("#")]
    for shard in shards:
        assert [line for line in shard.splitlines() if line.startswith("#")] == headers
        families_of(shard)  # each parses on its own
    users = [{line.split('"')[1] for line in samples(shard)} for shard in shards]
    assert not users[0] & users[1]  # an agent's series are all in one shard


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("collect[]=agents&shard=3/2", "K runs from 1 to 2"),
        ("collect[]=agents&shard=1/3", "in 2 shard(s)"),
        ("collect[]=agents&shard=one", "expected K/N"),
        ("collect[]=agents&collect[]=queues&shard=1/2", "collect[]=agents alone"),
        ("shard=1/2", "collect[]=agents alone"),
    ],
)
async def test_a_wrong_shard_is_a_400_saying_what_is_right(sharded, query, words):
    client, _ = sharded
    response = await client.get(f"/metrics?{query}")
    assert response.status == 400
    reason = await response.text()
    assert reason.count("\n") == 1 and words in reason


async def test_the_exporter_says_what_each_part_costs_a_prometheus(whole_org):
    client, _ = whole_org
    text = await (await client.get("/metrics")).text()
    series = by_labels(families_of(text), "genesys_exporter_collector_series", "collector")
    size = by_labels(families_of(text), "genesys_exporter_collector_bytes", "collector")
    for collector in ("queues", "agents"):
        part = await (await client.get(f"/metrics?collect[]={collector}")).text()
        assert series[(collector,)] == len(samples(part))
        assert size[(collector,)] == len(part.encode())
