"""The sandbox over HTTP: each carrier's real endpoints, the misbehaviour gate, and the control API.

- SF Express: ``POST /std/service`` (form: partnerID, requestID, serviceCode, timestamp, msgDigest, msgData)
- Kuaidi100: ``POST /label/order`` (e-waybill), ``POST /poll`` (subscription), ``POST /poll/query.do`` (query)
- Cainiao: ``POST /router/rest`` (TOP: cainiao.waybill.ii.get, cainiao.waybill.ii.query.by.tradecode)
- ``GET /_health``; ``GET /_control``; ``POST /_control/reset``; ``POST /_control/{carrier}``;
  ``GET /_control/waybills``
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

from aiohttp import web

from sandboxes.carriers import labels
from sandboxes.carriers.behaviour import ControlError
from sandboxes.carriers.config import Settings
from sandboxes.carriers.control import Control
from sandboxes.carriers.protocols import cainiao, kuaidi100, sf
from sandboxes.carriers.state import Store, Subscription, Waybill
from sandboxes.carriers.tracking import Tracker

logger = logging.getLogger(__name__)

LABEL_COMPANIES = {"zhongtong": "zto", "yuantong": "yto", "ems": "ems", "jd": "jd"}
MAX_SUBSCRIPTIONS = 4
JSON = dict[str, Any]


class Dropped(Exception):
    """The connection was closed on purpose; nothing is answered."""


def _json(body: JSON, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _drop(request: web.Request) -> NoReturn:
    if request.transport is not None:
        request.transport.abort()
    raise Dropped


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _address(contact: Any) -> str:
    if not isinstance(contact, dict):
        return ""
    names = ("province", "city", "county", "district", "address", "detail", "printAddr")
    parts = [contact.get(name) for name in names]
    return "".join(str(part) for part in parts if part)


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.seed)
        self.control = Control(settings.seed, settings.assignments)
        self.tracker = Tracker(self.store, self.control, settings)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._dropped])
        app.router.add_post("/std/service", self.sf_service)
        app.router.add_post("/label/order", self.kuaidi100_label)
        app.router.add_post("/poll", self.kuaidi100_subscribe)
        app.router.add_post("/poll/query.do", self.kuaidi100_query)
        app.router.add_post("/router/rest", self.cainiao_rest)
        app.router.add_get("/_health", self.health)
        app.router.add_get("/_control", self.show_control)
        app.router.add_get("/_control/waybills", self.show_waybills)
        app.router.add_post("/_control/reset", self.reset_control)
        app.router.add_post("/_control/{carrier}", self.change_control)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _: web.Application) -> None:
        await self.tracker.start()

    async def _stop(self, _: web.Application) -> None:
        await self.tracker.close()

    @web.middleware
    async def _dropped(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except Dropped:
            # the transport is gone; an empty answer is never written
            return web.Response(status=499)
        return response

    async def _gate(
        self, carrier: str, request: web.Request, too_many: Callable[[], web.Response]
    ) -> web.Response | None:
        """Dead, rate-limited or slow: what happens before the carrier even reads the call."""
        behaviour = self.control.of(carrier)
        if behaviour.dead:
            if behaviour.dead_mode == "503":
                return web.Response(status=503, text="Service Unavailable")
            _drop(request)
        if not self.control.admit(carrier, time.monotonic()):
            response = too_many()
            response.headers["Retry-After"] = "1"
            return response
        if behaviour.latency_ms:
            await asyncio.sleep(behaviour.latency_ms / 1000)
        return None

    async def _after_create(self, carrier: str, request: web.Request) -> None:
        """The waybill exists; the answer may never reach the caller."""
        behaviour = self.control.of(carrier)
        if not self.control.roll(carrier, behaviour.timeout_after_create_rate):
            return
        if behaviour.timeout_mode == "drop":
            _drop(request)
        await asyncio.sleep(behaviour.hang_ms / 1000)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # SF Express

    async def sf_service(self, request: web.Request) -> web.Response:
        response_id = uuid.uuid4().hex

        def answer(code: str, result: JSON | None = None, status: int = 200) -> web.Response:
            return _json(sf.api_response(response_id, code, result), status=status)

        form = await request.post()
        blocked = await self._gate("sf", request, lambda: answer(sf.API_FLOW_CONTROLLED, status=429))
        if blocked is not None:
            return blocked
        fields = {name: str(form.get(name, "")) for name in sf.REQUEST_FIELDS}
        if not all(fields.values()):
            return answer(sf.API_MISSING_PARAMETER)
        if fields["serviceCode"] not in sf.SERVICES:
            return answer(sf.API_NO_PERMISSION)
        creds = self.settings.credentials
        expected = sf.msg_digest(fields["msgData"], fields["timestamp"], creds.sf_checkword)
        if fields["partnerID"] != creds.sf_partner_id or fields["msgDigest"] != expected:
            return answer(sf.API_BAD_DIGEST)
        if self.control.roll("sf", self.control.of("sf").failure_rate):
            return answer(sf.API_SERVICE_UNREACHABLE)
        msg = _loads(fields["msgData"])
        if not isinstance(msg, dict):
            return answer(sf.API_MISSING_PARAMETER)
        match fields["serviceCode"]:
            case sf.CREATE_ORDER:
                result = self._sf_create(msg)
                await self._after_create("sf", request)
            case sf.SEARCH_ROUTES:
                result = self._sf_routes(msg)
            case _:
                result = self._sf_update(msg)
        return answer(sf.API_OK, result)

    def _sf_create(self, msg: JSON) -> JSON:
        order_id = msg.get("orderId")
        if not order_id:
            return sf.business_result(None, sf.MISSING_ORDER_ID)
        contacts = msg.get("contactInfoList") or []
        sender = next((c for c in contacts if isinstance(c, dict) and c.get("contactType") == 1), {})
        recipient = next((c for c in contacts if isinstance(c, dict) and c.get("contactType") == 2), {})
        waybill, created = self.store.create(
            "sf", str(order_id), "sf", "sf", _address(sender), _address(recipient), self._now()
        )
        data = self._sf_order_data(waybill)
        return sf.business_result(data, sf.OK if created else sf.DUPLICATE_ORDER)

    @staticmethod
    def _sf_order_data(waybill: Waybill) -> JSON:
        origin, destination = labels.area_codes(waybill)
        return sf.create_order_data(
            waybill.order_id or "", waybill.waybill_no, origin, destination, labels.sf_label(waybill)
        )

    def _sf_routes(self, msg: JSON) -> JSON:
        by_order = str(msg.get("trackingType", "1")) == "2"
        numbers = msg.get("trackingNumber") or []
        if isinstance(numbers, str):
            numbers = [numbers]
        answers = []
        for number in numbers:
            found = (
                self.store.find_order("sf", str(number)) if by_order else self.store.find_number(str(number))
            )
            if found is None or found.carrier != "sf":
                continue
            routes = [sf.route(reached.step, reached.at) for reached in found.reached]
            answers.append({"mailNo": found.waybill_no, "routes": routes})
        return sf.business_result({"routeResps": answers})

    def _sf_update(self, msg: JSON) -> JSON:
        waybill = self.store.find_order("sf", str(msg.get("orderId", "")))
        if waybill is None:
            return sf.business_result(None, sf.ORDER_NOT_FOUND)
        if str(msg.get("dealType", "1")) == "2":
            self.tracker.cancelled(waybill)
        status = 2 if waybill.cancelled else 1
        data = {
            "orderId": waybill.order_id,
            "waybillNoInfoList": [{"waybillType": 1, "waybillNo": waybill.waybill_no}],
            "resStatus": status,
        }
        return sf.business_result(data)

    # Kuaidi100

    async def kuaidi100_label(self, request: web.Request) -> web.Response:
        started = time.monotonic()

        def answer(code: int, data: JSON | None = None) -> web.Response:
            elapsed = int((time.monotonic() - started) * 1000)
            status = 429 if code == kuaidi100.LABEL_TOO_FREQUENT else 200
            return _json(kuaidi100.label_answer(code, data, elapsed), status=status)

        form = await request.post()
        param_text = str(form.get("param", ""))
        param = _loads(param_text)
        if not isinstance(param, dict) or param.get("kuaidicom") not in LABEL_COMPANIES:
            return answer(kuaidi100.LABEL_BAD_PARAMETER)
        company = str(param["kuaidicom"])
        carrier = LABEL_COMPANIES[company]
        blocked = await self._gate(carrier, request, lambda: answer(kuaidi100.LABEL_TOO_FREQUENT))
        if blocked is not None:
            return blocked
        creds = self.settings.credentials
        key, t = str(form.get("key", "")), str(form.get("t", ""))
        expected = kuaidi100.label_sign(param_text, t, creds.kuaidi100_key, creds.kuaidi100_secret)
        if key != creds.kuaidi100_key or str(form.get("sign", "")) != expected:
            return answer(kuaidi100.LABEL_BAD_SIGN)
        if (request.query.get("method") or form.get("method")) != "order":
            return answer(kuaidi100.LABEL_BAD_PARAMETER)
        if self.control.roll(carrier, self.control.of(carrier).failure_rate):
            return answer(kuaidi100.LABEL_SERVER_ERROR)
        order_id = param.get("orderId")
        waybill, _ = self.store.create(
            carrier,
            str(order_id) if order_id else None,
            company,
            carrier,
            _address(param.get("sendMan")),
            _address(param.get("recMan")),
            self._now(),
        )
        if param.get("needSubscribe") in (True, "true", "1", 1):
            self._subscribe(
                waybill.waybill_no,
                Subscription(
                    company=company,
                    callbackurl=str(param.get("pollCallBackUrl") or ""),
                    salt=str(param.get("salt") or ""),
                    resultv2=str(param.get("resultv2") or ""),
                ),
            )
        await self._after_create(carrier, request)
        task_id = uuid.uuid5(uuid.NAMESPACE_URL, waybill.waybill_no).hex
        data = kuaidi100.label_data(
            waybill.order_id or "", waybill.waybill_no, task_id, labels.kuaidi100_label(waybill)
        )
        return answer(kuaidi100.LABEL_OK, data)

    async def kuaidi100_subscribe(self, request: web.Request) -> web.Response:
        form = await request.post()
        param = _loads(str(form.get("param", "")))
        if not isinstance(param, dict) or param.get("company") not in kuaidi100.COMPANIES:
            return _json(kuaidi100.subscribe_answer(kuaidi100.BAD_SUBSCRIPTION))
        carrier = kuaidi100.COMPANIES[str(param["company"])]
        blocked = await self._gate(
            carrier, request, lambda: _json(kuaidi100.query_error(kuaidi100.TOO_FREQUENT), status=429)
        )
        if blocked is not None:
            return blocked
        if param.get("key") != self.settings.credentials.kuaidi100_key:
            return _json(kuaidi100.subscribe_answer(kuaidi100.BAD_KEY))
        parameters = param.get("parameters")
        if not isinstance(parameters, dict):
            parameters = {}
        number = str(param.get("number") or "")
        callbackurl = str(parameters.get("callbackurl") or "")
        if not 6 <= len(number) <= 32 or not callbackurl.startswith(("http://", "https://")):
            return _json(kuaidi100.subscribe_answer(kuaidi100.BAD_SUBSCRIPTION))
        if self.control.roll(carrier, self.control.of(carrier).failure_rate):
            return _json(kuaidi100.subscribe_answer(kuaidi100.SUBSCRIBE_SERVER_ERROR))
        subscription = Subscription(
            company=str(param["company"]),
            callbackurl=callbackurl,
            salt=str(parameters.get("salt") or ""),
            resultv2=str(parameters.get("resultv2") or ""),
        )
        return _json(kuaidi100.subscribe_answer(self._subscribe(number, subscription)))

    def _subscribe(self, number: str, subscription: Subscription) -> str:
        previous = self.store.subscriptions.get(number)
        if previous is not None:
            if previous.times >= MAX_SUBSCRIPTIONS:
                return kuaidi100.DUPLICATE_SUBSCRIPTION
            subscription.times = previous.times + 1
        self.store.subscriptions[number] = subscription
        self.tracker.subscribed(number)
        return kuaidi100.SUBSCRIBED

    async def kuaidi100_query(self, request: web.Request) -> web.Response:
        form = await request.post()
        param_text = str(form.get("param", ""))
        param = _loads(param_text)
        if not isinstance(param, dict) or param.get("com") not in kuaidi100.COMPANIES or not param.get("num"):
            return _json(kuaidi100.query_error(kuaidi100.QUERY_INCOMPLETE))
        company, number = str(param["com"]), str(param["num"])
        carrier = kuaidi100.COMPANIES[company]
        blocked = await self._gate(
            carrier, request, lambda: _json(kuaidi100.query_error(kuaidi100.TOO_FREQUENT), status=429)
        )
        if blocked is not None:
            return blocked
        creds = self.settings.credentials
        customer = str(form.get("customer", ""))
        expected = kuaidi100.query_sign(param_text, creds.kuaidi100_key, creds.kuaidi100_customer)
        if customer != creds.kuaidi100_customer or str(form.get("sign", "")) != expected:
            return _json(kuaidi100.query_error(kuaidi100.BAD_SIGN))
        if self.control.roll(carrier, self.control.of(carrier).failure_rate):
            return _json(kuaidi100.query_error(kuaidi100.QUERY_BUSY))
        waybill = self.store.find_number(number)
        if waybill is None or waybill.carrier == "sf" or not waybill.reached:
            return _json(kuaidi100.query_error(kuaidi100.QUERY_NO_RESULT))
        if waybill.company != company and not self.control.of(waybill.carrier).code_correction:
            return _json(kuaidi100.query_error(kuaidi100.QUERY_NO_RESULT))
        resultv2 = str(param.get("resultv2") or "") not in ("", "0")
        items = [kuaidi100.track_item(r.step, r.at, resultv2) for r in waybill.reached]
        last = waybill.last_node
        assert last is not None
        return _json(kuaidi100.track_result(waybill.company, number, items, kuaidi100.NODE_STATE[last]))

    # Cainiao

    async def cainiao_rest(self, request: web.Request) -> web.Response:
        request_id = uuid.uuid4().hex[:12]

        def error(
            code: int, sub_code: str = "", sub_msg: str = "", detail: str = "", status: int = 200
        ) -> web.Response:
            return _json(cainiao.error_response(request_id, code, sub_code, sub_msg, detail), status=status)

        form = await request.post()
        params = {name: str(value) for name, value in form.items()}
        blocked = await self._gate(
            "cainiao",
            request,
            lambda: error(
                cainiao.APP_CALL_LIMITED,
                "accesscontrol.limited-by-api-access-count",
                "This ban will last for 1 more seconds",
                status=429,
            ),
        )
        if blocked is not None:
            return blocked
        missing = [name for name in cainiao.SYSTEM_PARAMETERS if not params.get(name)]
        if missing:
            return error(cainiao.MISSING_ARGUMENTS, detail=",".join(missing))
        creds = self.settings.credentials
        if params["app_key"] != creds.cainiao_app_key:
            return error(cainiao.INVALID_APP_KEY)
        if params["sign"] != cainiao.top_sign(params, creds.cainiao_app_secret):
            return error(cainiao.INVALID_SIGNATURE)
        if params["method"] not in cainiao.METHODS:
            return error(cainiao.INVALID_METHOD)
        if self.control.roll("cainiao", self.control.of("cainiao").failure_rate):
            return error(cainiao.REMOTE_SERVICE_ERROR, "isp.remote-service-error", "服务暂不可用")
        if params["method"] == cainiao.QUERY_BY_TRADE_CODE:
            return self._cainiao_query(request_id, params, error)
        apply = _loads(params.get("param_waybill_cloud_print_apply_new_request"))
        if not isinstance(apply, dict):
            return error(cainiao.MISSING_ARGUMENTS, detail="param_waybill_cloud_print_apply_new_request")
        cp_code = str(apply.get("cp_code", ""))
        if cp_code not in cainiao.CP_COMPANIES:
            return error(cainiao.REMOTE_SERVICE_ERROR, "isv.invalid-parameter", f"cp_code {cp_code!r} 不支持")
        dtos = apply.get("trade_order_info_dtos")
        if not isinstance(dtos, list) or not dtos:
            return error(cainiao.MISSING_ARGUMENTS, detail="trade_order_info_dtos")
        if len(dtos) > cainiao.MAX_BATCH:
            sub_msg = f"trade_order_info_dtos 数量限制为{cainiao.MAX_BATCH}，实际为{len(dtos)}"
            return error(cainiao.REMOTE_SERVICE_ERROR, "isv.invalid-parameter", sub_msg)
        orders = []
        for dto in dtos:
            trade_orders = (
                ((dto.get("order_info") or {}).get("trade_order_list") or []) if isinstance(dto, dict) else []
            )
            if not isinstance(trade_orders, list) or not trade_orders or not dto.get("object_id"):
                return error(
                    cainiao.INVALID_ARGUMENTS,
                    "isv.invalid-parameter",
                    "object_id 与 order_info.trade_order_list 必填",
                )
            orders.append((dto, ",".join(str(order) for order in trade_orders)))
        sender = _address((apply.get("sender") or {}).get("address"))
        modules = []
        for dto, order_key in orders:
            recipient = _address((dto.get("recipient") or {}).get("address"))
            waybill, _ = self.store.create(
                "cainiao", order_key, cainiao.CP_COMPANIES[cp_code], cp_code, sender, recipient, self._now()
            )
            print_data = labels.cainiao_print_data(waybill, cp_code)
            modules.append(cainiao.waybill_module(str(dto["object_id"]), waybill.waybill_no, print_data))
        await self._after_create("cainiao", request)
        return _json(cainiao.get_waybill_response(request_id, modules))

    def _cainiao_query(
        self, request_id: str, params: dict[str, str], error: Callable[..., web.Response]
    ) -> web.Response:
        items = _loads(params.get("param_list"))
        if not isinstance(items, list):
            return error(cainiao.MISSING_ARGUMENTS, detail="param_list")
        modules = []
        for item in items:
            if not isinstance(item, dict):
                continue
            orders = item.get("trade_order_list") or [item.get("biz_sub_code") or ""]
            waybill = self.store.find_order("cainiao", ",".join(str(order) for order in orders))
            if waybill is None:
                continue
            cp_code = next(
                code for code, company in cainiao.CP_COMPANIES.items() if company == waybill.company
            )
            print_data = labels.cainiao_print_data(waybill, cp_code)
            modules.append(
                cainiao.waybill_module(str(item.get("object_id", "")), waybill.waybill_no, print_data)
            )
        return _json(cainiao.query_response(request_id, modules))

    # health and control

    async def health(self, _: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def show_control(self, _: web.Request) -> web.Response:
        settings = {
            "seed": self.settings.seed,
            "step_seconds": self.settings.step_seconds,
            "push_retry_seconds": self.settings.push_retry_seconds,
            # the address is shown without its query: SF's push address carries the receiver's secret token
            "push_url": self.settings.push_url.split("?", 1)[0] if self.settings.push_url else None,
        }
        return _json(
            {"carriers": self.control.snapshot(), "settings": settings, "pushes": dict(self.tracker.stats)}
        )

    async def show_waybills(self, request: web.Request) -> web.Response:
        carrier = request.query.get("carrier")
        order_id = request.query.get("order_id")
        found = [
            waybill.summary()
            for waybill in self.store.waybills()
            if (carrier is None or waybill.carrier == carrier)
            and (order_id is None or waybill.order_id == order_id)
        ]
        return _json({"waybills": found})

    async def reset_control(self, request: web.Request) -> web.Response:
        self.control.reset()
        return await self.show_control(request)

    async def change_control(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
        except ValueError:
            return _json({"error": "the body must be a JSON object of switches"}, status=400)
        if not isinstance(changes, dict):
            return _json({"error": "the body must be a JSON object of switches"}, status=400)
        try:
            self.control.change(request.match_info["carrier"], changes)
        except ControlError as problem:
            return _json({"error": str(problem)}, status=400)
        return await self.show_control(request)


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
    logger.info("carrier sandbox listening on http://%s:%d", settings.host, port)
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
