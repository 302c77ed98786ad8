"""Senders' webhook bodies → the owning service's requests (pure mapping, no I/O).

Payment providers: a WeChat Pay v3 style decrypted resource, or an Alipay style notification.
Carriers: a tracking node push. Channels send their own order payloads, ingested as they are.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from oms.common.v1 import common_pb2
from oms.orders.v1 import orders_pb2
from services.gateway import auth
from services.gateway.policy import ORDERS, allowed, rule_for
from services.kit import inputs
from services.kit.errors import InvalidArgument
from services.kit.timestamps import timestamp

WECHAT_STATES = {
    "SUCCESS": "PAYMENT_STATUS_SUCCESS",
    "CLOSED": "PAYMENT_STATUS_CLOSED",
    "REVOKED": "PAYMENT_STATUS_CLOSED",
    "PAYERROR": "PAYMENT_STATUS_FAILED",
    "REFUND": "PAYMENT_STATUS_REFUND",
}
ALIPAY_STATES = {
    "TRADE_SUCCESS": "PAYMENT_STATUS_SUCCESS",
    "TRADE_FINISHED": "PAYMENT_STATUS_SUCCESS",
    "TRADE_CLOSED": "PAYMENT_STATUS_CLOSED",
    "WAIT_BUYER_PAY": "PAYMENT_STATUS_FAILED",
}

# what a verified webhook of each kind asks orders to do, and the role its sender does it with
FORWARDED = {
    "payment": f"{ORDERS}/ReportPayment",
    "carrier": f"{ORDERS}/ReportSourceStatus",
    "channel": f"{ORDERS}/IngestChannelOrder",
}
SENDER_ROLES = {"payment": "payment_provider", "carrier": "carrier", "channel": "channel"}


def sender_principal(kind: str, sender: str) -> auth.Principal:
    """A webhook's sender as a principal: the role of its kind, never `service`; a channel scoped to its
    own orders, a payment provider to its own payments. Named `<kind>/<sender>`, a form no token or API
    key can claim (their ids never hold a `/`)."""
    return auth.Principal(
        subject=f"{kind}/{sender}",
        kind="integration",
        roles=frozenset({SENDER_ROLES[kind]}),
        channel=sender.upper() if kind == "channel" else "",
        provider=sender if kind == "payment" else "",
    )


def may_forward(kind: str, principal: auth.Principal) -> bool:
    """Whether the policy lets the sender's role call what its webhook is forwarded to."""
    rule = rule_for(FORWARDED[kind])
    return rule is not None and allowed(rule, principal.roles)


# the ids a sender's notification names, per kind, for the audit record
TARGET_KEYS = {
    "payment": ("transaction_id", "trade_no", "out_trade_no"),
    "carrier": ("waybill_no", "order_id", "channel_order_id"),
}


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


class WebhookError(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _document(body: bytes) -> dict[str, Any]:
    try:
        document = inputs.loads(body, "body")
    except InvalidArgument as error:
        raise WebhookError("body", error.problem) from None
    if not isinstance(document, dict):
        raise WebhookError("body", "must be a JSON object")
    return document


def _text(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value.strip():
        raise WebhookError(f"body.{name}", "is required")
    return value.strip()


def _time(value: object, field: str) -> Timestamp:
    if not isinstance(value, str):
        raise WebhookError(field, "is required (RFC 3339 time)")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WebhookError(field, "must be an RFC 3339 time such as 2026-11-22T10:00:00+08:00") from None
    if moment.tzinfo is None:
        raise WebhookError(field, "needs a time zone offset")
    return timestamp(moment)


def payment_report(sender: str, body: bytes) -> orders_pb2.ReportPaymentRequest:
    document = _document(body)
    if sender == "alipay":
        state = _text(document, "trade_status")
        try:
            amount = int((Decimal(_text(document, "total_amount")) * 100).to_integral_exact())
        except (InvalidOperation, ArithmeticError):
            raise WebhookError("body.total_amount", "must be an amount in yuan such as 12.34") from None
        return orders_pb2.ReportPaymentRequest(
            provider=sender,
            transaction_id=_text(document, "trade_no"),
            merchant_order_no=_text(document, "out_trade_no"),
            amount=common_pb2.Money(currency_code="CNY", amount_minor=amount),
            paid_at=_time(document.get("gmt_payment"), "body.gmt_payment"),
            status=_status(ALIPAY_STATES, state, "body.trade_status"),
        )
    amount_node = document.get("amount")
    if not isinstance(amount_node, dict) or not isinstance(amount_node.get("total"), int):
        raise WebhookError("body.amount.total", "is required (an integer in fen)")
    return orders_pb2.ReportPaymentRequest(
        provider=sender,
        transaction_id=_text(document, "transaction_id"),
        merchant_order_no=_text(document, "out_trade_no"),
        amount=common_pb2.Money(
            currency_code=str(amount_node.get("currency") or "CNY"), amount_minor=amount_node["total"]
        ),
        paid_at=_time(document.get("success_time"), "body.success_time"),
        status=_status(WECHAT_STATES, _text(document, "trade_state"), "body.trade_state"),
    )


def _status(table: dict[str, str], state: str, field: str) -> str:
    if state not in table:
        raise WebhookError(field, f"unknown state {state[:32]!r}")
    return table[state]


def carrier_report(sender: str, body: bytes) -> orders_pb2.ReportSourceStatusRequest:
    """`{"waybill_no", "order_id" | ("channel", "channel_order_id"), "node", "time"}`."""
    document = _document(body)
    fields = struct_pb2.Struct()
    fields.update(
        {
            "carrier": sender,
            "waybill_no": _text(document, "waybill_no"),
            "tracking": {"node": _text(document, "node").upper()},
        }
    )
    request = orders_pb2.ReportSourceStatusRequest(
        source="CARRIER", fields=fields, reported_at=_time(document.get("time"), "body.time")
    )
    if isinstance(document.get("order_id"), str) and document["order_id"]:
        request.order_id = document["order_id"]
    else:
        channel = f"CHANNEL_{_text(document, 'channel').upper()}"
        if channel not in orders_pb2.Channel.keys():  # noqa: SIM118 - an enum wrapper, not a dict
            raise WebhookError("body.channel", "is not a sales channel")
        request.channel = channel  # type: ignore[assignment]
        request.channel_order_id = _text(document, "channel_order_id")
    return request
