"""WeChat Pay API v3: refunds (`POST /v3/refund/domestic/refunds`) and refund queries
(`GET /v3/refund/domestic/refunds/{out_refund_no}`), each call signed by the merchant's key and each
answer checked against the platform's key before it is believed."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from yarl import URL

from services.aftersales.providers.config import WechatPayConfig
from services.aftersales.providers.http import Reply, send
from services.aftersales.providers.ports import (
    REFUND_NO,
    CallRefused,
    Provider,
    RefundRequest,
    RefundResult,
    RefundStatus,
    RetryableError,
)
from services.kit.errors import InvalidArgument
from services.kit.provider_signing import (
    load_private_key,
    load_public_key,
    rsa_verify,
    wechat_authorization,
    wechat_reply_message,
)

REFUNDS = "/v3/refund/domestic/refunds"
# a signature more than five minutes off is not believed (WeChat's own rule for both directions)
WINDOW_SECONDS = 300
STATUSES = {
    status.value: status
    for status in (RefundStatus.PROCESSING, RefundStatus.SUCCESS, RefundStatus.CLOSED, RefundStatus.ABNORMAL)
}
# system errors: "请不要更换商户退款单号，请使用相同参数再次调用API" (SYSTEMERROR is v2's spelling)
RETRY_CODES = {"SYSTEM_ERROR", "SYSTEMERROR", "BIZERR_NEED_RETRY", "FREQUENCY_LIMITED"}
# the call itself is refused: our merchant number, certificate serial, key or permissions
CONFIG_CODES = {"SIGN_ERROR", "NO_AUTH", "MCH_NOT_EXISTS", "APPID_MCHID_NOT_MATCH", "INVALID_CERTIFICATE"}
NOT_FOUND_CODES = {"RESOURCE_NOT_EXISTS", "ORDER_NOT_EXIST", "ORDERNOTEXIST"}
PROVIDER = Provider.WECHAT_PAY


def _body(payload: dict[str, Any] | None) -> str:
    return "" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def refund_payload(request: RefundRequest, notify_url: str) -> dict[str, Any]:
    """The same request always gives the same body: a retry sends exactly what the first call sent."""
    payload: dict[str, Any] = {}
    if request.provider_trade_no:
        payload["transaction_id"] = request.provider_trade_no
    else:
        payload["out_trade_no"] = request.out_trade_no
    payload["out_refund_no"] = request.refund_no
    if request.reason:
        payload["reason"] = request.reason
    if request.notify_url or notify_url:
        payload["notify_url"] = request.notify_url or notify_url
    payload["amount"] = {"refund": request.amount, "total": request.total, "currency": request.currency}
    return payload


def result_of(answer: dict[str, Any], fallback_no: str) -> RefundResult:
    status = STATUSES.get(str(answer.get("status", "")))
    if status is None:
        raise RetryableError(PROVIDER, f"unknown refund status {answer.get('status')!r}", uncertain=True)
    amount = answer.get("amount") if isinstance(answer.get("amount"), dict) else {}
    refunded = amount.get("refund", 0) if isinstance(amount, dict) else 0
    return RefundResult(
        provider=PROVIDER,
        status=status,
        refund_no=str(answer.get("out_refund_no") or fallback_no),
        out_trade_no=str(answer.get("out_trade_no", "")),
        provider_trade_no=str(answer.get("transaction_id", "")),
        provider_refund_id=str(answer.get("refund_id", "")),
        amount=refunded if isinstance(refunded, int) else 0,
        success_time=str(answer.get("success_time", "")),
    )


class WechatPayClient:
    provider = PROVIDER

    def __init__(
        self, session: aiohttp.ClientSession, config: WechatPayConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.session = session
        self.config = config
        self.base = config.api_url.rstrip("/")
        self.key = load_private_key(config.merchant_private_key)
        self.platform_keys = {
            serial: load_public_key(key) for serial, key in config.platform_public_keys.items()
        }
        self.clock = clock

    async def _call(
        self, method: str, path: str, payload: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The status and JSON of an answer whose signature held; RetryableError or CallRefused otherwise."""
        body = _body(payload)
        # signed as it goes on the wire: the path and query exactly as the URL encodes them
        target = URL(self.base + path)
        signed_url = target.raw_path_qs
        headers = {
            "Authorization": wechat_authorization(
                self.config.mchid,
                self.config.merchant_serial,
                self.key,
                method,
                signed_url,
                body,
                str(int(self.clock())),
                secrets.token_hex(16).upper(),
            ),
            "Accept": "application/json",
            "User-Agent": "oms-aftersales",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        reply = await send(
            self.session,
            PROVIDER,
            method,
            target,
            self.config.timeout_seconds,
            headers,
            body.encode("utf-8") if payload is not None else None,
        )
        if reply.status >= 500:
            raise RetryableError(PROVIDER, f"HTTP {reply.status} {_code(reply.text)}".strip(), uncertain=True)
        problem = self._unverified(reply)
        if problem:
            # an answer that cannot be believed says nothing about what was done
            raise RetryableError(PROVIDER, f"answer not trusted: {problem}", uncertain=True)
        if reply.status == 204:
            return reply.status, {}
        try:
            answer = json.loads(reply.text)
        except ValueError:
            raise RetryableError(PROVIDER, f"HTTP {reply.status} without JSON", uncertain=True) from None
        if not isinstance(answer, dict):
            raise RetryableError(PROVIDER, f"HTTP {reply.status}: not a JSON object", uncertain=True)
        code = str(answer.get("code", ""))
        if reply.status == 429 or code in RETRY_CODES:
            raise RetryableError(
                PROVIDER,
                f"{code or reply.status} {answer.get('message', '')}".strip(),
                uncertain=reply.status != 429,
            )
        if code in CONFIG_CODES or reply.status == 401:
            raise CallRefused(PROVIDER, code or str(reply.status), str(answer.get("message", "")))
        return reply.status, answer

    def _unverified(self, reply: Reply) -> str:
        """Why the answer's Wechatpay-* signature does not hold, or ""."""
        timestamp = reply.headers.get("Wechatpay-Timestamp", "")
        nonce = reply.headers.get("Wechatpay-Nonce", "")
        signature = reply.headers.get("Wechatpay-Signature", "")
        serial = reply.headers.get("Wechatpay-Serial", "")
        if not (timestamp and nonce and signature and serial):
            return "no Wechatpay-Timestamp/Nonce/Signature/Serial headers"
        key = self.platform_keys.get(serial)
        if key is None:
            return f"Wechatpay-Serial {serial} is not a platform key we know"
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > WINDOW_SECONDS:
            return "Wechatpay-Timestamp is more than 5 minutes off"
        if not rsa_verify(key, wechat_reply_message(timestamp, nonce, reply.text), signature):
            return "Wechatpay-Signature does not verify with the platform key"
        return ""

    async def refund(self, request: RefundRequest) -> RefundResult:
        status, answer = await self._call("POST", REFUNDS, refund_payload(request, self.config.notify_url))
        if status == 200:
            return result_of(answer, request.refund_no)
        return _refusal(answer, request.refund_no, request.out_trade_no)

    async def query(self, refund_no: str, out_trade_no: str = "") -> RefundResult:
        if not REFUND_NO.match(refund_no):
            raise InvalidArgument("refund_no", "1 to 64 characters of 0-9 A-Z a-z _ - | * @")
        # yarl quotes what needs it (| → %7C); what is signed is what is sent
        path = f"{REFUNDS}/{refund_no}"
        status, answer = await self._call("GET", path)
        if status != 200:
            return _refusal(answer, refund_no, out_trade_no)
        result = result_of(answer, refund_no)
        if out_trade_no and result.out_trade_no != out_trade_no:
            return RefundResult(
                PROVIDER,
                RefundStatus.NOT_FOUND,
                refund_no,
                out_trade_no,
                code="OTHER_TRADE",
                message=f"refund {refund_no} belongs to trade {result.out_trade_no}",
            )
        return result


def _code(text: str) -> str:
    try:
        answer = json.loads(text)
    except ValueError:
        return ""
    return str(answer.get("code", "")) if isinstance(answer, dict) else ""


def _refusal(answer: dict[str, Any], refund_no: str, out_trade_no: str) -> RefundResult:
    code, message = str(answer.get("code", "")), str(answer.get("message", ""))
    if code == "NOT_ENOUGH":
        status = RefundStatus.NOT_ENOUGH
    elif code in NOT_FOUND_CODES:
        status = RefundStatus.NOT_FOUND
    else:
        status = RefundStatus.REJECTED
    return RefundResult(PROVIDER, status, refund_no, out_trade_no, code=code, message=message)
