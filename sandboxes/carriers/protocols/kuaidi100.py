"""Kuaidi100 (快递100), the aggregator for ZTO, YTO, EMS and JD: signatures, code tables, envelopes. No I/O.

Four surfaces, all form POSTs:
- e-waybill ``/label/order`` (``method``, ``key``, ``t``, ``param``,
  ``sign`` = upper(MD5(param + t + key + secret)));
- subscription ``/poll`` (``schema``, ``param`` with ``company``, ``number``, ``key``, ``parameters``
  {``callbackurl``, ``salt``, ``resultv2``});
- query ``/poll/query.do`` (``customer``, ``param``, ``sign`` = upper(MD5(param + key + customer)));
- pushes to the subscriber's ``callbackurl``: form ``param`` (JSON) and, when a salt was given,
  ``sign`` = upper(MD5(param + salt)); answered ``{"result":true,"returnCode":"200","message":"成功"}``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sandboxes.carriers.routes import Node, Step, describe

# company code → the sandbox carrier whose misbehaviour it takes
COMPANIES: dict[str, str] = {
    "zhongtong": "zto",
    "yuantong": "yto",
    "ems": "ems",
    "jd": "jd",
    # Cainiao-issued waybills (STO, Yunda) are followed through Kuaidi100 as well
    "shentong": "cainiao",
    "yunda": "cainiao",
}
CARRIER_COMPANY: dict[str, str] = {"zto": "zhongtong", "yto": "yuantong", "ems": "ems", "jd": "jd"}

# lastResult.state: what the parcel's current state means
STATES: dict[str, Node] = {
    "0": Node.IN_TRANSIT,  # 在途
    "1": Node.PICKED_UP,  # 揽收
    "2": Node.PROBLEM,  # 疑难
    "3": Node.DELIVERED,  # 签收
    "4": Node.RETURNED,  # 退签: the returned parcel was signed for by the sender
    "5": Node.OUT_FOR_DELIVERY,  # 派件
    "6": Node.RETURNED,  # 退回
    "7": Node.IN_TRANSIT,  # 转投
    "14": Node.REFUSED,  # 拒签
}
STATE_NAMES = {
    "0": "在途",
    "1": "揽收",
    "2": "疑难",
    "3": "签收",
    "4": "退签",
    "5": "派件",
    "6": "退回",
    "7": "转投",
    "14": "拒签",
}
NODE_STATE: dict[Node, str] = {
    Node.PICKED_UP: "1",
    Node.IN_TRANSIT: "0",
    Node.OUT_FOR_DELIVERY: "5",
    Node.DELIVERED: "3",
    Node.PROBLEM: "2",
    Node.RETURNED: "6",
    Node.REFUSED: "14",
}

# push/subscription monitor status
POLLING = "polling"
SHUTDOWN = "shutdown"
ABORT = "abort"
NO_RECORD_MESSAGE = "3天查询无记录"

# subscription (/poll) returnCode
SUBSCRIBED = "200"
SUBSCRIBE_SERVER_ERROR = "500"
DUPLICATE_SUBSCRIPTION = "501"
BAD_KEY = "600"
BAD_SUBSCRIPTION = "700"
SUBSCRIBE_MESSAGES = {
    SUBSCRIBED: "提交成功",
    SUBSCRIBE_SERVER_ERROR: "服务器错误",
    DUPLICATE_SUBSCRIPTION: "重复订阅",
    BAD_KEY: "您不是合法的订阅者（即授权Key出错）",
    BAD_SUBSCRIPTION: "订阅方的订阅数据存在错误（如不支持的快递公司、单号为空、单号超长等）",
}

# query (/poll/query.do) and e-waybill (/label/order) codes
QUERY_INCOMPLETE = "400"
QUERY_NO_RESULT = "500"
QUERY_BUSY = "502"
BAD_SIGN = "503"
TOO_FREQUENT = "429"
QUERY_MESSAGES = {
    QUERY_INCOMPLETE: "提交的数据不完整，或者贵公司没授权",
    QUERY_NO_RESULT: "查询无结果，请隔段时间再查",
    QUERY_BUSY: "服务器繁忙",
    BAD_SIGN: "验证签名失败",
    TOO_FREQUENT: "请求过于频繁",
}
LABEL_OK = 200
LABEL_BAD_PARAMETER = 400
LABEL_SERVER_ERROR = 500
LABEL_BAD_SIGN = 503
LABEL_TOO_FREQUENT = 429
LABEL_MESSAGES = {
    LABEL_OK: "success",
    LABEL_BAD_PARAMETER: "参数错误",
    LABEL_SERVER_ERROR: "服务器错误",
    LABEL_BAD_SIGN: "验证签名失败",
    LABEL_TOO_FREQUENT: "请求过于频繁",
}

PUSH_OK: dict[str, Any] = {"result": True, "returnCode": "200", "message": "成功"}


def _md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def label_sign(param: str, t: str, key: str, secret: str) -> str:
    return _md5_upper(param + t + key + secret)


def query_sign(param: str, key: str, customer: str) -> str:
    return _md5_upper(param + key + customer)


def push_sign(param: str, salt: str) -> str:
    return _md5_upper(param + salt)


def subscribe_answer(code: str) -> dict[str, Any]:
    return {"result": code == SUBSCRIBED, "returnCode": code, "message": SUBSCRIBE_MESSAGES[code]}


def query_error(code: str) -> dict[str, Any]:
    return {"result": False, "returnCode": code, "message": QUERY_MESSAGES[code]}


def label_answer(code: int, data: dict[str, Any] | None = None, elapsed_ms: int = 0) -> dict[str, Any]:
    return {
        "success": code == LABEL_OK,
        "code": code,
        "message": LABEL_MESSAGES[code],
        "data": data,
        "time": elapsed_ms,
    }


def label_data(order_id: str, waybill_no: str, task_id: str, label: dict[str, str]) -> dict[str, Any]:
    return {"taskId": task_id, "orderId": order_id, "kuaidinum": waybill_no, **label}


def track_item(step: Step, time: str, resultv2: bool) -> dict[str, str]:
    """One scan; ``resultv2`` adds the area and the state name, as subscribing with resultv2=1 does."""
    item = {"time": time, "ftime": time, "context": describe(step)}
    if resultv2:
        state = NODE_STATE[step.node]
        item.update(areaName=step.city, status=STATE_NAMES[state], statusCode=state)
    return item


def track_result(company: str, number: str, items: list[dict[str, str]], state: str) -> dict[str, Any]:
    """The tracking body shared by query answers and a push's ``lastResult``: newest item first."""
    return {
        "message": "ok",
        "nu": number,
        "ischeck": "1" if state == "3" else "0",
        "condition": "F00" if state == "3" else "00",
        "com": company,
        "status": "200",
        "state": state,
        "data": list(reversed(items)),
    }


def push_param(
    status: str,
    last_result: dict[str, Any] | None,
    message: str = "",
    auto_check: str = "0",
    com_old: str = "",
    com_new: str = "",
) -> str:
    body: dict[str, Any] = {
        "status": status,
        "billstatus": "",
        "message": message,
        "autoCheck": auto_check,
        "comOld": com_old,
        "comNew": com_new,
    }
    if last_result is not None:
        body["lastResult"] = last_result
    return json.dumps(body, ensure_ascii=False)


def push_form(param: str, salt: str) -> dict[str, str]:
    form = {"param": param}
    if salt:
        form["sign"] = push_sign(param, salt)
    return form


def push_accepted(status: int, body: bytes) -> bool:
    if status != 200:
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("result") is True
