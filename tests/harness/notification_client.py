"""A test client of the simulated Notifications API: its REST calls, and a socket read in the background."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from exporter.simulator.api import SimulatedOrg
from tests.harness.net import basic_auth

CHANNELS = "/api/v2/notifications/channels"


def queue_topic(queue_id: str) -> str:
    """A queue's observation topic, as the exporter subscribes to it."""
    return f"v2.analytics.queues.{queue_id}.observations"


def user_topic(agent_id: str) -> str:
    """An agent's activity topic, as the exporter subscribes to it."""
    return f"v2.users.{agent_id}.activity"


class Client:
    """One OAuth client's REST calls to the simulated org (the org's first client unless told)."""

    def __init__(self, org: SimulatedOrg, http: aiohttp.ClientSession, client_id: str | None = None) -> None:
        self.org, self.http, self.token = org, http, ""
        self.client_id = client_id or org.client_id

    async def login(self, secret: str | None = None) -> int:
        """Log in (with the client's own secret unless told); the token endpoint's status."""
        auth = basic_auth(self.client_id, secret or self.org.clients.get(self.client_id, ""))
        async with self.http.post(
            f"{self.org.url}/oauth/token", data={"grant_type": "client_credentials"}, headers=auth
        ) as r:
            body = await r.json()
            if r.status == 200:
                self.token = body["access_token"]
            return r.status

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        async with self.http.request(method, self.org.url + path, headers=headers, **kw) as r:
            text = await r.text()
            return r.status, json.loads(text) if text else None, r.headers

    async def channel(self) -> dict[str, Any]:
        status, body, _ = await self.call("POST", CHANNELS)
        assert status == 200, body
        return dict(body)

    async def subscribe(
        self, channel_id: str, topics: list[str], *, method: str = "PUT", ignore: bool = False
    ) -> tuple[int, Any]:
        params = {"ignoreErrors": "true"} if ignore else {}
        status, body, _ = await self.call(
            method, f"{CHANNELS}/{channel_id}/subscriptions", json=[{"id": t} for t in topics], params=params
        )
        return status, body

    async def head(self, channel_id: str) -> int:
        return (await self.call("HEAD", f"{CHANNELS}/{channel_id}"))[0]

    async def scenario(self, **body: Any) -> Any:
        async with self.http.post(f"{self.org.url}/__admin/scenario", json=body) as r:
            assert r.status == 200, await r.text()
            return await r.json()


class Stream:
    """A socket read in the background: every message kept, and the close code once closed."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, uri: str) -> Stream:
        return cls(await http.ws_connect(uri, autoping=False))

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.raw.append(message.data)
                self.messages.append(json.loads(message.data))
        self.close_code = self.ws.close_code
        self.closed.set()

    def topic(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["topicName"] == name]

    def bodies(self, name: str) -> list[dict[str, Any]]:
        return [m["eventBody"] for m in self.topic(name)]

    async def ping(self) -> None:
        await self.ws.send_str(json.dumps({"message": "ping"}))

    async def close(self) -> None:
        await self.ws.close()
        await self._task


async def connected(client: Client, topics: list[str]) -> tuple[dict[str, Any], Stream]:
    """A new channel of `client`, subscribed to `topics` (which must succeed), and its socket open."""
    channel = await client.channel()
    status, body = await client.subscribe(channel["id"], topics)
    assert status == 200, body
    return channel, await Stream.open(client.http, channel["connectUri"])
