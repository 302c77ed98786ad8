"""The payment sandbox as a real process for tests: started with keys minted the way `omsctl up` mints
them (`omsctl.stack.payment_settings`, handed over by `payment_sandbox_env` / `payment_client_env`),
its notification schedule scaled down to milliseconds, and a merchant receiver here that records what
the sandbox notifies and refuses on demand."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from omsctl.stack import payment_client_env, payment_sandbox_env, payment_settings

ROOT = Path(__file__).resolve().parent.parent
# WeChat's 15 s, 15 s, 30 s, 3 m … become 15 ms, 15 ms, 30 ms, 180 ms …
SCHEDULE_FACTOR = 0.001


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """The merchant's notify URLs: `/wechat` answers 204 (or 500 while refusing), `/alipay` ``success``."""

    url: str = ""
    wechat: list[Delivery] = field(default_factory=list)
    alipay: list[dict[str, str]] = field(default_factory=list)
    refuse: dict[str, int] = field(default_factory=lambda: {"wechat": 0, "alipay": 0})

    def _refusing(self, name: str) -> bool:
        if self.refuse[name] > 0:
            self.refuse[name] -= 1
            return True
        return False

    async def on_wechat(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 500 if self._refusing("wechat") else 204
        self.wechat.append(Delivery(dict(request.headers), body, status))
        if status == 500:
            return web.json_response({"code": "FAIL", "message": "失败"}, status=500)
        return web.Response(status=204)

    async def on_alipay(self, request: web.Request) -> web.Response:
        form = dict(parse_qsl((await request.read()).decode("utf-8"), keep_blank_values=True))
        self.alipay.append(form)
        return web.Response(text="fail" if self._refusing("alipay") else "success")


@dataclass
class Sandbox:
    base: str
    session: aiohttp.ClientSession
    keys: dict[str, str]
    home: Path

    def client_env(self) -> dict[str, str]:
        port = int(self.base.rsplit(":", 1)[1])
        return payment_client_env(self.home, port)

    async def control(self, provider: str, **switches: Any) -> dict[str, Any]:
        async with self.session.post(f"{self.base}/_control/{provider}", json=switches) as response:
            assert response.status == 200, await response.text()
            return dict(await response.json())

    async def reset(self) -> None:
        async with self.session.post(f"{self.base}/_control/reset") as response:
            assert response.status == 200, await response.text()

    async def pay(self, provider: str, out_trade_no: str, amount: int, **extra: Any) -> dict[str, Any]:
        body = {"provider": provider, "out_trade_no": out_trade_no, "amount": amount, **extra}
        async with self.session.post(f"{self.base}/_control/payments", json=body) as response:
            assert response.status in (200, 201), await response.text()
            return dict((await response.json())["trade"])

    async def _list(self, what: str, **query: str) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.base}/_control/{what}", params=query) as response:
            assert response.status == 200, await response.text()
            return list((await response.json())[what])

    async def trade(self, provider: str, out_trade_no: str) -> dict[str, Any]:
        (found,) = await self._list("trades", provider=provider, out_trade_no=out_trade_no)
        return found

    async def refunds(self, provider: str, **query: str) -> list[dict[str, Any]]:
        return await self._list("refunds", provider=provider, **query)

    async def notifications(self, provider: str, **query: str) -> list[dict[str, Any]]:
        return await self._list("notifications", provider=provider, **query)


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    app = web.Application()
    app.router.add_post("/wechat", hooks.on_wechat)
    app.router.add_post("/alipay", hooks.on_alipay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hooks.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield hooks
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running(home: Path, receiver: Receiver) -> AsyncIterator[Sandbox]:
    keys = payment_settings(home)
    env = {
        **os.environ,
        **payment_sandbox_env(home),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "gen"), str(ROOT)]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandboxes.payments",
        "--host=127.0.0.1",
        "--port=0",
        "--seed=14",
        f"--wechat-notify-url={receiver.url}/wechat",
        f"--alipay-notify-url={receiver.url}/alipay",
        f"--notify-schedule-factor={SCHEDULE_FACTOR}",
        "--notify-timeout-seconds=2",
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
            async with session.get(f"{base}/_health") as response:
                assert await response.json() == {"status": "ok"}
            yield Sandbox(base, session, keys, home)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
