"""Aliyun's RPC-style request signing (signature version 1.0, HMAC-SHA1), as its SMS API SendSms wants it:
the parameters sorted by name, each percent-encoded (RFC 3986: space %20, * %2A, ~ kept), joined, and
signed as `METHOD&%2F&<encoded canonical query>` with the AccessKey secret plus "&" as the key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping


def percent_encode(text: str) -> str:
    return urllib.parse.quote(text, safe="~")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    canonical = "&".join(
        f"{percent_encode(key)}={percent_encode(value)}"
        for key, value in sorted(params.items())
        if key != "Signature"
    )
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"


def signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
