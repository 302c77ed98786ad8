"""The carriers' signatures, as their documentation and SDKs compute them. Pure."""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from collections.abc import Mapping


def java_urlencode(text: str) -> str:
    """``java.net.URLEncoder.encode(text, "UTF-8")``, which SF's SDK applies before digesting: like
    ``quote_plus`` but ``*`` is kept and ``~`` escaped."""
    return urllib.parse.quote_plus(text, safe="*").replace("~", "%7E")


def sf_msg_digest(msg_data: str, timestamp: str, checkword: str) -> str:
    """SF: Base64(MD5(urlencode(msgData + timestamp + checkword))), the MD5 as its raw 16 bytes."""
    encoded = java_urlencode(msg_data + timestamp + checkword)
    return base64.b64encode(hashlib.md5(encoded.encode("utf-8")).digest()).decode("ascii")


def _md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def kuaidi100_label_sign(param: str, t: str, key: str, secret: str) -> str:
    """Kuaidi100 e-waybill: upper(MD5(param + t + key + secret))."""
    return _md5_upper(param + t + key + secret)


def kuaidi100_query_sign(param: str, key: str, customer: str) -> str:
    """Kuaidi100 real-time query: upper(MD5(param + key + customer))."""
    return _md5_upper(param + key + customer)


def kuaidi100_push_sign(param: str, salt: str) -> str:
    """Kuaidi100 push: upper(MD5(param + salt)), the salt given at subscription."""
    return _md5_upper(param + salt)


def top_sign(params: Mapping[str, str], secret: str) -> str:
    """Taobao open platform (Cainiao): upper(MD5(secret + k1v1k2v2… + secret)) over every parameter but
    `sign`, sorted by name, empty values left out."""
    joined = "".join(
        f"{name}{params[name]}" for name in sorted(params) if name != "sign" and params[name] != ""
    )
    return _md5_upper(f"{secret}{joined}{secret}")
