"""The Alipay open platform gateway (``https://openapi.alipay.com/gateway.do``): RSA2 signatures, the
response envelope, the error table, amounts in yuan and the asynchronous notify form. Pure.

- A call is a form POST of ``app_id, method, format=JSON, charset=utf-8, sign_type=RSA2, timestamp,
  version=1.0, biz_content`` (JSON) and ``sign``: SHA256withRSA (PKCS#1 v1.5) by the app's private key,
  base64, over ``k1=v1&k2=v2…`` of every other parameter with a value, sorted by name.
- The answer is ``{"<method with _>_response": {code, msg, …}, "sign": "…"}``; ``sign`` is by Alipay's
  key over the exact JSON text of the response node as it stands in the body.
- A notify is a form POSTed to the trade's ``notify_url``, signed like a call except that ``sign`` and
  ``sign_type`` are both left out of the signed text; it is taken when answered ``success``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CHINA = timezone(timedelta(hours=8))
REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
TRADE_QUERY = "alipay.trade.query"
METHODS = (REFUND, REFUND_QUERY, TRADE_QUERY)
SYSTEM_PARAMETERS = ("app_id", "method", "charset", "sign_type", "timestamp", "version", "sign")

SUCCESS = ("10000", "Success", "", "")
# 20000: the platform itself is down
UNAVAILABLE = ("20000", "Service Currently Unavailable", "isp.unknow-error", "系统繁忙")
MISSING_PARAMETER = ("40001", "Missing Required Arguments", "isv.missing-signature", "缺少签名参数")
INVALID_SIGNATURE = ("40002", "Invalid Arguments", "isv.invalid-signature", "验签出错")
INVALID_APP_ID = ("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数")
INVALID_METHOD = ("40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名")
INVALID_PARAMETER = ("40002", "Invalid Arguments", "isv.invalid-parameter", "参数无效")
TRADE_NOT_EXIST = ("40004", "Business Failed", "ACQ.TRADE_NOT_EXIST", "交易不存在")
REFUND_AMT_NOT_EQUAL_TOTAL = ("40004", "Business Failed", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
DISCORDANT_REPEAT_REQUEST = ("40004", "Business Failed", "ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致")
SYSTEM_ERROR = ("40004", "Business Failed", "ACQ.SYSTEM_ERROR", "系统错误，请使用相同的参数再次调用")

# Alipay's notify schedule: seconds after each unanswered delivery (4 m … 15 h, 25 h in all)
NOTIFY_SCHEDULE = (240, 600, 600, 3600, 7200, 21600, 54000)


def china_time(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def sign_content(params: Mapping[str, str], leave_out: tuple[str, ...] = ("sign",)) -> str:
    return "&".join(
        f"{name}={params[name]}" for name in sorted(params) if name not in leave_out and params[name] != ""
    )


def sign(key: rsa.RSAPrivateKey, content: str) -> str:
    return base64.b64encode(key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode(
        "ascii"
    )


def verify(key: rsa.RSAPublicKey, content: str, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def node(code: tuple[str, str, str, str], **fields: Any) -> dict[str, Any]:
    result_code, msg, sub_code, sub_msg = code
    body: dict[str, Any] = {"code": result_code, "msg": msg}
    if sub_code:
        body.update(sub_code=sub_code, sub_msg=sub_msg)
    body.update(fields)
    return body


def signed_response(key: rsa.RSAPrivateKey, response_name: str, response: dict[str, Any]) -> str:
    """The answer's text: the node as written, then ``sign`` over exactly that text."""
    text = json.dumps(response, ensure_ascii=False, separators=(",", ":"))
    return f'{{"{response_name}":{text},"sign":"{sign(key, text)}"}}'


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def fen(text: str) -> int | None:
    """``12.34`` → 1234, exactly; None for anything that is not a positive amount with at most 2 decimals."""
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        return None
    return int(amount * 100)


def notify_form(key: rsa.RSAPrivateKey, fields: dict[str, str]) -> dict[str, str]:
    signed = {**fields, "sign_type": "RSA2"}
    signed["sign"] = sign(key, sign_content(signed, ("sign", "sign_type")))
    return signed


def notify_accepted(status: int, body: bytes) -> bool:
    return status == 200 and body.strip() == b"success"
