"""The providers' notifications, checked before anything in them is believed. Pure: headers and body in,
the decoded notification out, or `NotificationRejected` naming the check that failed.

WeChat Pay: the Wechatpay-Serial must name a platform key we hold, the Wechatpay-Timestamp must be
within five minutes, the Wechatpay-Signature must verify over ``timestamp\\nnonce\\nbody\\n``, and the
resource must decrypt (AEAD_AES_256_GCM under the APIv3 key, its associated data included).
Alipay: ``sign_type`` RSA2, ``sign`` verifying over the other fields (``sign_type`` left out), our
``app_id``, and a readable ``total_amount``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from services.kit.provider_signing import (
    alipay_verify_notify,
    rsa_verify,
    wechat_decrypt,
    wechat_reply_message,
)
from services.kit.yuan import yuan_to_fen

WINDOW_SECONDS = 300


@dataclass(frozen=True)
class ProviderKeys:
    """What the gateway checks the providers' notifications with; None: that provider is not used."""

    wechat_platform_keys: Mapping[str, rsa.RSAPublicKey] | None = None
    wechat_apiv3_key: bytes = b""
    alipay_public_key: rsa.RSAPublicKey | None = None
    alipay_app_id: str = ""


REFUND_STATUSES = frozenset({"SUCCESS", "CLOSED", "ABNORMAL", "PROCESSING"})


class NotificationRejected(Exception):
    """A notification that must not be believed; `check` names what failed: ``headers``, ``serial``,
    ``timestamp``, ``signature``, ``format``, ``decryption``, ``sign_type``, ``app_id`` or ``amount``."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


@dataclass(frozen=True)
class WechatNotification:
    """A WeChat Pay notification whose signature held, with its resource decrypted."""

    id: str
    event_type: str  # REFUND.SUCCESS, REFUND.ABNORMAL, REFUND.CLOSED, TRANSACTION.SUCCESS, …
    create_time: str
    summary: str
    original_type: str  # refund, transaction
    resource: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlipayNotify:
    """An Alipay asynchronous notify whose signature held."""

    notify_id: str
    notify_type: str
    trade_status: str  # TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED, WAIT_BUYER_PAY
    out_trade_no: str
    trade_no: str
    total_amount: int  # fen
    gmt_payment: str
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundNotice:
    """What a verified REFUND.* notification says of one refund."""

    status: str  # SUCCESS, CLOSED, ABNORMAL, PROCESSING
    refund_no: str  # out_refund_no: ours, derived from the ticket
    out_trade_no: str
    provider_trade_no: str
    provider_refund_id: str
    amount: int  # fen
    success_time: str


def verify_wechat_notification(
    headers: Mapping[str, str],
    body: bytes,
    platform_keys: Mapping[str, rsa.RSAPublicKey],
    apiv3_key: bytes,
    now: float,
    window_seconds: float = WINDOW_SECONDS,
) -> WechatNotification:
    named = {name.lower(): value for name, value in headers.items()}
    timestamp = named.get("wechatpay-timestamp", "")
    nonce = named.get("wechatpay-nonce", "")
    signature = named.get("wechatpay-signature", "")
    serial = named.get("wechatpay-serial", "")
    missing = [
        name
        for name, value in (
            ("Wechatpay-Timestamp", timestamp),
            ("Wechatpay-Nonce", nonce),
            ("Wechatpay-Signature", signature),
            ("Wechatpay-Serial", serial),
        )
        if not value
    ]
    if missing:
        raise NotificationRejected("headers", f"missing {', '.join(missing)}")
    key = platform_keys.get(serial)
    if key is None:
        raise NotificationRejected("serial", f"Wechatpay-Serial {serial} is not a platform key we hold")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > window_seconds:
        raise NotificationRejected(
            "timestamp", f"Wechatpay-Timestamp {timestamp} is outside the {window_seconds:g}s window"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise NotificationRejected("format", "the body is not UTF-8") from None
    if not rsa_verify(key, wechat_reply_message(timestamp, nonce, text), signature):
        raise NotificationRejected("signature", "Wechatpay-Signature does not verify over the body")
    envelope = _object(text, "the body")
    resource = envelope.get("resource")
    if not isinstance(resource, dict):
        raise NotificationRejected("format", "no resource object")
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise NotificationRejected(
            "format", f"resource.algorithm {resource.get('algorithm')!r} is not AEAD_AES_256_GCM"
        )
    fields = {name: resource.get(name) for name in ("ciphertext", "nonce", "associated_data")}
    if not isinstance(fields["ciphertext"], str) or not isinstance(fields["nonce"], str):
        raise NotificationRejected("format", "resource.ciphertext and resource.nonce are required")
    associated = fields["associated_data"] if isinstance(fields["associated_data"], str) else ""
    try:
        plain = wechat_decrypt(apiv3_key, fields["nonce"], associated, fields["ciphertext"])
    except ValueError as error:
        raise NotificationRejected("decryption", str(error)) from None
    try:
        decoded = _object(plain.decode("utf-8"), "the decrypted resource")
    except UnicodeDecodeError:
        raise NotificationRejected("format", "the decrypted resource is not UTF-8") from None
    return WechatNotification(
        id=str(envelope.get("id", "")),
        event_type=str(envelope.get("event_type", "")),
        create_time=str(envelope.get("create_time", "")),
        summary=str(envelope.get("summary", "")),
        original_type=str(resource.get("original_type", "")),
        resource=decoded,
    )


def _object(text: str, what: str) -> dict[str, Any]:
    try:
        loaded = json.loads(text)
    except ValueError:
        raise NotificationRejected("format", f"{what} is not JSON") from None
    if not isinstance(loaded, dict):
        raise NotificationRejected("format", f"{what} is not a JSON object")
    return loaded


def wechat_refund_of(notification: WechatNotification) -> RefundNotice:
    """The refund a verified REFUND.* notification tells of."""
    if notification.original_type != "refund" or not notification.event_type.startswith("REFUND."):
        raise NotificationRejected("format", f"{notification.event_type} is not a refund notification")
    resource = notification.resource
    status = str(resource.get("refund_status", ""))
    if status not in REFUND_STATUSES:
        raise NotificationRejected("format", f"refund_status {resource.get('refund_status')!r} is unknown")
    amount = resource.get("amount") if isinstance(resource.get("amount"), dict) else {}
    refunded = amount.get("refund") if isinstance(amount, dict) else None
    if isinstance(refunded, bool) or not isinstance(refunded, int) or refunded < 0:
        raise NotificationRejected("amount", "amount.refund is not a whole number of fen")
    return RefundNotice(
        status=status,
        refund_no=str(resource.get("out_refund_no", "")),
        out_trade_no=str(resource.get("out_trade_no", "")),
        provider_trade_no=str(resource.get("transaction_id", "")),
        provider_refund_id=str(resource.get("refund_id", "")),
        amount=refunded,
        success_time=str(resource.get("success_time", "")),
    )


def verify_alipay_notify(
    form: Mapping[str, str], alipay_public_key: rsa.RSAPublicKey, app_id: str
) -> AlipayNotify:
    fields = {name: str(value) for name, value in form.items()}
    if not fields.get("sign"):
        raise NotificationRejected("signature", "no sign")
    if fields.get("sign_type") != "RSA2":
        raise NotificationRejected("sign_type", f"sign_type {fields.get('sign_type')!r} is not RSA2")
    if not alipay_verify_notify(alipay_public_key, fields):
        raise NotificationRejected("signature", "sign does not verify with Alipay's public key")
    if fields.get("app_id") != app_id:
        raise NotificationRejected("app_id", f"app_id {fields.get('app_id')!r} is not ours")
    missing = [
        name for name in ("notify_id", "out_trade_no", "trade_no", "trade_status") if not fields.get(name)
    ]
    if missing:
        raise NotificationRejected("format", f"missing {', '.join(missing)}")
    try:
        total = yuan_to_fen(fields.get("total_amount", ""))
    except ValueError as error:
        raise NotificationRejected("amount", f"total_amount: {error}") from None
    return AlipayNotify(
        notify_id=fields["notify_id"],
        notify_type=fields.get("notify_type", ""),
        trade_status=fields["trade_status"],
        out_trade_no=fields["out_trade_no"],
        trade_no=fields["trade_no"],
        total_amount=total,
        gmt_payment=fields.get("gmt_payment", ""),
        fields=fields,
    )
