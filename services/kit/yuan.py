"""Alipay's amounts are yuan strings with two decimals; here they become fen exactly (Decimal, never a
float). Pure."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def fen_to_yuan(fen: int) -> str:
    """1234 → ``12.34``; 5 → ``0.05``."""
    if isinstance(fen, bool) or not isinstance(fen, int) or fen < 0:
        raise ValueError(f"an amount in fen is a whole number >= 0, not {fen!r}")
    return f"{fen // 100}.{fen % 100:02d}"


def yuan_to_fen(text: str) -> int:
    """``12.34`` → 1234, ``12.3`` → 1230, ``12`` → 1200; ValueError for more than two decimals, a sign,
    an exponent or anything that is not a plain decimal number."""
    cleaned = text.strip()
    if not cleaned or not all(ch.isdigit() or ch == "." for ch in cleaned) or cleaned.count(".") > 1:
        raise ValueError(f"not an amount in yuan: {text!r}")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"not an amount in yuan: {text!r}") from None
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"more than two decimals: {text!r}")
    return int(cents)
