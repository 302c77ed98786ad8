"""Alipay's open gateway: `alipay.trade.refund` and `alipay.trade.fastpay.refund.query`, each call signed
RSA2 by the app's key and each answer checked against Alipay's key over its response node's text."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp

from services.aftersales.providers.config import AlipayConfig
from services.aftersales.providers.http import send
from services.aftersales.providers.ports import (
    REFUND_NO,
    TRADE_NO,
    CallRefused,
    Provider,
    RefundRequest,
    RefundResult,
    RefundStatus,
    RetryableError,
)
from services.kit.errors import InvalidArgument
from services.kit.provider_signing import (
    alipay_sign,
    load_private_key,
    load_public_key,
    response_node_text,
    rsa_verify,
)
from services.kit.yuan import fen_to_yuan, yuan_to_fen

REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
CHINA = timezone(timedelta(hours=8))
PROVIDER = Provider.ALIPAY
# the platform is down, or the call failed inside: "请使用相同的参数再次调用"
RETRY_SUB_CODES = {"ACQ.SYSTEM_ERROR", "aop.ACQ.SYSTEM_ERROR"}
NOT_ENOUGH_SUB_CODES = {"ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"}
NOT_FOUND_SUB_CODES = {"ACQ.TRADE_NOT_EXIST"}
# the call itself: missing or invalid arguments, signature, app id, permissions
CONFIG_CODES = {"40001", "40002", "40006"}


def _response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def refund_biz(request: RefundRequest) -> dict[str, str]:
    """The same request always gives the same biz_content (Alipay wants a retry's to be identical)."""
    biz = {"out_trade_no": request.out_trade_no}
    if request.provider_trade_no:
        biz["trade_no"] = request.provider_trade_no
    biz["refund_amount"] = fen_to_yuan(request.amount)
    # always numbered: required for a partial refund, and what makes a retry a replay
    biz["out_request_no"] = request.refund_no
    if request.reason:
        biz["refund_reason"] = request.reason
    return biz


def _fen(node: dict[str, Any], name: str, default: int) -> int:
    raw = node.get(name)
    if raw in (None, ""):
        return default
    try:
        return yuan_to_fen(str(raw))
    except ValueError:
        raise RetryableError(PROVIDER, f"{name} {raw!r} is not an amount", uncertain=True) from None


class AlipayClient:
    provider = PROVIDER

    def __init__(
        self, session: aiohttp.ClientSession, config: AlipayConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.session = session
        self.config = config
        base = config.api_url.rstrip("/")
        self.url = base if base.endswith("/gateway.do") else f"{base}/gateway.do"
        self.key = load_private_key(config.app_private_key)
        self.alipay_key = load_public_key(config.alipay_public_key)
        self.clock = clock

    async def _call(self, method: str, biz: dict[str, str]) -> dict[str, Any]:
        """The response node of an answer whose sign held, when its code is 10000 or a business 40004;
        RetryableError or CallRefused otherwise."""
        params = {
            "app_id": self.config.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.fromtimestamp(self.clock(), CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        params["sign"] = alipay_sign(self.key, params)
        reply = await send(self.session, PROVIDER, "POST", self.url, self.config.timeout_seconds, data=params)
        if reply.status != 200:
            raise RetryableError(PROVIDER, f"HTTP {reply.status}", uncertain=reply.status != 429)
        name = _response_key(method)
        text = response_node_text(reply.text, name) or response_node_text(reply.text, "error_response")
        if text is None:
            raise RetryableError(PROVIDER, f"the answer has no {name}", uncertain=True)
        try:
            node, sign = json.loads(text), json.loads(reply.text).get("sign")
        except (ValueError, AttributeError):
            raise RetryableError(PROVIDER, "the answer is not JSON", uncertain=True) from None
        if not isinstance(node, dict):
            raise RetryableError(PROVIDER, f"{name} is not an object", uncertain=True)
        code, sub_code = str(node.get("code", "")), str(node.get("sub_code", ""))
        # a success is believed only signed; a refusal is checked when it is signed
        trusted = isinstance(sign, str) and rsa_verify(self.alipay_key, text.encode("utf-8"), sign)
        if (sign or code == "10000") and not trusted:
            raise RetryableError(PROVIDER, "answer not trusted: its sign does not verify", uncertain=True)
        detail = f"{code} {sub_code} {node.get('sub_msg') or node.get('msg') or ''}".strip()
        if code == "20000" or sub_code in RETRY_SUB_CODES:
            raise RetryableError(PROVIDER, detail, uncertain=True)
        if code in CONFIG_CODES:
            raise CallRefused(PROVIDER, sub_code or code, str(node.get("sub_msg") or node.get("msg") or ""))
        if code not in ("10000", "40004"):
            raise RetryableError(PROVIDER, f"unexpected answer {detail}", uncertain=True)
        return node

    async def refund(self, request: RefundRequest) -> RefundResult:
        node = await self._call(REFUND, refund_biz(request))
        if node.get("code") != "10000":
            return _refusal(node, request.refund_no, request.out_trade_no)
        moved = node.get("fund_change") == "Y"
        if not moved:
            # N: this call moved no money (a replay, or Alipay still at it): the query says where it stands
            queried = await self.query(request.refund_no, request.out_trade_no)
            status = (
                RefundStatus.SUCCESS if queried.status is RefundStatus.SUCCESS else RefundStatus.PROCESSING
            )
            return RefundResult(
                PROVIDER,
                status,
                request.refund_no,
                str(node.get("out_trade_no") or request.out_trade_no),
                str(node.get("trade_no", "")),
                amount=queried.amount if status is RefundStatus.SUCCESS else 0,
                success_time=queried.success_time,
                fund_change=False,
            )
        return RefundResult(
            PROVIDER,
            RefundStatus.SUCCESS,
            request.refund_no,
            str(node.get("out_trade_no") or request.out_trade_no),
            str(node.get("trade_no", "")),
            # send_back_fee is this refund's amount; refund_fee is the trade's refunded total
            amount=_fen(node, "send_back_fee", request.amount),
            success_time=str(node.get("gmt_refund_pay", "")),
            fund_change=True,
        )

    async def query(self, refund_no: str, out_trade_no: str) -> RefundResult:
        if not REFUND_NO.match(refund_no):
            raise InvalidArgument("refund_no", "1 to 64 characters of 0-9 A-Z a-z _ - | * @")
        if not TRADE_NO.match(out_trade_no):
            raise InvalidArgument("out_trade_no", "6 to 32 characters of 0-9 A-Z a-z _ - | * @")
        node = await self._call(REFUND_QUERY, {"out_trade_no": out_trade_no, "out_request_no": refund_no})
        if node.get("code") != "10000":
            return _refusal(node, refund_no, out_trade_no)
        if node.get("refund_status") != "REFUND_SUCCESS":
            # "未返回该字段表示退款请求未收到或者退款失败"
            return RefundResult(
                PROVIDER,
                RefundStatus.NOT_FOUND,
                refund_no,
                out_trade_no,
                str(node.get("trade_no", "")),
                message="no successful refund of that number",
            )
        return RefundResult(
            PROVIDER,
            RefundStatus.SUCCESS,
            refund_no,
            str(node.get("out_trade_no") or out_trade_no),
            str(node.get("trade_no", "")),
            amount=_fen(node, "refund_amount", 0),
            success_time=str(node.get("gmt_refund_pay", "")),
        )


def _refusal(node: dict[str, Any], refund_no: str, out_trade_no: str) -> RefundResult:
    sub_code = str(node.get("sub_code", ""))
    if sub_code in NOT_ENOUGH_SUB_CODES:
        status = RefundStatus.NOT_ENOUGH
    elif sub_code in NOT_FOUND_SUB_CODES:
        status = RefundStatus.NOT_FOUND
    else:
        status = RefundStatus.REJECTED
    message = str(node.get("sub_msg") or node.get("msg") or "")
    return RefundResult(
        PROVIDER, status, refund_no, out_trade_no, code=sub_code or str(node.get("code")), message=message
    )
