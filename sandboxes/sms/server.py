"""The sandbox over HTTP: Aliyun SMS's ``SendSms`` (``GET`` or form ``POST /``, API version 2017-05-25),
its signature and parameters checked as the provider does, every message sent recorded; misbehaviour
on demand; and the control API.

- ``GET|POST /`` with ``Action=SendSms``: ``{"Code": "OK", "Message": "OK", "BizId", "RequestId"}``, or the
  provider's refusals (HTTP 400/404 for a bad request or signature, 200 with an ``isv.*`` code for a
  business refusal, ``isv.BUSINESS_LIMIT_CONTROL`` when throttled, 503 when failing)
- ``GET /_health``; ``GET /_control``; ``POST /_control`` (switches); ``POST /_control/reset``;
  ``GET /_control/messages`` (``?phone=``), ``GET /_control/requests`` (every call and its answer code)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandboxes.sms.behaviour import Control, ControlError
from sandboxes.sms.config import TEMPLATE_TEXT, TEMPLATE_VARIABLES, Settings
from sandboxes.sms.signing import signed

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
VERSION = "2017-05-25"
PHONE = re.compile(r"^(\+?86)?1[3-9]\d{9}$|^\+[1-9]\d{6,14}$")
MAX_PHONES = 1000
MAX_VARIABLE = 35
COMMON = (
    "AccessKeyId",
    "Action",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    "Version",
)


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


class Sandbox:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.control = Control(settings.seed, settings.assignments)
        self.messages: list[JSON] = []
        self.requests: list[JSON] = []
        self._nonces: dict[str, float] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/", self.rpc)
        app.router.add_get("/_health", self.health)
        app.router.add_get("/_control", self.show_control)
        app.router.add_post("/_control", self.change_control)
        app.router.add_post("/_control/reset", self.reset_control)
        app.router.add_get("/_control/messages", self.show_messages)
        app.router.add_get("/_control/requests", self.show_requests)
        return app

    async def rpc(self, request: web.Request) -> web.Response:
        params = {name: str(value) for name, value in request.query.items()}
        if request.method == "POST":
            params.update({name: str(value) for name, value in (await request.post()).items()})
        elif request.method != "GET":
            return _json({"Code": "UnsupportedHTTPMethod", "Message": request.method}, status=405)
        request_id = str(uuid.uuid4()).upper()
        latency = self.control.behaviour.latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)
        try:
            self._check_request(request.method, params)
            answer = self._send(params)
            status = 200
        except Refusal as refusal:
            status, answer = refusal.status, {"Code": refusal.code, "Message": refusal.message}
            logger.info("SendSms refused: %s %s", refusal.code, refusal.message)
        answer["RequestId"] = request_id
        self.requests.append(
            {
                "request_id": request_id,
                "phone_numbers": params.get("PhoneNumbers", ""),
                "code": answer["Code"],
                "status": status,
            }
        )
        return _json(answer, status=status)

    def _check_request(self, method: str, params: dict[str, str]) -> None:
        """Signature and common parameters, in the order Aliyun's gateway checks them."""
        for name in COMMON:
            if not params.get(name):
                raise Refusal(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["Version"] != VERSION:
            raise Refusal(
                400, "InvalidVersion", f"Specified parameter Version is not valid: {params['Version']}"
            )
        if params["Action"] != "SendSms":
            raise Refusal(400, "InvalidAction.NotFound", f"Specified api is not found: {params['Action']}")
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            raise Refusal(400, "InvalidSignatureMethod", "SignatureMethod HMAC-SHA1, SignatureVersion 1.0")
        if params["AccessKeyId"] != self.settings.access_key_id:
            raise Refusal(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        try:
            at = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise Refusal(
                400, "InvalidTimeStamp.Format", "Timestamp: ISO 8601 UTC, yyyy-MM-ddTHH:mm:ssZ"
            ) from None
        now = self.clock()
        if abs(now - at) > self.settings.timestamp_window_seconds:
            raise Refusal(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        if not signed(self.settings.access_key_secret, method, params):
            raise Refusal(400, "SignatureDoesNotMatch", "Specified signature does not match our calculation.")
        self._nonces = {
            n: t for n, t in self._nonces.items() if now - t <= self.settings.timestamp_window_seconds
        }
        if params["SignatureNonce"] in self._nonces:
            raise Refusal(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces[params["SignatureNonce"]] = now

    def _send(self, params: dict[str, str]) -> JSON:
        phones = [p.strip() for p in params.get("PhoneNumbers", "").split(",") if p.strip()]
        if not phones:
            raise Refusal(400, "MissingPhoneNumbers", "PhoneNumbers is mandatory for this action.")
        if len(phones) > MAX_PHONES or not all(PHONE.match(phone) for phone in phones):
            raise Refusal(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if params.get("SignName") not in self.settings.sign_names:
            raise Refusal(200, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        if params.get("TemplateCode") not in self.settings.template_codes:
            raise Refusal(200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            variables = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            raise Refusal(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值") from None
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            raise Refusal(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        missing = [name for name in TEMPLATE_VARIABLES if name not in variables]
        if missing:
            raise Refusal(
                200, "isv.TEMPLATE_MISSING_PARAMETERS", f"模板变量缺少对应参数值: {', '.join(missing)}"
            )
        if any(len(value) > MAX_VARIABLE for value in variables.values()):
            raise Refusal(200, "isv.PARAM_LENGTH_LIMIT", f"参数超出长度限制 ({MAX_VARIABLE})")
        # nothing is sent when failing or throttled: a retry is not a second message
        if self.control.fails():
            raise Refusal(503, "ServiceUnavailable", "The request has failed due to a temporary failure.")
        if self.control.throttles():
            raise Refusal(200, "isv.BUSINESS_LIMIT_CONTROL", "触发号码天级流控Permits:1")
        biz_id = f"{int(self.clock() * 1000)}^{uuid.uuid4().int % 10**10:010d}"
        text = TEMPLATE_TEXT.replace("{sign}", params["SignName"])
        for name, value in variables.items():
            text = text.replace("${" + name + "}", value)
        received = datetime.fromtimestamp(self.clock(), UTC).isoformat()
        for phone in phones:
            self.messages.append(
                {
                    "biz_id": biz_id,
                    "phone": phone,
                    "sign_name": params["SignName"],
                    "template_code": params["TemplateCode"],
                    "template_param": variables,
                    "text": text,
                    "received_at": received,
                }
            )
        return {"Code": "OK", "Message": "OK", "BizId": biz_id}

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def show_control(self, request: web.Request) -> web.Response:
        return _json({"behaviour": self.control.behaviour.as_dict()})

    async def change_control(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
        except ValueError:
            changes = None
        if not isinstance(changes, dict):
            return _json({"error": "the body must be a JSON object of switches"}, status=400)
        try:
            self.control.change(changes)
        except ControlError as problem:
            return _json({"error": str(problem)}, status=400)
        return await self.show_control(request)

    async def reset_control(self, request: web.Request) -> web.Response:
        """The switches back to their start, and what was received forgotten."""
        self.control.reset()
        self.messages.clear()
        self.requests.clear()
        return await self.show_control(request)

    async def show_messages(self, request: web.Request) -> web.Response:
        phone = request.query.get("phone")
        return _json({"messages": [m for m in self.messages if phone in (None, m["phone"])]})

    async def show_requests(self, request: web.Request) -> web.Response:
        return _json({"requests": self.requests})


async def serve(settings: Settings, ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT or cancellation; ``ready`` hears the bound port (``--port 0`` picks one)."""
    runner = web.AppRunner(Sandbox(settings).app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    site = web.SockSite(runner, sock)
    await site.start()
    port = sock.getsockname()[1]
    logger.info("SMS sandbox listening on http://%s:%d", settings.host, port)
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
