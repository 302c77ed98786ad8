"""Taobao Open Platform (TOP): `POST /router/rest` with form or query parameters, signed
`sign = upper(hex(MD5(secret + k1v1k2v2… + secret)))` over every parameter but `sign`, sorted by name
(`sign_method=hmac-sha256`: upper hex HMAC-SHA256 with the secret over `k1v1k2v2…`); times are
`yyyy-MM-dd HH:mm:ss` in Beijing time; errors are `{"error_response": {"code", "msg", "sub_code",
"sub_msg"}}`. OAuth 2.0 at `POST /token` (`grant_type=refresh_token`)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

BEIJING = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
INCREMENT_GET = "taobao.trades.sold.increment.get"
SYSTEM_PARAMETERS = ("method", "app_key", "timestamp", "v", "sign_method", "sign")
MAX_PAGE_SIZE = 100

# (code, msg, sub_code)
INVALID_SESSION = (27, "Invalid session", "invalid-sessionkey")
INVALID_SIGNATURE = (25, "Invalid signature", "isv.invalid-signature")
INVALID_APP_KEY = (29, "Invalid app Key", "isv.appkey-not-exists")
MISSING_PARAMETER = (40, "Missing required arguments", "isv.missing-parameter")
INVALID_ARGUMENTS = (41, "Invalid arguments", "isv.invalid-parameter")
INVALID_METHOD = (22, "Invalid method", "isv.invalid-method")
REMOTE_SERVICE_ERROR = (15, "Remote service error", "isp.top-remote-service-unavailable")


def sign(params: Mapping[str, str], secret: str, method: str = "md5") -> str:
    joined = "".join(f"{key}{params[key]}" for key in sorted(params) if key != "sign")
    if method == "hmac-sha256":
        return hmac.new(secret.encode(), joined.encode(), hashlib.sha256).hexdigest().upper()
    return hashlib.md5((secret + joined + secret).encode()).hexdigest().upper()


def format_time(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A TOP time (Beijing, no offset); ValueError when it is not one."""
    return datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=BEIJING).astimezone(UTC)


def error(code: tuple[int, str, str], sub_msg: str = "") -> dict[str, Any]:
    number, msg, sub_code = code
    node: dict[str, Any] = {"code": number, "msg": msg, "sub_code": sub_code}
    if sub_msg:
        node["sub_msg"] = sub_msg
    node["request_id"] = "sandbox"
    return {"error_response": node}
