"""Keyset paging: every list pages newest first with an opaque token, never by offset, so a page costs
the same deep in a large table and rows inserted meanwhile neither repeat nor vanish."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Final

from services.kit.errors import InvalidArgument

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 500
# A token names the list it came from, so one list's token handed to another is refused, not misread.
ORDERS, QUARANTINE, PAYMENTS, DEAD_LETTERS, SLA_TIMERS, RISK_REVIEWS = "o", "q", "p", "d", "s", "r"


def page_size(size: int) -> int:
    if size == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidArgument(
            "page.page_size", f"must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})"
        )
    return size


def encode_token(kind: str, at: datetime, key: str) -> str:
    raw = json.dumps([kind, at.isoformat(), key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, kind: str) -> tuple[datetime, str] | None:
    """The (time, id) the previous page ended at; None for the first page."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        token_kind, at, key = json.loads(raw)
        if token_kind == kind and isinstance(at, str) and isinstance(key, str) and key:
            after = datetime.fromisoformat(at)
            if after.tzinfo is not None:
                return after, key
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        pass
    raise InvalidArgument("page.page_token", "is not a token this list returned; start again without one")
