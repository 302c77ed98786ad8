"""SF Express open platform (丰桥, ``/std/service``): signature, code tables and envelopes. No I/O.

A call is a form POST of ``partnerID``, ``requestID``, ``serviceCode``, ``timestamp``, ``msgDigest``
and ``msgData`` (a JSON string). The answer is the platform envelope (``apiResultCode`` ``A1000``
when the platform accepted the call) whose ``apiResultData`` is itself a JSON *string* holding the
business result (``success``, ``errorCode`` ``S0000``, ``errorMsg``, ``msgData``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from typing import Any

from sandboxes.carriers.routes import Action, Node, Step, describe

CREATE_ORDER = "EXP_RECE_CREATE_ORDER"
SEARCH_ROUTES = "EXP_RECE_SEARCH_ROUTES"
UPDATE_ORDER = "EXP_RECE_UPDATE_ORDER"
SERVICES = (CREATE_ORDER, SEARCH_ROUTES, UPDATE_ORDER)
REQUEST_FIELDS = ("partnerID", "requestID", "serviceCode", "timestamp", "msgDigest", "msgData")

# Platform codes (apiResultCode): the call never reached the business service unless A1000.
API_OK = "A1000"
API_MISSING_PARAMETER = "A1001"
API_NO_PERMISSION = "A1004"
API_FLOW_CONTROLLED = "A1005"
API_BAD_DIGEST = "A1006"
API_SERVICE_UNREACHABLE = "A1009"
API_SYSTEM_ERROR = "A1099"

API_MESSAGES = {
    API_OK: "",
    API_MISSING_PARAMETER: "必传参数不可为空",
    API_NO_PERMISSION: "无对应服务权限",
    API_FLOW_CONTROLLED: "流量受控",
    API_BAD_DIGEST: "数字签名无效",
    API_SERVICE_UNREACHABLE: "目标服务异常或不可达",
    API_SYSTEM_ERROR: "系统异常",
}

# Business codes (apiResultData.errorCode).
OK = "S0000"
DUPLICATE_ORDER = "8016"
ORDER_NOT_FOUND = "8018"
MISSING_ORDER_ID = "8013"

BUSINESS_MESSAGES = {
    DUPLICATE_ORDER: "重复下单",
    ORDER_NOT_FOUND: "未获取到订单信息",
    MISSING_ORDER_ID: "订单号不能为空",
}

# Route push answers (RoutePushService, JSON mode): 0000 taken, anything else is pushed again.
PUSH_OK = "0000"
PUSH_FAILED = "1000"

# opCode per scan: which node it means. The sandbox emits the first code of each action.
OP_CODES: dict[str, Node] = {
    "50": Node.PICKED_UP,  # 顺丰已收取快件
    "54": Node.PICKED_UP,  # 上门收件
    "30": Node.IN_TRANSIT,  # 快件在…完成分拣
    "31": Node.IN_TRANSIT,  # 快件到达…
    "36": Node.IN_TRANSIT,  # 快件离开…，已发往…
    "44": Node.OUT_FOR_DELIVERY,  # 正在派送途中
    "204": Node.OUT_FOR_DELIVERY,  # 快件交给…派送
    "80": Node.DELIVERED,  # 已签收
    "70": Node.PROBLEM,  # 派件不成功
    "99": Node.RETURNED,  # 快件退回
}

ACTION_OP_CODE: dict[Action, str] = {
    Action.COLLECTED: "50",
    Action.SORTED: "30",
    Action.DEPARTED: "36",
    Action.ARRIVED: "31",
    Action.DELIVERING: "44",
    Action.SIGNED: "80",
}


def java_urlencode(text: str) -> str:
    """``java.net.URLEncoder.encode(text, "UTF-8")``, which SF's own SDK uses before digesting.

    It differs from ``quote_plus`` in two characters: ``*`` stays, ``~`` becomes ``%7E``.
    """
    return urllib.parse.quote_plus(text, safe="*").replace("~", "%7E")


def msg_digest(msg_data: str, timestamp: str, checkword: str) -> str:
    """msgDigest = Base64(MD5(urlencode(msgData + timestamp + checkword))), MD5 as raw bytes."""
    encoded = java_urlencode(msg_data + timestamp + checkword)
    return base64.b64encode(hashlib.md5(encoded.encode("utf-8")).digest()).decode("ascii")


def api_response(response_id: str, code: str, result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiResponseID": response_id,
        "apiResultCode": code,
        "apiErrorMsg": API_MESSAGES.get(code, ""),
        "apiResultData": json.dumps(result, ensure_ascii=False) if result is not None else None,
    }


def business_result(msg_data: dict[str, Any] | None, error_code: str = OK) -> dict[str, Any]:
    return {
        "success": error_code == OK,
        "errorCode": error_code,
        "errorMsg": BUSINESS_MESSAGES.get(error_code),
        "msgData": msg_data,
    }


def create_order_data(
    order_id: str, waybill_no: str, origin_code: str, dest_code: str, label: dict[str, str]
) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "originCode": origin_code,
        "destCode": dest_code,
        "filterResult": 2,
        "waybillNoInfoList": [{"waybillType": 1, "waybillNo": waybill_no}],
        "routeLabelInfo": [
            {"code": "1000", "message": "SF00", "routeLabelData": {"waybillNo": waybill_no, **label}}
        ],
    }


def route(step: Step, accept_time: str) -> dict[str, str]:
    """One route as EXP_RECE_SEARCH_ROUTES answers it."""
    return {
        "acceptTime": accept_time,
        "acceptAddress": step.city,
        "remark": describe(step),
        "opCode": ACTION_OP_CODE[step.action],
    }


def waybill_route(
    route_id: str, waybill_no: str, order_id: str, step: Step, accept_time: str
) -> dict[str, str]:
    """One WaybillRoute element of a route push (lower-case ``mailno``/``orderid``, unlike the query)."""
    pushed = route(step, accept_time)
    return {"id": route_id, "mailno": waybill_no, "orderid": order_id, **pushed}


def route_push(routes: list[dict[str, str]]) -> dict[str, Any]:
    return {"Body": {"WaybillRoute": routes}}


def push_accepted(status: int, body: bytes) -> bool:
    if status != 200:
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("return_code") == PUSH_OK
