"""SF Express (丰桥 standard gateway, `/std/service`): create an order (its waybill), look an order up by
our order id, and query routes. Answers: the platform envelope `apiResultCode` (A1000 taken), whose
`apiResultData` is a JSON string with `success`, `errorCode` (S0000 done, 8016 重复下单 carrying the
order's existing waybill) and `msgData`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import aiohttp

from services.logistics.carriers.config import CarrierConfig
from services.logistics.carriers.http import CarrierDown, RateLimited, post_form
from services.logistics.carriers.signing import sf_msg_digest
from services.logistics.domain.model import Waybill
from services.logistics.domain.tracking import MalformedPush, Scan, parse_sf_routes
from services.logistics.domain.waybills import Failed, Issued, Outcome, WaybillOrder

CREATE_ORDER = "EXP_RECE_CREATE_ORDER"
SEARCH_ROUTES = "EXP_RECE_SEARCH_ROUTES"
FLOW_CONTROLLED = "A1005"
# the platform's own failures: the call never reached a working service
DOWN_CODES = {"A1009", "A1099"}
DUPLICATE_ORDER = "8016"


def _contact(
    kind: int, name: str, phone: str, province: str, city: str, district: str, detail: str
) -> dict[str, Any]:
    return {
        "contactType": kind,
        "contact": name,
        "mobile": phone,
        "country": "CN",
        "province": province,
        "city": city,
        "county": district,
        "address": detail,
    }


def order_message(order: WaybillOrder, monthly_card: str) -> dict[str, Any]:
    sender, destination, recipient = order.sender, order.destination, order.recipient
    return {
        "language": "zh-CN",
        "orderId": order.carrier_order_id,
        "monthlyCard": monthly_card,
        "expressTypeId": int(order.product or "1"),
        "cargoDetails": [{"name": line.title or line.sku, "count": line.quantity} for line in order.lines],
        "contactInfoList": [
            _contact(
                1,
                order.sender_name,
                order.sender_phone,
                sender.province,
                sender.city,
                sender.district,
                sender.detail,
            ),
            _contact(
                2,
                recipient.name,
                recipient.phone,
                destination.province,
                destination.city,
                destination.district,
                recipient.detail,
            ),
        ],
    }


def waybill_of(data: Any) -> Waybill | None:
    if not isinstance(data, dict):
        return None
    numbers = [n for n in data.get("waybillNoInfoList") or [] if isinstance(n, dict) and n.get("waybillNo")]
    if not numbers:
        return None
    main = next((n for n in numbers if n.get("waybillType") == 1), numbers[0])
    labels = [info for info in data.get("routeLabelInfo") or [] if isinstance(info, dict)]
    route = (labels[0].get("routeLabelData") or {}) if labels else {}
    return Waybill(
        waybill_no=str(main["waybillNo"]),
        carrier="sf",
        sorting_code=str(route.get("destRouteLabel", "")),
        destination_code=str(data.get("destCode", "")),
        label={"originCode": data.get("originCode", ""), "destCode": data.get("destCode", ""), **route},
    )


class SfClient:
    def __init__(self, session: aiohttp.ClientSession, config: CarrierConfig) -> None:
        self.session = session
        self.url = config.endpoints.sf.rstrip("/") + "/std/service"
        self.credentials = config.credentials
        self.timeout = config.limits.timeout_seconds

    async def _call(self, service: str, message: dict[str, Any]) -> dict[str, Any]:
        """The business result of a call the platform took; CarrierDown or RateLimited otherwise."""
        msg_data = json.dumps(message, ensure_ascii=False)
        timestamp = str(int(time.time() * 1000))
        form = {
            "partnerID": self.credentials.sf_partner_id,
            "requestID": uuid.uuid4().hex,
            "serviceCode": service,
            "timestamp": timestamp,
            "msgDigest": sf_msg_digest(msg_data, timestamp, self.credentials.sf_checkword),
            "msgData": msg_data,
        }
        reply = await post_form(self.session, self.url, form, self.timeout)
        if reply.status == 429:
            raise RateLimited("SF flow control (429)")
        if reply.status >= 500:
            raise CarrierDown(f"SF answered HTTP {reply.status}")
        try:
            envelope = json.loads(reply.text)
        except ValueError:
            raise CarrierDown(f"SF answered HTTP {reply.status} without JSON") from None
        code = str(envelope.get("apiResultCode", ""))
        if code == FLOW_CONTROLLED:
            raise RateLimited("SF A1005 流量受控")
        if code in DOWN_CODES:
            raise CarrierDown(f"SF {code} {envelope.get('apiErrorMsg') or ''}".strip())
        if code != "A1000":
            raise CarrierDown(f"SF refused the call: {code} {envelope.get('apiErrorMsg') or ''}".strip())
        try:
            result = json.loads(envelope.get("apiResultData") or "null")
        except ValueError:
            raise CarrierDown("SF apiResultData is not JSON") from None
        if not isinstance(result, dict):
            raise CarrierDown("SF apiResultData is empty")
        return result

    async def create(self, order: WaybillOrder) -> Outcome:
        result = await self._call(CREATE_ORDER, order_message(order, self.credentials.sf_monthly_card))
        waybill = waybill_of(result.get("msgData"))
        error_code = str(result.get("errorCode", ""))
        if waybill is not None and (result.get("success") or error_code == DUPLICATE_ORDER):
            return Issued(waybill)
        if error_code == DUPLICATE_ORDER:
            # the order has a waybill the answer does not name: the lookup will find it
            return Failed("SF 8016 重复下单 without the waybill", uncertain=True)
        return Failed(f"SF {error_code} {result.get('errorMsg') or ''}".strip())

    async def lookup(self, order: WaybillOrder) -> Outcome | None:
        """Does our order id already have a waybill at SF? The route query by order id names its number;
        the create answers 8016 with the whole label for it."""
        message = {
            "language": "0",
            "trackingType": "2",
            "trackingNumber": [order.carrier_order_id],
            "methodType": "1",
        }
        result = await self._call(SEARCH_ROUTES, message)
        answers = (result.get("msgData") or {}).get("routeResps") or []
        numbers = [str(a.get("mailNo")) for a in answers if isinstance(a, dict) and a.get("mailNo")]
        if not numbers:
            return None
        labelled = await self.create(order)
        if isinstance(labelled, Issued) and labelled.waybill.waybill_no == numbers[0]:
            return labelled
        return Issued(Waybill(numbers[0], "sf"))

    async def track(self, numbers: list[str]) -> dict[str, list[Scan]]:
        message = {"language": "0", "trackingType": "1", "trackingNumber": numbers, "methodType": "1"}
        result = await self._call(SEARCH_ROUTES, message)
        try:
            return parse_sf_routes(result.get("msgData"))
        except MalformedPush as malformed:
            raise CarrierDown(f"SF route answer unreadable: {malformed.reason}") from None
