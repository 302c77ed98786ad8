"""Douyin shop open platform (抖店): `POST /{method with dots as slashes}` (`/order/searchList`) with
`app_key`, `method`, `access_token`, `timestamp` (`yyyy-MM-dd HH:mm:ss`, Beijing), `v=2`, `sign_method`
and `sign` in the query and `param_json` (keys sorted, no spaces) as the body. The string signed is
`secret + "app_key" + app_key + "method" + method + "param_json" + param_json + "timestamp" + timestamp
+ "v" + v + secret`: lower hex MD5 of it (`sign_method=md5`) or HMAC-SHA256 of it keyed by the secret
(`hmac-sha256`). Every answer is `{"code", "msg", "sub_code", "sub_msg", "data", "log_id"}`; 10000 is
success. Tokens: `token.create` and `token.refresh`, signed the same way, without an access token."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SEARCH_LIST = "order.searchList"
TOKEN_CREATE = "token.create"
TOKEN_REFRESH = "token.refresh"
METHODS = (SEARCH_LIST, TOKEN_CREATE, TOKEN_REFRESH)
MAX_PAGE_SIZE = 100

SUCCESS = (10000, "success", "")
# (code, msg, sub_code)
INVALID_TOKEN = (30001, "access_token不合法", "isv.access-token-no-existed")
EXPIRED_TOKEN = (30002, "access_token已过期", "isv.access-token-expired")
INVALID_REFRESH_TOKEN = (30003, "refresh_token不合法或已过期", "isv.refresh-token-invalid")
INVALID_PARAMETER = (40003, "参数错误", "isv.parameter-invalid")
INVALID_SIGN = (40004, "签名校验失败", "isv.signature-invalid")
INVALID_APP_KEY = (40005, "app_key不存在", "isv.app-key-invalid")
INVALID_METHOD = (40006, "接口不存在", "isv.method-invalid")
SERVICE_BUSY = (50002, "服务繁忙，请稍后重试", "isp.service-busy")


def param_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sign(
    app_key: str,
    secret: str,
    method: str,
    params_json: str,
    timestamp: str,
    v: str = "2",
    sign_method: str = "md5",
) -> str:
    text = f"{secret}app_key{app_key}method{method}param_json{params_json}timestamp{timestamp}v{v}{secret}"
    if sign_method == "hmac-sha256":
        return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    return hashlib.md5(text.encode()).hexdigest()


def path_of(method: str) -> str:
    return "/" + method.replace(".", "/")


def answer(code: tuple[int, str, str], data: Any = None, sub_msg: str = "") -> dict[str, Any]:
    number, msg, sub_code = code
    return {
        "code": number,
        "msg": msg,
        "sub_code": sub_code,
        "sub_msg": sub_msg,
        "data": data or {},
        "log_id": "sandbox",
    }
