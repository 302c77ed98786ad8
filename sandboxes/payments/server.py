"""The sandbox over HTTP: each provider's real endpoints, its habits on demand, and the control API.

- WeChat Pay v3: ``POST /v3/refund/domestic/refunds``, ``GET /v3/refund/domestic/refunds/{out_refund_no}``,
  ``GET /v3/pay/transactions/out-trade-no/{out_trade_no}``
- Alipay: ``POST /gateway.do`` (alipay.trade.refund, alipay.trade.fastpay.refund.query, alipay.trade.query)
- ``GET /_health``; ``GET /_control``; ``POST /_control/reset``; ``POST /_control/{provider}``;
  ``POST /_control/payments``; ``GET /_control/trades``, ``/_control/refunds``, ``/_control/notifications``,
  ``/_control/credentials``
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from aiohttp import web

from sandboxes.payments import shapes
from sandboxes.payments.behaviour import PROVIDERS, ControlError
from sandboxes.payments.config import Settings
from sandboxes.payments.control import Control
from sandboxes.payments.notify import Notice, Notifier
from sandboxes.payments.protocols import alipay, wechat
from sandboxes.payments.state import DISCORDANT, NOT_ENOUGH, Refund, Refused, Store, Trade

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{6,32}$")
# a payer's provider whose clock is off by at most a day (`clock_skew_s` of a control payment)
MAX_CLOCK_SKEW_S = 86400


class Dropped(Exception):
    """The connection was closed on purpose; nothing is answered."""


def _dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _drop(request: web.Request) -> NoReturn:
    if request.transport is not None:
        request.transport.abort()
    raise Dropped


def _now() -> datetime:
    return datetime.now(UTC)


def _fen(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.credentials = settings.credentials
        self.store = Store(settings.seed)
        self.control = Control(settings.seed, settings.assignments)
        self.notifier = Notifier(
            self.control, settings.notify_schedule_factor, settings.notify_timeout_seconds
        )

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._dropped])
        app.router.add_post("/v3/refund/domestic/refunds", self.wechat_refund)
        app.router.add_get("/v3/refund/domestic/refunds/{out_refund_no}", self.wechat_refund_query)
        app.router.add_get("/v3/pay/transactions/out-trade-no/{out_trade_no}", self.wechat_transaction)
        app.router.add_post("/gateway.do", self.alipay_gateway)
        app.router.add_get("/_health", self.health)
        app.router.add_get("/_control", self.show_control)
        app.router.add_get("/_control/credentials", self.show_credentials)
        app.router.add_get("/_control/trades", self.show_trades)
        app.router.add_get("/_control/refunds", self.show_refunds)
        app.router.add_get("/_control/notifications", self.show_notifications)
        app.router.add_post("/_control/reset", self.reset_control)
        app.router.add_post("/_control/payments", self.pay)
        app.router.add_post("/_control/{provider}", self.change_control)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _: web.Application) -> None:
        await self.notifier.start()

    async def _stop(self, _: web.Application) -> None:
        await self.notifier.close()

    @web.middleware
    async def _dropped(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except Dropped:
            return web.Response(status=499)
        return response

    async def _latency(self, provider: str) -> None:
        latency = self.control.of(provider).latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)

    async def _after_accept(self, provider: str, request: web.Request) -> None:
        """The refund is recorded; the answer may never reach the caller."""
        if not self.control.times_out(provider):
            return
        if self.control.of(provider).timeout_mode == "drop":
            _drop(request)
        await asyncio.sleep(self.control.of(provider).hang_ms / 1000)

    # WeChat Pay v3

    def _wechat_answer(self, status: int, body: JSON) -> web.Response:
        """Every v3 answer is signed by the platform key in the Wechatpay-* headers."""
        text = _dumps(body)
        creds = self.credentials
        headers = wechat.signed_headers(
            creds.wechat_platform_private_key, creds.wechat_platform_serial, text, time.time()
        )
        headers["Request-ID"] = uuid.uuid4().hex
        return web.Response(status=status, text=text, content_type="application/json", headers=headers)

    def _wechat_error(self, error: tuple[int, str, str], detail: str = "") -> web.Response:
        status, body = wechat.error_body(error, detail)
        return self._wechat_answer(status, body)

    def _wechat_refused(self, request: web.Request, body: str) -> web.Response | None:
        creds = self.credentials
        problem = wechat.check_request(
            request.headers.get("Authorization", ""),
            request.method,
            request.raw_path,
            body,
            creds.wechat_mchid,
            creds.wechat_merchant_serial,
            creds.wechat_merchant_public_key,
            time.time(),
        )
        if problem:
            logger.info("WeChat Pay call refused: %s", problem)
            return self._wechat_error(wechat.SIGN_ERROR, problem)
        return None

    async def wechat_refund(self, request: web.Request) -> web.Response:
        body = await request.text()
        await self._latency("wechat_pay")
        refused = self._wechat_refused(request, body)
        if refused is not None:
            return refused
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return self._wechat_error(wechat.PARAM_ERROR, "the body must be a JSON object")
        out_refund_no = payload.get("out_refund_no")
        if not isinstance(out_refund_no, str) or not REFUND_NO.match(out_refund_no):
            return self._wechat_error(wechat.PARAM_ERROR, "out_refund_no: 1 to 64 of 0-9 A-Z a-z _ - | * @")
        self.store.attempted("wechat_pay", out_refund_no)
        if self.control.fails("wechat_pay"):
            return self._wechat_error(wechat.SYSTEM_ERROR)
        transaction_id = payload.get("transaction_id") or ""
        out_trade_no = payload.get("out_trade_no") or ""
        if not isinstance(transaction_id, str) or not isinstance(out_trade_no, str):
            return self._wechat_error(wechat.PARAM_ERROR, "transaction_id and out_trade_no are strings")
        if not transaction_id and not out_trade_no:
            return self._wechat_error(wechat.PARAM_ERROR, "transaction_id or out_trade_no is required")
        amount = payload.get("amount")
        if not isinstance(amount, dict):
            return self._wechat_error(wechat.PARAM_ERROR, "amount is required")
        refund_fen, total_fen = _fen(amount.get("refund")), _fen(amount.get("total"))
        if refund_fen is None:
            return self._wechat_error(wechat.PARAM_ERROR, "amount.refund: a whole number of fen above 0")
        if total_fen is None:
            return self._wechat_error(wechat.PARAM_ERROR, "amount.total: a whole number of fen above 0")
        if amount.get("currency", "CNY") != "CNY":
            return self._wechat_error(wechat.PARAM_ERROR, "amount.currency: only CNY")
        notify_url = payload.get("notify_url") or None
        if notify_url is not None and not (
            isinstance(notify_url, str) and notify_url.startswith(("http://", "https://"))
        ):
            return self._wechat_error(wechat.PARAM_ERROR, "notify_url: an http(s) URL")
        trade = self.store.find_trade("wechat_pay", out_trade_no, transaction_id)
        if trade is None:
            return self._wechat_error(wechat.RESOURCE_NOT_EXISTS)
        if total_fen != trade.total:
            return self._wechat_error(
                wechat.PARAM_ERROR, f"amount.total {total_fen} is not the order's {trade.total}"
            )
        reason = payload.get("reason") if isinstance(payload.get("reason"), str) else ""
        behaviour = self.control.of("wechat_pay")
        try:
            refund, new = self.store.refund(
                trade, out_refund_no, refund_fen, str(reason), notify_url, _now(), behaviour.refund_outcome
            )
        except Refused as refusal:
            if refusal.kind == NOT_ENOUGH:
                return self._wechat_error(wechat.NOT_ENOUGH, refusal.detail)
            return self._wechat_error(wechat.INVALID_REQUEST, refusal.detail)
        if new:
            self._progress(refund, behaviour.processing_ms)
        answer = self._wechat_answer(200, shapes.wechat_refund(refund))
        await self._after_accept("wechat_pay", request)
        return answer

    def _progress(self, refund: Refund, processing_ms: int) -> None:
        """A new WeChat refund: settled now, or after staying PROCESSING for a while; then notified."""
        if processing_ms == 0:
            self.store.settle(refund, _now())
            self._notify_refund(refund)
            return

        async def later() -> None:
            await asyncio.sleep(processing_ms / 1000)
            self.store.settle(refund, _now())
            self._notify_refund(refund)

        self.notifier.spawn(later())

    def _notify_refund(self, refund: Refund) -> None:
        creds = self.credentials
        event, summary = wechat.REFUND_EVENTS[refund.status], wechat.REFUND_SUMMARIES[refund.status]
        resource = wechat.encrypt_resource(
            creds.wechat_apiv3_key, shapes.wechat_refund_resource(refund, creds), "refund", "refund"
        )
        url = refund.notify_url or self.settings.wechat_notify_url or ""
        self._notify_wechat(event, summary, resource, url, refund.trade.out_trade_no, refund.refund_no)

    def _notify_wechat(
        self, event: str, summary: str, resource: dict[str, str], url: str, out_trade_no: str, subject: str
    ) -> None:
        creds = self.credentials
        notice_id = str(uuid.uuid4())
        text = _dumps(wechat.notification(notice_id, _now(), event, summary, resource))

        def render() -> tuple[bytes, dict[str, str]]:
            headers = wechat.signed_headers(
                creds.wechat_platform_private_key, creds.wechat_platform_serial, text, time.time()
            )
            return text.encode("utf-8"), {"Content-Type": "application/json", **headers}

        self.notifier.dispatch(Notice("wechat_pay", notice_id, event, url, out_trade_no, subject, render))

    async def wechat_refund_query(self, request: web.Request) -> web.Response:
        await self._latency("wechat_pay")
        refused = self._wechat_refused(request, "")
        if refused is not None:
            return refused
        if self.control.fails("wechat_pay"):
            return self._wechat_error(wechat.SYSTEM_ERROR)
        refund = self.store.find_refund("wechat_pay", request.match_info["out_refund_no"])
        if refund is None:
            return self._wechat_error(wechat.REFUND_NOT_EXISTS)
        return self._wechat_answer(200, shapes.wechat_refund(refund))

    async def wechat_transaction(self, request: web.Request) -> web.Response:
        await self._latency("wechat_pay")
        refused = self._wechat_refused(request, "")
        if refused is not None:
            return refused
        if request.query.get("mchid") != self.credentials.wechat_mchid:
            return self._wechat_error(wechat.PARAM_ERROR, "mchid: the merchant's number is required")
        if self.control.fails("wechat_pay"):
            return self._wechat_error(wechat.SYSTEM_ERROR)
        trade = self.store.find_trade("wechat_pay", request.match_info["out_trade_no"])
        if trade is None:
            return self._wechat_error(wechat.RESOURCE_NOT_EXISTS)
        return self._wechat_answer(200, shapes.wechat_transaction(trade, self.credentials))

    # Alipay

    def _alipay_answer(self, method: str, node: JSON) -> web.Response:
        name = alipay.response_key(method) if method in alipay.METHODS else "error_response"
        text = alipay.signed_response(self.credentials.alipay_private_key, name, node)
        return web.Response(text=text, content_type="application/json", charset="utf-8")

    async def alipay_gateway(self, request: web.Request) -> web.Response:
        form = await request.post()
        # the SDKs put the system parameters in the query and biz_content in the form; both are read
        params = {**{k: v for k, v in request.query.items()}, **{k: str(v) for k, v in form.items()}}
        method = params.get("method", "")
        if method not in alipay.METHODS:
            return self._alipay_answer(method, alipay.node(alipay.INVALID_METHOD))
        await self._latency("alipay")

        def answer(node: JSON) -> web.Response:
            return self._alipay_answer(method, node)

        missing = [name for name in alipay.SYSTEM_PARAMETERS if not params.get(name)]
        if missing:
            code = (
                "40001",
                "Missing Required Arguments",
                f"isv.missing-{missing[0].replace('_', '-')}",
                f"缺少{missing[0]}参数",
            )
            return answer(alipay.node(code))
        creds = self.credentials
        if params["app_id"] != creds.alipay_app_id:
            return answer(alipay.node(alipay.INVALID_APP_ID))
        if params["sign_type"] != "RSA2":
            return answer(
                alipay.node(
                    ("40002", "Invalid Arguments", "isv.invalid-signature-type", "sign_type 须为 RSA2")
                )
            )
        if not alipay.verify(creds.alipay_app_public_key, alipay.sign_content(params), params["sign"]):
            logger.info("Alipay call refused: the sign does not verify with the app's public key")
            return answer(alipay.node(alipay.INVALID_SIGNATURE))
        try:
            biz = json.loads(params.get("biz_content") or "")
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            return answer(alipay.node(alipay.INVALID_PARAMETER, sub_msg="biz_content 须为 JSON 对象"))
        out_trade_no, trade_no = str(biz.get("out_trade_no") or ""), str(biz.get("trade_no") or "")
        if not out_trade_no and not trade_no:
            return answer(
                alipay.node(
                    (
                        "40002",
                        "Invalid Arguments",
                        "isv.missing-parameter",
                        "out_trade_no 与 trade_no 必填其一",
                    )
                )
            )
        trade = self.store.find_trade("alipay", out_trade_no, trade_no)
        if method == alipay.REFUND:
            return await self._alipay_refund(request, biz, trade, answer)
        if self.control.fails("alipay"):
            return answer(alipay.node(alipay.SYSTEM_ERROR))
        if trade is None:
            return answer(alipay.node(alipay.TRADE_NOT_EXIST))
        if method == alipay.REFUND_QUERY:
            out_request_no = str(biz.get("out_request_no") or trade.out_trade_no)
            refund = self.store.find_refund("alipay", out_request_no, trade.out_trade_no)
            return answer(shapes.alipay_refund_query(trade, refund, out_request_no))
        return answer(shapes.alipay_trade(trade))

    async def _alipay_refund(
        self, request: web.Request, biz: JSON, trade: Trade | None, answer: Callable[[JSON], web.Response]
    ) -> web.Response:
        refund_fen = alipay.fen(str(biz.get("refund_amount", "")))
        if refund_fen is None:
            return answer(
                alipay.node(alipay.INVALID_PARAMETER, sub_msg="refund_amount 须为大于 0 的金额，至多两位小数")
            )
        out_request_no = str(biz.get("out_request_no") or "")
        if out_request_no and not REFUND_NO.match(out_request_no):
            return answer(alipay.node(alipay.INVALID_PARAMETER, sub_msg="out_request_no 至多 64 位"))
        if trade is not None:
            self.store.attempted("alipay", out_request_no or trade.out_trade_no, trade.out_trade_no)
        if self.control.fails("alipay"):
            return answer(alipay.node(alipay.SYSTEM_ERROR))
        if trade is None:
            return answer(alipay.node(alipay.TRADE_NOT_EXIST))
        if not out_request_no:
            if refund_fen != trade.total:
                return answer(
                    alipay.node(
                        (
                            "40002",
                            "Invalid Arguments",
                            "isv.missing-parameter",
                            "部分退款时 out_request_no 必填",
                        )
                    )
                )
            # a whole refund without a request number is numbered by the trade, as Alipay does
            out_request_no = trade.out_trade_no
        reason = str(biz.get("refund_reason") or "")
        try:
            refund, new = self.store.refund(
                trade, out_request_no, refund_fen, reason, None, _now(), "SUCCESS"
            )
        except Refused as refusal:
            if refusal.kind == NOT_ENOUGH:
                return answer(alipay.node(alipay.REFUND_AMT_NOT_EQUAL_TOTAL))
            code = (
                alipay.DISCORDANT_REPEAT_REQUEST if refusal.kind == DISCORDANT else alipay.INVALID_PARAMETER
            )
            return answer(alipay.node(code))
        if new:
            # Alipay's refund is synchronous: fund_change Y means the money moved in this call
            self.store.settle(refund, _now())
        reply = answer(shapes.alipay_refund(trade, refund, fund_change=new))
        await self._after_accept("alipay", request)
        return reply

    def _notify_alipay_payment(self, trade: Trade, url: str) -> None:
        creds = self.credentials
        notify_id = uuid.uuid4().hex

        def render() -> tuple[bytes, dict[str, str]]:
            fields = alipay.notify_form(
                creds.alipay_private_key, shapes.alipay_payment_notify(trade, creds, notify_id, _now())
            )
            content = "application/x-www-form-urlencoded; charset=utf-8"
            return urllib.parse.urlencode(fields).encode("ascii"), {"Content-Type": content}

        self.notifier.dispatch(
            Notice("alipay", notify_id, "TRADE_SUCCESS", url, trade.out_trade_no, trade.out_trade_no, render)
        )

    # health and control

    async def health(self, _: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def show_control(self, _: web.Request) -> web.Response:
        def shown(url: str | None) -> str | None:
            return url.split("?", 1)[0] if url else None

        settings = {
            "seed": self.settings.seed,
            "wechat_notify_url": shown(self.settings.wechat_notify_url),
            "alipay_notify_url": shown(self.settings.alipay_notify_url),
            "notify_schedule_factor": self.settings.notify_schedule_factor,
            "wechat_mchid": self.credentials.wechat_mchid,
            "alipay_app_id": self.credentials.alipay_app_id,
        }
        return _json(
            {
                "providers": self.control.snapshot(),
                "settings": settings,
                "notifications": dict(self.notifier.stats),
            }
        )

    async def show_credentials(self, _: web.Request) -> web.Response:
        """The merchant halves of the keys the sandbox generated itself (never of keys it was given)."""
        creds = self.credentials
        return _json(
            {
                "generated": creds.generated,
                "WECHAT_MCHID": creds.wechat_mchid,
                "WECHAT_MERCHANT_SERIAL": creds.wechat_merchant_serial,
                "WECHAT_PLATFORM_SERIAL": creds.wechat_platform_serial,
                "ALIPAY_APP_ID": creds.alipay_app_id,
            }
        )

    async def show_trades(self, request: web.Request) -> web.Response:
        provider = request.query.get("provider")
        out_trade_no = request.query.get("out_trade_no")
        trades = [
            trade.summary()
            for trade in self.store.trades(provider)
            if out_trade_no in (None, trade.out_trade_no)
        ]
        return _json({"trades": trades})

    async def show_refunds(self, request: web.Request) -> web.Response:
        query = request.query
        found = [
            refund.summary(*self.store.counts(refund))
            for refund in self.store.refunds()
            if query.get("provider") in (None, refund.provider)
            and query.get("refund_no") in (None, refund.refund_no)
            and query.get("out_trade_no") in (None, refund.trade.out_trade_no)
        ]
        return _json({"refunds": found})

    async def show_notifications(self, request: web.Request) -> web.Response:
        query = request.query
        found = [
            notice.summary()
            for notice in self.notifier.notices
            if query.get("provider") in (None, notice.provider)
            and query.get("subject") in (None, notice.subject)
            and query.get("out_trade_no") in (None, notice.out_trade_no)
        ]
        return _json({"notifications": found})

    async def reset_control(self, request: web.Request) -> web.Response:
        self.control.reset()
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
            self.control.change(request.match_info["provider"], changes)
        except ControlError as problem:
            return _json({"error": str(problem)}, status=400)
        return await self.show_control(request)

    async def pay(self, request: web.Request) -> web.Response:
        """A payer pays: the trade is paid and the provider notifies the merchant, as after a real payment.

        ``{"provider": "wechat_pay"|"alipay", "out_trade_no": "…", "amount": fen, "notify_url": "…",
        "clock_skew_s": seconds}`` (``notify_url`` defaults to ``--wechat-notify-url`` /
        ``--alipay-notify-url``; ``clock_skew_s``, default 0, is how far the provider's clock is off:
        the trade's paid time, in its query and its notification, is stamped by that clock).
        """
        body = await self._json_object(request)
        if body is None:
            return _json({"error": "the body must be a JSON object"}, status=400)
        provider, out_trade_no, amount = (
            body.get("provider"),
            body.get("out_trade_no"),
            _fen(body.get("amount")),
        )
        notify_url = body.get("notify_url")
        skew = body.get("clock_skew_s", 0)
        if provider not in PROVIDERS:
            return _json({"error": f"provider: one of {', '.join(PROVIDERS)}"}, status=400)
        if not isinstance(out_trade_no, str) or not TRADE_NO.match(out_trade_no):
            return _json({"error": "out_trade_no: 6 to 32 of 0-9 A-Z a-z _ - | * @"}, status=400)
        if amount is None:
            return _json({"error": "amount: a whole number of fen above 0"}, status=400)
        if notify_url is not None and not (
            isinstance(notify_url, str) and notify_url.startswith(("http://", "https://"))
        ):
            return _json({"error": "notify_url: an http(s) URL"}, status=400)
        if not isinstance(skew, int) or isinstance(skew, bool) or abs(skew) > MAX_CLOCK_SKEW_S:
            return _json({"error": f"clock_skew_s: whole seconds within ±{MAX_CLOCK_SKEW_S}"}, status=400)
        default = (
            self.settings.wechat_notify_url if provider == "wechat_pay" else self.settings.alipay_notify_url
        )
        try:
            trade, created = self.store.pay(
                provider, out_trade_no, amount, notify_url or default, _now() + timedelta(seconds=skew)
            )
        except Refused as refusal:
            return _json({"error": f"amount: {refusal.detail}"}, status=409)
        if created:
            url = trade.notify_url or ""
            if provider == "wechat_pay":
                plain = shapes.wechat_transaction(trade, self.credentials)
                resource = wechat.encrypt_resource(
                    self.credentials.wechat_apiv3_key, plain, "transaction", "transaction"
                )
                self._notify_wechat(
                    "TRANSACTION.SUCCESS", "支付成功", resource, url, out_trade_no, out_trade_no
                )
            else:
                self._notify_alipay_payment(trade, url)
        return _json({"trade": trade.summary(), "created": created}, status=201 if created else 200)


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
    logger.info("payment sandbox listening on http://%s:%d", settings.host, port)
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
