"""The channel sandbox as a real process for tests, and the gateway's channel webhook as far as orders
needs it: each push is checked with the gateway's own signature rule (`services.gateway.domain.webhooks
.signed`, the secrets shaped as WEBHOOK_SECRETS) and ingested through orders' ingest path."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from omsctl.stack import CHANNEL_APPS
from services.gateway.domain.webhooks import signed

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"taobao": os.urandom(32), "douyin": os.urandom(32)}

# (channel, the raw body) → the order id orders answered
Ingest = Callable[[str, bytes], Awaitable[str]]


@dataclass
class Hooks:
    """`POST /v1/webhooks/channels/{sender}`: 401 for a bad signature, else the push is ingested."""

    url: str = ""
    ingest: Ingest | None = None
    received: list[tuple[str, int]] = field(default_factory=list)

    async def on_push(self, request: web.Request) -> web.Response:
        sender = request.match_info["sender"]
        body = await request.read()
        ok = signed(
            SECRETS.get(sender),
            request.headers.get("x-oms-webhook-timestamp", ""),
            request.headers.get("x-oms-webhook-signature", ""),
            body,
            time.time(),
            300,
        )
        if not ok:
            self.received.append((sender, 401))
            return web.json_response({"message": "authentication required"}, status=401)
        if self.ingest is None:
            self.received.append((sender, 503))
            return web.json_response({"message": "nobody ingests"}, status=503)
        reference = await self.ingest(sender, body)
        self.received.append((sender, 200))
        return web.json_response({"accepted": True, "reference": reference})


@dataclass
class ChannelSandbox:
    base: str
    session: aiohttp.ClientSession

    async def control(self, channel: str, **switches: Any) -> dict[str, Any]:
        async with self.session.post(f"{self.base}/_control/{channel}", json=switches) as response:
            assert response.status == 200, await response.text()
            return dict(await response.json())

    async def revoke(self, channel: str) -> None:
        async with self.session.post(f"{self.base}/_control/{channel}/revoke") as response:
            assert response.status == 200, await response.text()

    async def reset(self) -> None:
        async with self.session.post(f"{self.base}/_control/reset") as response:
            assert response.status == 200, await response.text()

    async def make(self, channel: str, count: int, push: int | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"channel": channel, "count": count}
        if push is not None:
            body["push"] = push
        async with self.session.post(f"{self.base}/_control/orders", json=body) as response:
            assert response.status == 201, await response.text()
            return list((await response.json())["orders"])

    async def shown(self) -> dict[str, Any]:
        async with self.session.get(f"{self.base}/_control") as response:
            return dict(await response.json())

    def connection(self, channel: str) -> dict[str, str]:
        """A CHANNEL_CONNECTIONS entry for the development app (as `omsctl up` gives orders)."""
        return {"channel": channel.upper(), "api_url": self.base, **CHANNEL_APPS[channel]}


@asynccontextmanager
async def hooks_running() -> AsyncIterator[Hooks]:
    hooks = Hooks()
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_post("/v1/webhooks/channels/{sender}", hooks.on_push)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hooks.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/webhooks/channels"
    try:
        yield hooks
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running(push_url: str) -> AsyncIterator[ChannelSandbox]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "gen"), str(ROOT)]),
        "CHANNEL_SANDBOX_APPS": json.dumps(CHANNEL_APPS),
        "CHANNEL_SANDBOX_WEBHOOK_SECRETS": json.dumps(
            {f"channel/{name}": base64.b64encode(secret).decode() for name, secret in SECRETS.items()}
        ),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandboxes.channels",
        "--host=127.0.0.1",
        "--port=0",
        "--seed=15",
        f"--push-url={push_url}",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        assert line.startswith("listening on "), line
        base = line.removeprefix("listening on ").strip()
        async with aiohttp.ClientSession() as session:
            yield ChannelSandbox(base, session)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
