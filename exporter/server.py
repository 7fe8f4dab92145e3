"""The exporter's own HTTP server: `/metrics`, `/healthz`, `/readyz` and a landing page.

Every handler reads values that already exist (the cached page, the snapshot); none of them can
cause an API call, however many scrapers come and however often. The server runs on a thread and
event loop of its own (`ServingThread`): the exporter's loop folds answers and events hundreds of
times a second, and a scrape served there would wait out every such stall. What the handlers read is
immutable or swapped whole (the page's pieces, the snapshot); what is not (push's telemetry, for
the landing page) is read on the exporter's loop. `/metrics?collect[]=NAME` (as
node_exporter and mysqld_exporter take it) serves only the named collectors' part of the page, so
the small urgent part can be scraped more often than the 50,000-agent one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import html
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TypeVar

from aiohttp import web

from exporter import __version__
from exporter.genesys.notifications import TOPIC_KINDS
from exporter.page import MetricsPage
from exporter.push.telemetry import PushTelemetry
from exporter.snapshot import Store, merged
from exporter.sources.queue_directory import QUEUES
from exporter.sources.queue_states import QUEUE_STATES
from exporter.webconfig import BasicAuth

T = TypeVar("T")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_REQUEST_BYTES = 64 * 1024  # nothing we serve takes a body
# A page handed to the socket whole is copied into its send buffer, once per scraper; written a
# slice at a time, each waiting for the socket to drain, a scrape holds at most a slice. Each drain
# is a wake of the event loop, which waits for the GIL while the render thread holds it: slices of
# 1 MiB keep the wakes few.
WRITE_BYTES = 1024 * 1024


def slices(pieces: Iterable[bytes], size: int) -> Iterator[bytes | memoryview]:
    """The pieces as writes of `size` bytes (the last shorter): small pieces gathered, big ones cut."""
    gathered = bytearray()
    for piece in pieces:
        view = memoryview(piece)
        if gathered:
            taken = view[: size - len(gathered)]
            gathered += taken
            view = view[len(taken) :]
            if len(gathered) < size:
                continue
            yield bytes(gathered)
            gathered = bytearray()
        whole = len(view) - len(view) % size
        for start in range(0, whole, size):  # cut from the piece itself: no copy
            yield view[start : start + size]
        gathered += view[whole:]
    if gathered:
        yield bytes(gathered)


def wants_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip" and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


def collectors(request: web.Request, known: Collection[str]) -> tuple[str, ...]:
    """The `collect[]` names asked for (none: the whole page); an unknown one is a 400 saying which."""
    names = tuple(request.query.getall("collect[]", ()))
    for name in names:
        if name not in known:
            known = ", ".join(known)
            raise web.HTTPBadRequest(text=f"unknown collector {name!r} in collect[]: known are {known}\n")
    return names


SHARDED = ("agents",)  # the collectors served in shards: a shard of the others would repeat them in every job


def shard(request: web.Request, collectors: tuple[str, ...], shards: int) -> int | None:
    """The 0-based shard `&shard=K/N` asks for (None: all); a wrong one is a 400 saying what is right."""
    text = request.query.get("shard")
    if text is None:
        return None
    k, slash, n = text.partition("/")
    if not (slash and k.isdigit() and n.isdigit()):
        raise web.HTTPBadRequest(text=f"shard={text!r}: expected K/N, e.g. 1/{shards}\n")
    if int(n) != shards:
        raise web.HTTPBadRequest(
            text=f"shard={text}: this exporter serves the agents in {shards} shard(s) (GENESYS_AGENT_SHARDS)\n"
        )
    if not 1 <= int(k) <= shards:
        raise web.HTTPBadRequest(text=f"shard={text}: K runs from 1 to {shards}\n")
    if collectors != SHARDED:
        raise web.HTTPBadRequest(text="shard=K/N goes with collect[]=agents alone\n")
    return int(k) - 1


def create_app(
    page: MetricsPage,
    store: Store,
    auth: BasicAuth | None = None,
    push: Callable[[], PushTelemetry | None] = lambda: None,
    home: asyncio.AbstractEventLoop | None = None,
) -> web.Application:
    """The app; `home` is the exporter's loop when the server runs on another (push's state lives there)."""

    async def at_home(read: Callable[[], T]) -> T:
        if home is None or home is asyncio.get_running_loop():
            return read()

        async def call() -> T:
            return read()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), home))

    async def metrics(request: web.Request) -> web.StreamResponse:
        chosen = collectors(request, page.collectors)
        body = page.body_of(chosen, shard(request, chosen, page.shards))  # this page to the end, whatever comes
        if not wants_gzip(request):  # a large org's page takes a while to inflate: off the loop
            plain = await asyncio.to_thread(lambda: gzip.decompress(b"".join(body)))
            return web.Response(body=plain, headers={"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"})
        response = web.StreamResponse(
            headers={"Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        )
        response.content_length = sum(len(piece) for piece in body)
        await response.prepare(request)
        try:
            if request.method != "HEAD":
                for chunk in slices(body, WRITE_BYTES):
                    await response.write(chunk)
            await response.write_eof()
        except ConnectionError:  # the scraper hung up (its scrape timeout, say): nothing went wrong here
            pass
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if page.ready:  # judged on what /metrics serves, not on what is still being rendered
            return web.Response(text="ready\n")
        waiting = sorted(name for name, s in page.snapshot.pollers.items() if s.last_success is None)
        return web.Response(status=503, text=f"not ready: waiting for the first success of {', '.join(waiting)}\n")

    async def landing(_: web.Request) -> web.Response:
        text = await at_home(lambda: landing_page(store, time.time(), push(), page.collectors))
        return web.Response(text=text, content_type="text/html")

    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[auth.middleware] if auth else [])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", landing)
    return app


class ServingThread:
    """An aiohttp app served on a thread and event loop of its own, started and stopped from the caller's loop."""

    def __init__(self, app: web.Application, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self._app, self._host, self._port, self._tls = app, host, port, tls
        self._started: concurrent.futures.Future[tuple[str, int]] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="http", daemon=True)

    async def start(self) -> tuple[str, int]:
        """Listen (a bind error is raised here, as a same-loop server would); the host and port bound."""
        self._thread.start()
        return await asyncio.wrap_future(self._started)

    async def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)

    async def _serve(self) -> None:
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        try:
            await runner.setup()
            await web.TCPSite(runner, self._host, self._port, ssl_context=self._tls).start()
        except BaseException as error:
            await runner.cleanup()
            self._started.set_exception(error)
            return
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        host, port = runner.addresses[0][:2]
        self._started.set_result((host, port))
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()


def landing_page(store: Store, now: float, push: PushTelemetry | None = None, collectors: Collection[str] = ()) -> str:
    """A small status page: links, for each poller whether it is up and how fresh its data is, and push's health."""
    rows = []
    for name, status in sorted(store.snapshot.pollers.items()):
        state = {None: "starting", True: "up", False: "failing"}[status.up]
        age = f"{now - status.last_success:.0f} s ago" if status.last_success else "never"
        error = html.escape(status.last_error or "")
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td class={state}>{state}</td><td>{status.interval:g} s</td>"
            f"<td>{age}</td><td>{error}</td></tr>"
        )
    snapshot = store.snapshot
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>genesys-exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}
.up{{color:#1a7f37}}.failing{{color:#cf222e}}.starting{{color:#9a6700}}</style></head>
<body><h1>genesys-exporter {html.escape(__version__)}</h1>
<p><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></p>
<p>Parts of /metrics: {" · ".join(f'<a href="/metrics?collect[]={c}">collect[]={c}</a>' for c in collectors)}</p>
<p>{len(snapshot[QUEUES])} queues in scope, {len(merged(snapshot[QUEUE_STATES], snapshot[QUEUES]))} with live data.</p>
<table><tr><th>poller</th><th>state</th><th>cadence</th><th>last success</th><th>last error</th></tr>
{"".join(rows)}
</table>
{push_section(push, now)}</body></html>
"""


_DISTRUST_TEXT = {
    "unreadable": "no: its events could not be read (see the log for their shape); polled, push tried again later",
    "disagreeing": "no: polls found push wrong (see the log for the fields); polled, push tried again later",
}


def _trust_text(why: str | None) -> str:
    return "yes" if why is None else _DISTRUST_TEXT.get(why, f"no ({html.escape(why)})")


def push_section(push: PushTelemetry | None, now: float) -> str:
    """Push next to the pollers: channels, where each kind's live data comes from, the last event, reconnects.

    Channels are counted, never named: a channel id is a capability.
    """
    if push is None:
        return "<p>Push is off (GENESYS_PUSH=off): everything is polled.</p>\n"
    state = "up" if push.slots and push.channels >= push.slots else ("starting" if not push.channels else "failing")
    last = f"{now - push.last_event:.0f} s ago" if push.last_event is not None else "none yet"
    rows = "".join(
        f"<tr><td>{kind}</td><td>{push.items.get((kind, 'push'), 0)}</td><td>{push.items.get((kind, 'poll'), 0)}</td>"
        f"<td>{push.topics.get((kind, 'pending'), 0)}</td><td>{push.topics.get((kind, 'rejected'), 0)}</td>"
        f"<td>{push.events.get(kind, 0)}</td><td>{push.malformed_events.get(kind, 0)}</td>"
        f"<td>{push.disagreements.get(kind, 0)} of {push.compared.get(kind, 0)}</td>"
        f"<td class={'failing' if kind in push.distrusted else 'up'}>{_trust_text(push.distrusted.get(kind))}</td></tr>"
        for kind in TOPIC_KINDS
    )
    reconnects = ", ".join(f"{html.escape(r)} {n}" for r, n in sorted(push.reconnects.items())) or "none"
    clients = "".join(
        f"<br>client {html.escape(client)}: {push.channels_by_client.get(client, 0)} of {planned} connected"
        + (" (another exporter uses its channels: polled)" if push.conflicts.get(client) else "")
        for client, planned in push.slots_by_client.items()
        if len(push.slots_by_client) > 1 or push.conflicts.get(client)
    )
    return f"""<h2>Push</h2>
<p class={state}>{push.channels} of {push.slots} notification channels connected; last event {last};
reconnects: {reconnects}.{clients}</p>
<table><tr><th>kind</th><th>pushed</th><th>polled</th><th>pending topics</th><th>rejected topics</th>
<th>events</th><th>unreadable events</th><th>polls that found push wrong</th><th>trusted</th></tr>
{rows}
</table>
"""
