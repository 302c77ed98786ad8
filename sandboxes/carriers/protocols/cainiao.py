"""Cainiao e-waybills through the Taobao open platform (TOP ``/router/rest``). No I/O.

A call is a form POST of the system parameters ``method``, ``app_key``, ``timestamp``, ``v``,
``sign_method`` (``md5``), ``format`` (``json``), ``sign`` and the API's own parameters. The sign is
upper(MD5(secret + k1v1k2v2… + secret)) over every parameter but ``sign``, sorted by name, empty
values left out. ``cainiao.waybill.ii.get`` takes ``param_waybill_cloud_print_apply_new_request``
whose ``trade_order_info_dtos`` holds at most 10 waybill requests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

GET_WAYBILL = "cainiao.waybill.ii.get"
QUERY_BY_TRADE_CODE = "cainiao.waybill.ii.query.by.tradecode"
METHODS = (GET_WAYBILL, QUERY_BY_TRADE_CODE)
MAX_BATCH = 10

# cp_code → the Kuaidi100 company code its waybills are tracked under
CP_COMPANIES = {"STO": "shentong", "YUNDA": "yunda"}

# TOP platform error codes
APP_CALL_LIMITED = 7
REMOTE_SERVICE_ERROR = 15
INVALID_METHOD = 22
INVALID_SIGNATURE = 25
INVALID_APP_KEY = 29
MISSING_ARGUMENTS = 40
INVALID_ARGUMENTS = 41
TOP_MESSAGES = {
    APP_CALL_LIMITED: "App Call Limited",
    REMOTE_SERVICE_ERROR: "Remote service error",
    INVALID_METHOD: "Invalid method",
    INVALID_SIGNATURE: "Invalid signature",
    INVALID_APP_KEY: "Invalid app Key",
    MISSING_ARGUMENTS: "Missing required arguments",
    INVALID_ARGUMENTS: "Invalid arguments",
}
SYSTEM_PARAMETERS = ("method", "app_key", "timestamp", "v", "sign_method", "sign")


def top_sign(params: Mapping[str, str], secret: str) -> str:
    joined = "".join(
        f"{name}{params[name]}" for name in sorted(params) if name != "sign" and params[name] != ""
    )
    return hashlib.md5(f"{secret}{joined}{secret}".encode()).hexdigest().upper()


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def error_response(
    request_id: str, code: int, sub_code: str = "", sub_msg: str = "", detail: str = ""
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "msg": TOP_MESSAGES[code] + (f":{detail}" if detail else "")}
    if sub_code:
        error["sub_code"] = sub_code
        error["sub_msg"] = sub_msg
    error["request_id"] = request_id
    return {"error_response": error}


def waybill_module(object_id: str, waybill_code: str, print_data: str) -> dict[str, str]:
    return {"object_id": object_id, "waybill_code": waybill_code, "print_data": print_data}


def get_waybill_response(request_id: str, modules: list[dict[str, str]]) -> dict[str, Any]:
    return {
        response_key(GET_WAYBILL): {
            "modules": {"waybill_cloud_print_response": modules},
            "request_id": request_id,
        }
    }


def query_response(request_id: str, modules: list[dict[str, str]]) -> dict[str, Any]:
    return {
        response_key(QUERY_BY_TRADE_CODE): {
            "modules": {"waybill_cloud_print_with_result_desc_response": modules},
            "request_id": request_id,
        }
    }
