"""The sandbox over HTTP: each marketplace's real endpoints, its habits on demand, and the control API.

- Taobao (TOP): ``POST /router/rest`` (taobao.trades.sold.increment.get), OAuth ``POST /token``
- Douyin shop: ``POST /order/searchList``, ``POST /token/create``, ``POST /token/refresh``
- ``GET /_health``; ``GET /_control``; ``POST /_control/reset``; ``POST /_control/{channel}`` (switches);
  ``POST /_control/{channel}/revoke``; ``POST /_control/orders`` (make orders, push some);
  ``GET /_control/orders``
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from sandboxes.channels import tokens
from sandboxes.channels.behaviour import CHANNELS, ControlError
from sandboxes.channels.config import App, Settings
from sandboxes.channels.control import Control
from sandboxes.channels.protocols import douyin, taobao
from sandboxes.channels.state import ChannelOrder, Store

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
MAX_ORDERS_PER_CALL = 1000


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _now() -> datetime:
    return datetime.now(UTC)


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.seed)
        self.control = Control(settings.seed, settings.assignments)
        self.calls: dict[str, Counter[str]] = {channel: Counter() for channel in CHANNELS}
        self.session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/router/rest", self.taobao_rest)
        app.router.add_get("/router/rest", self.taobao_rest)
        app.router.add_post("/token", self.taobao_token)
        for method in douyin.METHODS:
            app.router.add_post(douyin.path_of(method), self.douyin_api)
        app.router.add_get("/_health", self.health)
        app.router.add_get("/_control", self.show_control)
        app.router.add_post("/_control/reset", self.reset_control)
        app.router.add_get("/_control/orders", self.show_orders)
        app.router.add_post("/_control/orders", self.make_orders)
        app.router.add_post("/_control/{channel}/revoke", self.revoke)
        app.router.add_post("/_control/{channel}", self.change_control)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _: web.Application) -> None:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.push_timeout_seconds)
        )

    async def _stop(self, _: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def _latency(self, channel: str) -> None:
        latency = self.control.of(channel).latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)

    def _app(self, channel: str) -> App:
        return self.settings.apps[channel]

    def _issue(self, channel: str) -> JSON:
        app, behaviour, now = self._app(channel), self.control.of(channel), int(time.time())
        return {
            "access_token": tokens.issue(
                app.app_secret, "access", app.app_key, now, behaviour.token_lifetime_s
            ),
            "expires_in": behaviour.token_lifetime_s,
            "refresh_token": tokens.issue(
                app.app_secret, "refresh", app.app_key, now, behaviour.refresh_token_lifetime_s
            ),
            "re_expires_in": behaviour.refresh_token_lifetime_s,
        }

    def _token_ok(self, channel: str, kind: str, text: str) -> tuple[bool, bool]:
        """(known, live): issued by the sandbox for the channel's app, and neither expired nor revoked."""
        app = self._app(channel)
        if kind == "refresh" and text == app.refresh_token:
            return True, not self.control.of(channel).refuse_refresh
        token = tokens.read(app.app_secret, kind, app.app_key, text)
        if token is None:
            return False, False
        live = token.expires_at > time.time() and token.issued_at >= self.control.revoked_before[channel]
        if kind == "refresh" and self.control.of(channel).refuse_refresh:
            live = False
        return True, live

    def _count(self, channel: str, outcome: str) -> None:
        self.calls[channel]["calls"] += 1
        if outcome != "ok":
            self.calls[channel][outcome] += 1

    # Taobao

    async def _params(self, request: web.Request) -> dict[str, str]:
        form = await request.post() if request.method == "POST" else {}
        return {**dict(request.query), **{key: str(value) for key, value in form.items()}}

    async def taobao_rest(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        await self._latency("taobao")

        def refused(code: tuple[int, str, str], sub_msg: str = "") -> web.Response:
            self._count("taobao", f"code_{code[0]}")
            return _json(taobao.error(code, sub_msg))

        missing = [
            name for name in taobao.SYSTEM_PARAMETERS if not params.get(name) and name != "sign_method"
        ]
        if missing:
            return refused(taobao.MISSING_PARAMETER, f"missing {missing[0]}")
        if params["method"] != taobao.INCREMENT_GET:
            return refused(taobao.INVALID_METHOD)
        app = self._app("taobao")
        if params["app_key"] != app.app_key:
            return refused(taobao.INVALID_APP_KEY)
        sign_method = params.get("sign_method", "md5")
        if sign_method not in ("md5", "hmac-sha256"):
            return refused(taobao.INVALID_ARGUMENTS, "sign_method must be md5 or hmac-sha256")
        expected = taobao.sign(params, app.app_secret, sign_method)
        if not hmac.compare_digest(expected, params["sign"].upper()):
            return refused(taobao.INVALID_SIGNATURE)
        known, live = self._token_ok("taobao", "access", params.get("session", ""))
        if not live:
            return refused(taobao.INVALID_SESSION, "session expired" if known else "session invalid")
        if self.control.fails("taobao"):
            return refused(taobao.REMOTE_SERVICE_ERROR)
        try:
            start = taobao.parse_time(params["start_modified"])
            end = taobao.parse_time(params["end_modified"])
        except (KeyError, ValueError):
            return refused(taobao.INVALID_ARGUMENTS, "start_modified and end_modified: yyyy-MM-dd HH:mm:ss")
        if end < start or end - start > timedelta(days=1):
            return refused(taobao.INVALID_ARGUMENTS, "start_modified and end_modified must be within one day")
        try:
            page_no = int(params.get("page_no", "1"))
            page_size = int(params.get("page_size", "40"))
        except ValueError:
            return refused(taobao.INVALID_ARGUMENTS, "page_no and page_size are whole numbers")
        if page_no < 1 or not 1 <= page_size <= taobao.MAX_PAGE_SIZE:
            return refused(taobao.INVALID_ARGUMENTS, f"page_no >= 1, page_size 1..{taobao.MAX_PAGE_SIZE}")
        found = self.store.modified_between("taobao", start, end)
        page = found[(page_no - 1) * page_size : page_no * page_size]
        node: JSON = {"trades": {"trade": [order.payload for order in page]}, "request_id": "sandbox"}
        if params.get("use_has_next", "false").lower() == "true":
            node["has_next"] = page_no * page_size < len(found)
        else:
            node["total_results"] = len(found)
        self._count("taobao", "ok")
        return _json({"trades_sold_increment_get_response": node})

    async def taobao_token(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        await self._latency("taobao")
        app = self._app("taobao")
        if params.get("client_id") != app.app_key or params.get("client_secret") != app.app_secret:
            self._count("taobao", "invalid_client")
            return _json({"error": "invalid_client", "error_description": "client_id or secret wrong"}, 401)
        if params.get("grant_type") != "refresh_token":
            self._count("taobao", "unsupported_grant_type")
            return _json({"error": "unsupported_grant_type", "error_description": "refresh_token only"}, 400)
        if self.control.fails("taobao"):
            self._count("taobao", "server_error")
            return _json({"error": "server_error", "error_description": "please retry"}, 500)
        _, live = self._token_ok("taobao", "refresh", params.get("refresh_token", ""))
        if not live:
            self._count("taobao", "invalid_grant")
            return _json(
                {"error": "invalid_grant", "error_description": "refresh_token is invalid or expired"}, 400
            )
        issued = self._issue("taobao")
        self._count("taobao", "ok")
        return _json(
            {
                **issued,
                "token_type": "Bearer",
                "taobao_user_id": app.shop_id,
                "taobao_user_nick": "西湖茶语旗舰店",
                "r1_expires_in": issued["expires_in"],
                "w1_expires_in": issued["expires_in"],
            }
        )

    # Douyin

    async def douyin_api(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        body = (await request.read()).decode("utf-8", "replace")
        method = query.get("method", "")
        await self._latency("douyin")

        def answer(code: tuple[int, str, str], data: Any = None, sub_msg: str = "") -> web.Response:
            self._count("douyin", "ok" if code == douyin.SUCCESS else f"code_{code[0]}")
            return _json(douyin.answer(code, data, sub_msg))

        if douyin.path_of(method) != request.path:
            return answer(douyin.INVALID_METHOD)
        app = self._app("douyin")
        if query.get("app_key") != app.app_key:
            return answer(douyin.INVALID_APP_KEY)
        params_json = body or query.get("param_json", "") or "{}"
        timestamp, v = query.get("timestamp", ""), query.get("v", "2")
        sign_method = query.get("sign_method", "md5")
        expected = douyin.sign(app.app_key, app.app_secret, method, params_json, timestamp, v, sign_method)
        if not timestamp or not hmac.compare_digest(expected, query.get("sign", "").lower()):
            return answer(douyin.INVALID_SIGN)
        try:
            params = json.loads(params_json)
        except ValueError:
            params = None
        if not isinstance(params, dict):
            return answer(douyin.INVALID_PARAMETER, sub_msg="param_json 须为 JSON 对象")
        if method in (douyin.TOKEN_CREATE, douyin.TOKEN_REFRESH):
            return self._douyin_token(method, params, answer)
        known, live = self._token_ok("douyin", "access", query.get("access_token", ""))
        if not live:
            return answer(douyin.EXPIRED_TOKEN if known else douyin.INVALID_TOKEN)
        if self.control.fails("douyin"):
            return answer(douyin.SERVICE_BUSY)
        try:
            start = datetime.fromtimestamp(int(params["update_time_start"]), UTC)
            end = datetime.fromtimestamp(int(params["update_time_end"]), UTC)
            page, size = int(params.get("page", 0)), int(params.get("size", 20))
        except (KeyError, ValueError, TypeError):
            return answer(douyin.INVALID_PARAMETER, sub_msg="update_time_start/update_time_end: unix seconds")
        if page < 0 or not 1 <= size <= douyin.MAX_PAGE_SIZE or end < start:
            return answer(douyin.INVALID_PARAMETER, sub_msg=f"page >= 0, size 1..{douyin.MAX_PAGE_SIZE}")
        found = self.store.modified_between("douyin", start, end)
        chosen = found[page * size : (page + 1) * size]
        data = {
            "shop_order_list": [order.payload for order in chosen],
            "page": page,
            "size": size,
            "total": len(found),
        }
        return answer(douyin.SUCCESS, data)

    def _douyin_token(self, method: str, params: JSON, answer: Callable[..., web.Response]) -> web.Response:
        app = self._app("douyin")
        if method == douyin.TOKEN_CREATE:
            # a self-use app (grant_type authorization_self) names its shop; the code is then empty
            if (
                params.get("grant_type") != "authorization_self"
                or str(params.get("shop_id", "")) != app.shop_id
            ):
                return answer(douyin.INVALID_PARAMETER, sub_msg="grant_type authorization_self and shop_id")
        else:
            if params.get("grant_type") != "refresh_token":
                return answer(douyin.INVALID_PARAMETER, sub_msg="grant_type 须为 refresh_token")
            _, live = self._token_ok("douyin", "refresh", str(params.get("refresh_token", "")))
            if not live:
                return answer(douyin.INVALID_REFRESH_TOKEN)
        if self.control.fails("douyin"):
            return answer(douyin.SERVICE_BUSY)
        issued = self._issue("douyin")
        del issued["re_expires_in"]
        return answer(
            douyin.SUCCESS, {**issued, "scope": "SCOPE", "shop_id": int(app.shop_id), "shop_name": "润肤小铺"}
        )

    # pushes

    async def _push(self, order: ChannelOrder) -> None:
        secret = self.settings.webhook_secrets.get(order.channel)
        if self.settings.push_url is None or secret is None or self.session is None:
            order.push_answers.append(0)
            return
        body = order.body()
        timestamp = str(int(time.time()))
        signature = hmac.new(secret, timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "x-oms-webhook-timestamp": timestamp,
            "x-oms-webhook-signature": signature,
        }
        try:
            async with self.session.post(
                f"{self.settings.push_url}/{order.channel}", data=body, headers=headers
            ) as response:
                await response.read()
                order.push_answers.append(response.status)
                order.pushed = response.status < 300
        except (aiohttp.ClientError, TimeoutError) as problem:
            logger.info("push of %s order %s failed: %r", order.channel, order.order_id, problem)
            order.push_answers.append(0)

    # health and control

    async def health(self, _: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def show_control(self, _: web.Request) -> web.Response:
        return _json(
            {
                "channels": self.control.snapshot(),
                "calls": {channel: dict(counts) for channel, counts in self.calls.items()},
                "settings": {
                    "seed": self.settings.seed,
                    "push_url": self.settings.push_url,
                    "apps": {channel: app.app_key for channel, app in self.settings.apps.items()},
                },
            }
        )

    async def reset_control(self, request: web.Request) -> web.Response:
        self.control.reset()
        self.store.clear()
        self.calls = {channel: Counter() for channel in CHANNELS}
        return await self.show_control(request)

    async def _json_object(self, request: web.Request) -> JSON | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def change_control(self, request: web.Request) -> web.Response:
        changes = await self._json_object(request)
        if changes is None:
            return _json({"error": "the body must be a JSON object of switches"}, status=400)
        try:
            self.control.change(request.match_info["channel"], changes)
        except ControlError as problem:
            return _json({"error": str(problem)}, status=400)
        return await self.show_control(request)

    async def revoke(self, request: web.Request) -> web.Response:
        try:
            self.control.revoke(request.match_info["channel"], int(time.time()))
        except ControlError as problem:
            return _json({"error": str(problem)}, status=400)
        return await self.show_control(request)

    async def show_orders(self, request: web.Request) -> web.Response:
        channel = request.query.get("channel")
        found = [
            order.summary()
            for name, orders in self.store.orders.items()
            if channel in (None, name)
            for order in orders
        ]
        return _json({"orders": found})

    async def make_orders(self, request: web.Request) -> web.Response:
        """Buyers order: ``{"channel": "taobao"|"douyin", "count": N, "push": K}`` makes N orders modified
        now and pushes the first K of them (all when ``push`` is left out; none while the channel's
        ``push_enabled`` is false), each signed as the gateway checks."""
        body = await self._json_object(request)
        if body is None:
            return _json({"error": "the body must be a JSON object"}, status=400)
        channel, count, push = body.get("channel"), body.get("count", 1), body.get("push")
        if channel not in CHANNELS:
            return _json({"error": f"channel: one of {', '.join(CHANNELS)}"}, status=400)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_ORDERS_PER_CALL:
            return _json({"error": f"count: 1..{MAX_ORDERS_PER_CALL}"}, status=400)
        if push is None:
            push = count
        if isinstance(push, bool) or not isinstance(push, int) or push < 0:
            return _json({"error": "push: a whole number >= 0"}, status=400)
        behaviour = self.control.of(channel)
        now = _now().replace(microsecond=0)
        made = [self.store.make(channel, now, behaviour.pad_bytes) for _ in range(count)]
        if behaviour.push_enabled:
            for order in made[:push]:
                await self._push(order)
        return _json({"orders": [order.summary() for order in made]}, status=201)


async def serve(settings: Settings, ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT or cancellation; ``ready`` hears the bound port (``--port 0`` picks one)."""
    sandbox = Sandbox(settings)
    runner = web.AppRunner(sandbox.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    site = web.SockSite(runner, sock)
    await site.start()
    port = sock.getsockname()[1]
    logger.info("channel sandbox listening on http://%s:%d", settings.host, port)
    if ready is not None:
        ready(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
