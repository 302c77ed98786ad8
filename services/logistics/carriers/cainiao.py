"""Cainiao e-waybills through the Taobao open platform (`/router/rest`, TOP md5 signatures):
`cainiao.waybill.ii.get` for at most 10 orders a call (all or nothing) and
`cainiao.waybill.ii.query.by.tradecode` to ask which orders already have one."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from services.logistics.carriers.config import CarrierConfig
from services.logistics.carriers.http import CarrierDown, RateLimited, post_form
from services.logistics.carriers.signing import top_sign
from services.logistics.domain.model import Place, Waybill
from services.logistics.domain.waybills import Failed, Issued, Outcome, WaybillOrder

GET_WAYBILL = "cainiao.waybill.ii.get"
QUERY_BY_TRADE_CODE = "cainiao.waybill.ii.query.by.tradecode"
MAX_BATCH = 10
APP_CALL_LIMITED = 7
REMOTE_SERVICE_ERROR = 15
TEMPLATE_URL = "https://cloudprint.cainiao.com/template/standard/101/1"


def _address(place: Place, detail: str) -> dict[str, str]:
    return {"province": place.province, "city": place.city, "district": place.district, "detail": detail}


def waybill_of(module: dict[str, Any]) -> Waybill:
    try:
        printed = json.loads(module.get("print_data") or "{}")
    except ValueError:
        printed = {}
    data = printed.get("data") if isinstance(printed, dict) else None
    routing = (data or {}).get("routingInfo") or {}
    return Waybill(
        waybill_no=str(module["waybill_code"]),
        carrier="cainiao",
        sorting_code=str((routing.get("sortation") or {}).get("name", "")),
        destination_code=str((routing.get("consolidation") or {}).get("code", "")),
        label={"print_data": module.get("print_data", ""), "routeCode": routing.get("routeCode", "")},
    )


class CainiaoClient:
    def __init__(self, session: aiohttp.ClientSession, config: CarrierConfig) -> None:
        self.session = session
        self.url = config.endpoints.cainiao.rstrip("/") + "/router/rest"
        self.credentials = config.credentials
        self.timeout = config.limits.timeout_seconds

    async def _call(self, method: str, api_params: dict[str, str]) -> dict[str, Any]:
        params = {
            "method": method,
            "app_key": self.credentials.cainiao_app_key,
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
            "v": "2.0",
            "sign_method": "md5",
            "format": "json",
            **api_params,
        }
        params["sign"] = top_sign(params, self.credentials.cainiao_app_secret)
        reply = await post_form(self.session, self.url, params, self.timeout)
        if reply.status == 429:
            raise RateLimited("Cainiao 7 App Call Limited")
        if reply.status >= 500:
            raise CarrierDown(f"Cainiao answered HTTP {reply.status}")
        try:
            answer = json.loads(reply.text)
        except ValueError:
            raise CarrierDown("Cainiao's answer is not JSON") from None
        error = answer.get("error_response") if isinstance(answer, dict) else None
        if isinstance(error, dict):
            code = error.get("code")
            detail = f"Cainiao {code} {error.get('msg', '')} {error.get('sub_code', '')}".strip()
            if code == APP_CALL_LIMITED:
                raise RateLimited(detail)
            if code == REMOTE_SERVICE_ERROR and str(error.get("sub_code", "")).startswith("isp."):
                raise CarrierDown(detail)
            raise _Refused(detail)
        return answer if isinstance(answer, dict) else {}

    def _apply_request(self, cp_code: str, orders: Sequence[WaybillOrder]) -> dict[str, Any]:
        first = orders[0]
        return {
            "cp_code": cp_code,
            "sender": {
                "name": first.sender_name,
                "mobile": first.sender_phone,
                "address": _address(first.sender, first.sender.detail),
            },
            "trade_order_info_dtos": [
                {
                    "object_id": str(index),
                    "order_info": {
                        "order_channels_type": "OTHERS",
                        "trade_order_list": [order.carrier_order_id],
                    },
                    "package_info": {
                        "id": "1",
                        "items": [
                            {"count": line.quantity, "name": line.title or line.sku} for line in order.lines
                        ],
                    },
                    "recipient": {
                        "name": order.recipient.name,
                        "mobile": order.recipient.phone,
                        "address": _address(order.destination, order.recipient.detail),
                    },
                    "template_url": TEMPLATE_URL,
                }
                for index, order in enumerate(orders, start=1)
            ],
        }

    async def create(self, cp_code: str, orders: Sequence[WaybillOrder]) -> list[Outcome]:
        """At most 10 orders of one cp_code; the call is all or nothing."""
        assert 0 < len(orders) <= MAX_BATCH, "Cainiao takes 1 to 10 waybill requests a call"
        request = json.dumps(self._apply_request(cp_code, orders), ensure_ascii=False)
        try:
            answer = await self._call(GET_WAYBILL, {"param_waybill_cloud_print_apply_new_request": request})
        except _Refused as refused:
            return [Failed(refused.reason) for _ in orders]
        modules = ((answer.get("cainiao_waybill_ii_get_response") or {}).get("modules") or {}).get(
            "waybill_cloud_print_response"
        ) or []
        by_object = {
            str(m.get("object_id")): m for m in modules if isinstance(m, dict) and m.get("waybill_code")
        }
        return [
            Issued(waybill_of(by_object[str(index)]))
            if str(index) in by_object
            else Failed("Cainiao answered no waybill for it")
            for index, _ in enumerate(orders, start=1)
        ]

    async def lookup(self, orders: Sequence[WaybillOrder]) -> list[Outcome | None]:
        param_list = json.dumps(
            [
                {"object_id": str(n), "trade_order_list": [o.carrier_order_id]}
                for n, o in enumerate(orders, start=1)
            ]
        )
        try:
            answer = await self._call(QUERY_BY_TRADE_CODE, {"param_list": param_list})
        except _Refused as refused:
            return [Failed(refused.reason, uncertain=True) for _ in orders]
        modules = (
            (answer.get("cainiao_waybill_ii_query_by_tradecode_response") or {}).get("modules") or {}
        ).get("waybill_cloud_print_with_result_desc_response") or []
        by_object = {
            str(m.get("object_id")): m for m in modules if isinstance(m, dict) and m.get("waybill_code")
        }
        return [
            Issued(waybill_of(by_object[str(n)])) if str(n) in by_object else None
            for n, _ in enumerate(orders, start=1)
        ]


class _Refused(Exception):
    """Cainiao refused the call itself (arguments, signature): the carrier is up."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
