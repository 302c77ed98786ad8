"""Aliyun's RPC signature, version 1.0, as the provider checks it: HMAC-SHA1 with the AccessKey secret
plus "&" over `METHOD&%2F&<percent-encoded canonical query>`, every parameter but Signature sorted by
name and percent-encoded as RFC 3986 says (space %20, * %2A, ~ kept). Written here apart from the
gateway's client on purpose: the sandbox checks the client, not itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def expected_signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    canonical = "&".join(
        f"{_encode(name)}={_encode(params[name])}" for name in sorted(params) if name != "Signature"
    )
    to_sign = f"{method.upper()}&{_encode('/')}&{_encode(canonical)}"
    return base64.b64encode(hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


def signed(secret: str, method: str, params: Mapping[str, str]) -> bool:
    return hmac.compare_digest(expected_signature(secret, method, params), params.get("Signature", ""))
