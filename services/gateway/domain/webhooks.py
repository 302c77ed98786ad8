"""Senders' webhooks: who a sender acts as, whether its signature holds, and what its notification asks
orders to do (pure rules; parsing the bytes and building the requests happen at the edges).

Payment providers: a WeChat Pay v3 style decrypted resource, or an Alipay style notification.
Carriers: a tracking node push. Channels send their own order payloads, ingested as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from services.gateway.domain.policy import ORDERS, allowed, rule_for
from services.gateway.domain.principal import Principal

KINDS = ("payment", "carrier", "channel")
# what a verified webhook of each kind asks orders to do, and the role its sender does it with
FORWARDED = {
    "payment": f"{ORDERS}/ReportPayment",
    "carrier": f"{ORDERS}/ReportSourceStatus",
    "channel": f"{ORDERS}/IngestChannelOrder",
}
SENDER_ROLES = {"payment": "payment_provider", "carrier": "carrier", "channel": "channel"}
# the ids a sender's notification names, per kind, for the audit record
TARGET_KEYS = {
    "payment": ("transaction_id", "trade_no", "out_trade_no"),
    "carrier": ("waybill_no", "order_id", "channel_order_id"),
}
NO_CHANNEL = "CHANNEL_UNSPECIFIED"


class PaymentStatus(StrEnum):
    SUCCESS = "SUCCESS"
    CLOSED = "CLOSED"
    FAILED = "FAILED"
    REFUND = "REFUND"


WECHAT_STATES = {
    "SUCCESS": PaymentStatus.SUCCESS,
    "CLOSED": PaymentStatus.CLOSED,
    "REVOKED": PaymentStatus.CLOSED,
    "PAYERROR": PaymentStatus.FAILED,
    "REFUND": PaymentStatus.REFUND,
}
ALIPAY_STATES = {
    "TRADE_SUCCESS": PaymentStatus.SUCCESS,
    "TRADE_FINISHED": PaymentStatus.SUCCESS,
    "TRADE_CLOSED": PaymentStatus.CLOSED,
    "WAIT_BUYER_PAY": PaymentStatus.FAILED,
}


class WebhookError(Exception):
    """The notification cannot be read as what its kind sends; names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class PaymentReport:
    provider: str
    transaction_id: str
    merchant_order_no: str
    currency_code: str
    amount_minor: int
    paid_at: datetime
    status: PaymentStatus


@dataclass(frozen=True)
class CarrierReport:
    """A tracking node, about an order named by its id or by its channel and channel order id."""

    carrier: str
    waybill_no: str
    node: str
    reported_at: datetime
    order_id: str = ""
    channel: str = ""
    channel_order_id: str = ""


@dataclass(frozen=True)
class Forwarded:
    """What orders made of a notification: the reference the sender is answered, and the ids it touched."""

    reference: str
    touched: list[str]


@dataclass(frozen=True)
class WebhookResult:
    """The answer to a notification; every later delivery of the same body gets the first one's."""

    accepted: bool
    message: str
    reference: str
    duplicate: bool = False


def sender_principal(kind: str, sender: str) -> Principal:
    """A webhook's sender as a principal: the role of its kind, never `service`; a channel scoped to its
    own orders, a payment provider to its own payments. Named `<kind>/<sender>`, a form no token or API
    key can claim (their ids never hold a `/`)."""
    return Principal(
        subject=f"{kind}/{sender}",
        kind="integration",
        roles=frozenset({SENDER_ROLES[kind]}),
        channel=sender.upper() if kind == "channel" else "",
        provider=sender if kind == "payment" else "",
    )


def may_forward(kind: str, principal: Principal) -> bool:
    """Whether the policy lets the sender's role call what its webhook is forwarded to."""
    rule = rule_for(FORWARDED[kind])
    return rule is not None and allowed(rule, principal.roles)


def signed(
    secret: bytes | None, timestamp: str, signature: str, body: bytes, now: float, window_seconds: int
) -> bool:
    """HMAC-SHA256 over `<timestamp>\\n<raw body>` with the sender's secret, within the time window."""
    if secret is None or not timestamp.isdigit() or abs(now - int(timestamp)) > window_seconds:
        return False
    expected = hmac.new(secret, timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def payload_targets(kind: str, body: bytes) -> list[str]:
    """The ids named by a notification (top-level string fields), whether or not it is valid otherwise."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return []
    if not isinstance(document, dict):
        return []
    found = (document.get(key) for key in TARGET_KEYS.get(kind, ()))
    return [value.strip()[:128] for value in found if isinstance(value, str) and value.strip()]


def _object(document: object) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise WebhookError("body", "must be a JSON object")
    return document


def _text(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value.strip():
        raise WebhookError(f"body.{name}", "is required")
    return value.strip()


def _time(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise WebhookError(field, "is required (RFC 3339 time)")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WebhookError(field, "must be an RFC 3339 time such as 2026-11-22T10:00:00+08:00") from None
    if moment.tzinfo is None:
        raise WebhookError(field, "needs a time zone offset")
    return moment


def _status(table: dict[str, PaymentStatus], state: str, field: str) -> PaymentStatus:
    if state not in table:
        raise WebhookError(field, f"unknown state {state[:32]!r}")
    return table[state]


def payment_report(sender: str, document: object) -> PaymentReport:
    """An Alipay notification (amounts in yuan) or a WeChat Pay one (in fen), every state mapped."""
    body = _object(document)
    if sender == "alipay":
        state = _text(body, "trade_status")
        try:
            amount = int((Decimal(_text(body, "total_amount")) * 100).to_integral_exact())
        except (InvalidOperation, ArithmeticError):
            raise WebhookError("body.total_amount", "must be an amount in yuan such as 12.34") from None
        return PaymentReport(
            provider=sender,
            transaction_id=_text(body, "trade_no"),
            merchant_order_no=_text(body, "out_trade_no"),
            currency_code="CNY",
            amount_minor=amount,
            paid_at=_time(body.get("gmt_payment"), "body.gmt_payment"),
            status=_status(ALIPAY_STATES, state, "body.trade_status"),
        )
    amount_node = body.get("amount")
    if not isinstance(amount_node, dict) or not isinstance(amount_node.get("total"), int):
        raise WebhookError("body.amount.total", "is required (an integer in fen)")
    return PaymentReport(
        provider=sender,
        transaction_id=_text(body, "transaction_id"),
        merchant_order_no=_text(body, "out_trade_no"),
        currency_code=str(amount_node.get("currency") or "CNY"),
        amount_minor=amount_node["total"],
        paid_at=_time(body.get("success_time"), "body.success_time"),
        status=_status(WECHAT_STATES, _text(body, "trade_state"), "body.trade_state"),
    )


def carrier_report(sender: str, document: object, channels: Collection[str]) -> CarrierReport:
    """`{"waybill_no", "order_id" | ("channel", "channel_order_id"), "node", "time"}`; `channels` are
    the channel names orders knows (`CHANNEL_TAOBAO`, …)."""
    body = _object(document)
    waybill_no = _text(body, "waybill_no")
    node = _text(body, "node").upper()
    reported_at = _time(body.get("time"), "body.time")
    if isinstance(body.get("order_id"), str) and body["order_id"]:
        return CarrierReport(sender, waybill_no, node, reported_at, order_id=body["order_id"])
    channel = f"CHANNEL_{_text(body, 'channel').upper()}"
    if channel not in channels:
        raise WebhookError("body.channel", "is not a sales channel")
    return CarrierReport(
        sender,
        waybill_no,
        node,
        reported_at,
        channel=channel,
        channel_order_id=_text(body, "channel_order_id"),
    )


def sales_channel(sender: str, channels: Collection[str]) -> str:
    """The channel a channel webhook's sender is (`taobao` → `CHANNEL_TAOBAO`), or WebhookError."""
    channel = f"CHANNEL_{sender.upper()}"
    if channel not in channels or channel == NO_CHANNEL:
        raise WebhookError("sender", f"{sender} is not a sales channel")
    return channel
