"""Kuaidi100, the aggregator for ZTO, YTO, EMS and JD (and the tracking of Cainiao's STO and Yunda
waybills): e-waybills (`/label/order`), push subscriptions (`/poll`) and queries (`/poll/query.do`)."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from services.logistics.carriers.config import CarrierConfig
from services.logistics.carriers.http import CarrierDown, RateLimited, post_form
from services.logistics.carriers.signing import kuaidi100_label_sign, kuaidi100_query_sign
from services.logistics.domain.carriers import ACCOUNTS
from services.logistics.domain.model import Waybill
from services.logistics.domain.tracking import MalformedPush, Scan, parse_kuaidi100_track
from services.logistics.domain.waybills import Failed, Issued, Outcome, WaybillOrder

NO_RESULT = "500"
SUBSCRIBED = {"200", "501"}  # 501 重复订阅: subscribed before


def _json(text: str, what: str) -> dict[str, Any]:
    try:
        answer = json.loads(text)
    except ValueError:
        raise CarrierDown(f"Kuaidi100 {what} answer is not JSON") from None
    if not isinstance(answer, dict):
        raise CarrierDown(f"Kuaidi100 {what} answer is not an object")
    return answer


def _print_address(place: Any, detail: str) -> str:
    return "".join(part for part in (place.province, place.city, place.district, detail) if part)


class Kuaidi100Client:
    def __init__(self, session: aiohttp.ClientSession, config: CarrierConfig) -> None:
        self.session = session
        self.base = config.endpoints.kuaidi100.rstrip("/")
        self.poll_base = (config.endpoints.kuaidi100_poll or config.endpoints.kuaidi100).rstrip("/")
        self.credentials = config.credentials
        self.pushes = config.pushes
        self.timeout = config.limits.timeout_seconds

    def label_param(self, order: WaybillOrder) -> dict[str, Any]:
        param: dict[str, Any] = {
            "kuaidicom": ACCOUNTS[order.carrier].company,
            "orderId": order.carrier_order_id,
            "partnerId": self.credentials.kuaidi100_customer,
            "recMan": {
                "name": order.recipient.name,
                "mobile": order.recipient.phone,
                "printAddr": _print_address(order.destination, order.recipient.detail),
            },
            "sendMan": {
                "name": order.sender_name,
                "mobile": order.sender_phone,
                "printAddr": _print_address(order.sender, order.sender.detail),
            },
            "cargo": ", ".join(line.title or line.sku for line in order.lines)[:100],
            "count": 1,
            "payType": "MONTHLY",
        }
        if self.pushes.kuaidi100_callback_url:
            param.update(
                needSubscribe=True,
                pollCallBackUrl=self.pushes.kuaidi100_callback_url,
                salt=self.pushes.kuaidi100_salt,
                resultv2="1",
            )
        return param

    async def create(self, order: WaybillOrder) -> Outcome:
        """Kuaidi100 answers the same `orderId` with the same number: a repeat makes no second waybill."""
        param = json.dumps(self.label_param(order), ensure_ascii=False)
        t = str(int(time.time() * 1000))
        key, secret = self.credentials.kuaidi100_key, self.credentials.kuaidi100_secret
        form = {
            "method": "order",
            "key": key,
            "t": t,
            "param": param,
            "sign": kuaidi100_label_sign(param, t, key, secret),
        }
        reply = await post_form(self.session, f"{self.base}/label/order?method=order", form, self.timeout)
        if reply.status == 429:
            raise RateLimited("Kuaidi100 429 请求过于频繁")
        if reply.status >= 500:
            raise CarrierDown(f"Kuaidi100 answered HTTP {reply.status}")
        answer = _json(reply.text, "e-waybill")
        code = str(answer.get("code", ""))
        data = answer.get("data")
        if code == "200" and isinstance(data, dict) and data.get("kuaidinum"):
            return Issued(
                Waybill(
                    waybill_no=str(data["kuaidinum"]),
                    carrier=order.carrier,
                    sorting_code=str(data.get("destSortingCode") or data.get("bulkpen") or ""),
                    destination_code=str(data.get("destCode", "")),
                    label={k: v for k, v in data.items() if k not in ("orderId",)},
                )
            )
        if code == "500":
            raise CarrierDown(f"Kuaidi100 500 {answer.get('message') or ''}".strip())
        return Failed(f"Kuaidi100 {code} {answer.get('message') or ''}".strip())

    async def lookup(self, order: WaybillOrder) -> Outcome | None:
        """Kuaidi100 has no lookup by order id: its answer to the same `orderId` is the order's existing
        number, so the question is the create itself, never a second waybill."""
        return await self.create(order)

    async def track(self, company: str, number: str) -> list[Scan]:
        param = json.dumps({"com": company, "num": number, "resultv2": "1"})
        key, customer = self.credentials.kuaidi100_key, self.credentials.kuaidi100_customer
        form = {"customer": customer, "param": param, "sign": kuaidi100_query_sign(param, key, customer)}
        reply = await post_form(self.session, f"{self.poll_base}/poll/query.do", form, self.timeout)
        if reply.status == 429:
            raise RateLimited("Kuaidi100 429 请求过于频繁")
        if reply.status >= 500:
            raise CarrierDown(f"Kuaidi100 answered HTTP {reply.status}")
        answer = _json(reply.text, "query")
        if answer.get("result") is False:
            code = str(answer.get("returnCode", ""))
            if code == NO_RESULT:  # 查询无结果: no scan yet
                return []
            raise CarrierDown(f"Kuaidi100 query {code} {answer.get('message') or ''}".strip())
        try:
            return parse_kuaidi100_track(answer, "query")
        except MalformedPush as malformed:
            raise CarrierDown(f"Kuaidi100 query answer unreadable: {malformed.reason}") from None

    async def subscribe(self, company: str, number: str) -> str:
        if not self.pushes.kuaidi100_callback_url:
            return "no Kuaidi100 callback URL is set"
        param = {
            "company": company,
            "number": number,
            "key": self.credentials.kuaidi100_key,
            "parameters": {
                "callbackurl": self.pushes.kuaidi100_callback_url,
                "salt": self.pushes.kuaidi100_salt,
                "resultv2": "1",
            },
        }
        form = {"schema": "json", "param": json.dumps(param)}
        reply = await post_form(self.session, f"{self.poll_base}/poll", form, self.timeout)
        if reply.status == 429:
            raise RateLimited("Kuaidi100 429 请求过于频繁")
        answer = _json(reply.text, "subscription")
        code = str(answer.get("returnCode", ""))
        return (
            ""
            if code in SUBSCRIBED
            else f"Kuaidi100 subscription {code} {answer.get('message') or ''}".strip()
        )
