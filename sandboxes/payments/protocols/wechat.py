"""WeChat Pay API v3 (``https://api.mch.weixin.qq.com/v3/…``): merchant authentication, reply and
notification signatures, AEAD_AES_256_GCM resources, the error table and the JSON shapes. Pure.

- A request carries ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",
  signature="…",timestamp="…",serial_no="…"``: SHA256withRSA (PKCS#1 v1.5) by the merchant's
  private key over ``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n`` (URL: the path with its query).
- A reply and a notification carry ``Wechatpay-Timestamp``, ``Wechatpay-Nonce``, ``Wechatpay-Signature``
  and ``Wechatpay-Serial``: SHA256withRSA by the platform key over ``timestamp\\nnonce\\nbody\\n``.
- A notification's ``resource`` is encrypted with the merchant's APIv3 key (32 bytes) by AES-256-GCM;
  ``ciphertext`` is base64 of the encrypted bytes followed by the 16-byte tag.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "WECHATPAY2-SHA256-RSA2048"
CHINA = timezone(timedelta(hours=8))
# a signature older (or newer) than this is refused, as WeChat Pay does and asks merchants to do
TIMESTAMP_WINDOW_SECONDS = 300

# error codes (HTTP status, code, message) as the v3 error table names them
SIGN_ERROR = (401, "SIGN_ERROR", "签名错误")
PARAM_ERROR = (400, "PARAM_ERROR", "参数错误")
INVALID_REQUEST = (400, "INVALID_REQUEST", "请求参数符合参数格式，但不符合业务规则")
# the brief's table: a refund above what is left of the payment (see docs/sandboxes.md)
NOT_ENOUGH = (400, "NOT_ENOUGH", "申请退款金额超过订单可退金额")
RESOURCE_NOT_EXISTS = (404, "RESOURCE_NOT_EXISTS", "订单不存在")
REFUND_NOT_EXISTS = (404, "RESOURCE_NOT_EXISTS", "退款单不存在")
SYSTEM_ERROR = (500, "SYSTEM_ERROR", "系统超时，请不要更换商户退款单号，请使用相同参数再次调用API")

REFUND_EVENTS = {"SUCCESS": "REFUND.SUCCESS", "ABNORMAL": "REFUND.ABNORMAL", "CLOSED": "REFUND.CLOSED"}
REFUND_SUMMARIES = {"SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}

# WeChat Pay's notification schedule: seconds after each unanswered delivery (15 s … 6 h, 24 h 4 m in all)
NOTIFY_SCHEDULE = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)

_NONCE_ALPHABET = string.ascii_uppercase + string.digits
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(CHINA).isoformat(timespec="seconds")


def nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def request_message(method: str, url: str, timestamp: str, nonce_str: str, body: str) -> bytes:
    return f"{method}\n{url}\n{timestamp}\n{nonce_str}\n{body}\n".encode()


def reply_message(timestamp: str, nonce_str: str, body: str) -> bytes:
    return f"{timestamp}\n{nonce_str}\n{body}\n".encode()


def sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def authorization(
    mchid: str,
    serial_no: str,
    key: rsa.RSAPrivateKey,
    method: str,
    url: str,
    body: str,
    timestamp: str,
    nonce_str: str,
) -> str:
    signature = sign(key, request_message(method, url, timestamp, nonce_str, body))
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce_str}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


@dataclass(frozen=True)
class Authorization:
    mchid: str
    nonce_str: str
    signature: str
    timestamp: str
    serial_no: str


def parse_authorization(header: str) -> Authorization | None:
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SCHEME:
        return None
    fields = dict(_AUTH_FIELD.findall(rest))
    names = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")
    if not all(fields.get(name) for name in names):
        return None
    return Authorization(*(fields[name] for name in names))


def check_request(
    header: str,
    method: str,
    url: str,
    body: str,
    mchid: str,
    serial_no: str,
    key: rsa.RSAPublicKey,
    now: float,
) -> str:
    """Why the request's authentication fails, or "" when it holds."""
    auth = parse_authorization(header)
    if auth is None:
        return f"Authorization is not {SCHEME} with mchid, nonce_str, signature, timestamp and serial_no"
    if auth.mchid != mchid:
        return f"unknown mchid {auth.mchid}"
    if auth.serial_no != serial_no:
        return f"serial_no {auth.serial_no} is not the merchant certificate's"
    if not auth.timestamp.isdigit() or abs(now - int(auth.timestamp)) > TIMESTAMP_WINDOW_SECONDS:
        return "timestamp is outside the 5-minute window"
    if not verify(key, request_message(method, url, auth.timestamp, auth.nonce_str, body), auth.signature):
        return "signature does not verify with the merchant's public key"
    return ""


def signed_headers(key: rsa.RSAPrivateKey, serial_no: str, body: str, now: float) -> dict[str, str]:
    timestamp, nonce_str = str(int(now)), nonce()
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce_str,
        "Wechatpay-Signature": sign(key, reply_message(timestamp, nonce_str, body)),
        "Wechatpay-Serial": serial_no,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


def error_body(error: tuple[int, str, str], detail: str = "") -> tuple[int, dict[str, Any]]:
    status, code, message = error
    return status, {"code": code, "message": f"{message}: {detail}" if detail else message}


def encrypt_resource(
    apiv3_key: bytes, plain: dict[str, Any], associated_data: str, original_type: str
) -> dict[str, str]:
    nonce_str = nonce(12)
    data = json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    sealed = AESGCM(apiv3_key).encrypt(nonce_str.encode("ascii"), data, associated_data.encode("utf-8"))
    return {
        "original_type": original_type,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
        "associated_data": associated_data,
        "nonce": nonce_str,
    }


def decrypt_resource(apiv3_key: bytes, resource: dict[str, str]) -> dict[str, Any]:
    """The sandbox's own check of what it sends (tests use it too)."""
    opened = AESGCM(apiv3_key).decrypt(
        resource["nonce"].encode("ascii"),
        base64.b64decode(resource["ciphertext"]),
        resource.get("associated_data", "").encode("utf-8"),
    )
    loaded: dict[str, Any] = json.loads(opened)
    return loaded


def notification(
    notification_id: str, created: datetime, event_type: str, summary: str, resource: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": notification_id,
        "create_time": rfc3339(created),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": resource,
    }


def notify_accepted(status: int) -> bool:
    """WeChat Pay takes a notification as received on HTTP 200 or 204; anything else is sent again."""
    return status in (200, 204)
