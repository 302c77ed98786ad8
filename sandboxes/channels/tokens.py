"""OAuth tokens that the sandbox can check without remembering them: each names when it was issued and
when it lapses, under a MAC keyed by the app's secret. A restarted sandbox still accepts the tokens it
issued before; `revoke` refuses every token issued until now (a merchant's authorisation withdrawn)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Token:
    kind: str  # "access" or "refresh"
    issued_at: int
    expires_at: int


def _mac(secret: str, kind: str, app_key: str, issued: int, expires: int, nonce: str) -> str:
    text = f"{kind}|{app_key}|{issued}|{expires}|{nonce}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]


def issue(secret: str, kind: str, app_key: str, now: int, lifetime: int) -> str:
    nonce = secrets.token_hex(6)
    expires = now + lifetime
    return f"{issued_prefix(kind)}{now}.{expires}.{nonce}.{_mac(secret, kind, app_key, now, expires, nonce)}"


def issued_prefix(kind: str) -> str:
    return "6201" if kind == "access" else "6202"


def read(secret: str, kind: str, app_key: str, text: str) -> Token | None:
    """The token if the sandbox issued it for this app and kind (expired or not), else None."""
    prefix = issued_prefix(kind)
    if not text.startswith(prefix):
        return None
    parts = text[len(prefix) :].split(".")
    if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    issued, expires, nonce, mac = int(parts[0]), int(parts[1]), parts[2], parts[3]
    if not hmac.compare_digest(mac, _mac(secret, kind, app_key, issued, expires, nonce)):
        return None
    return Token(kind, issued, expires)
