"""What every channel adapter shares: reading a channel's JSON strictly, naming the path that is wrong.

Adapters never guess: a value that is missing, of the wrong type, or not exactly representable in
minor units raises `MalformedPayload` naming where it sits in the channel's own payload
(`orders.order[2].price`), so a quarantined push tells operations what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation, localcontext
from enum import Enum
from typing import Any

from services.kit.errors import InvalidArgument
from services.orders.domain.model import MAX_ADDRESS_FIELD, OrderLine

# Mainland China, Taiwan, Singapore, Malaysia, the Philippines: no daylight saving, so a fixed
# offset is exact and needs no tzdata on the host.
CHINA = timezone(timedelta(hours=8), "UTC+08:00")

# ISO 4217 minor-unit exponents other than 2. IDR is listed as 0 although ISO says 2: the
# marketplaces price rupiah in whole units and never send sen.
_EXPONENTS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "IDR", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV"), 0
    ),
    **dict.fromkeys(("XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_REFERENCE = re.compile(r"^[\w.\-:/#]{1,64}$")
_DECIMAL = re.compile(r"^\d+(\.\d+)?$")
_DIGITS = re.compile(r"^\d+$")
_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}$")
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
# Far beyond any order (the model caps a price at 10^12) but small enough that no absurd number
# such as 1e300 turns into a huge integer before the model's checks run.
_MAX_MINOR = 10**15
# 2001-09-09 .. 2286-11-20: rules out milliseconds sent where seconds are expected.
_UNIX_RANGE = (1_000_000_000, 9_999_999_999)
MAX_TITLE = 500
MAX_BUYER_ID = 128
MAX_TEXT = MAX_ADDRESS_FIELD


class MalformedPayload(InvalidArgument):
    """The channel's payload cannot be read; `field` is the path inside the channel's own JSON."""


class Meaning(Enum):
    """What a channel status code says about payment, which is all ingestion needs from it."""

    UNPAID = "unpaid"
    PAID = "paid"
    CANCELLED = "cancelled"


TimeParser = Callable[[object, str], datetime]


def currency_exponent(currency: str, where: str = "currency") -> int:
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise MalformedPayload(where, "must be an ISO 4217 code such as CNY")
    return _EXPONENTS.get(currency, 2)


def to_minor(value: object, currency: str, where: str) -> int:
    """An amount in the currency's major unit ("199.00", 19.9, 15000) as an integer of minor units.

    Floats are read through their shortest repr, so 19.9 is 1990 fen and not 1989.99…; a value
    that is not a whole number of minor units ("12.345" yuan) is refused rather than rounded.
    """
    exponent = currency_exponent(currency)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedPayload(where, "must be a decimal amount")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 32 or not _DECIMAL.match(text):
            raise MalformedPayload(where, f"must be a non-negative decimal amount, got {value[:32]!r}")
        amount = Decimal(text)
    else:
        try:
            amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            raise MalformedPayload(where, "must be a finite amount") from None
        if not amount.is_finite():
            raise MalformedPayload(where, "must be a finite amount")
    if amount < 0:
        raise MalformedPayload(where, "must not be negative")
    if amount > _MAX_MINOR:
        raise MalformedPayload(where, "is out of range")
    with localcontext() as context:
        # enough digits that scaling never rounds away a stray fraction of a minor unit
        context.prec = 64
        minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise MalformedPayload(where, f"has more than {exponent} decimals for {currency}")
    return _bounded(int(minor), where)


def to_int(value: object, where: str) -> int:
    """An integer sent as a JSON number or, as several channel SDKs do, a string of digits."""
    if isinstance(value, bool):
        raise MalformedPayload(where, "must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and len(value) <= 20 and _DIGITS.match(value.strip()):
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise MalformedPayload(where, "must be an integer")


def to_minor_int(value: object, where: str) -> int:
    """An amount already in minor units (fen, cents) as the channel sent it."""
    amount = to_int(value, where)
    if amount < 0:
        raise MalformedPayload(where, "must not be negative")
    return _bounded(amount, where)


def _bounded(minor: int, where: str) -> int:
    if minor > _MAX_MINOR:
        raise MalformedPayload(where, "is out of range")
    return minor


def to_text(value: object, where: str, max_length: int = MAX_TEXT) -> str:
    """Text; identifiers and phone numbers that a channel sends as JSON numbers become strings."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedPayload(where, "must be a string")
    text = value.strip() if isinstance(value, str) else str(value)
    if len(text) > max_length:
        raise MalformedPayload(where, f"must be at most {max_length} characters")
    return text


def to_reference(value: object, where: str) -> str:
    text = to_text(value, where)
    if not _REFERENCE.match(text):
        raise MalformedPayload(where, "must be 1-64 letters, digits or . - _ : / #")
    return text


def parse_offset(value: object, where: str) -> timezone:
    """A fixed UTC offset such as "+08:00" or "+0700"."""
    match = _OFFSET.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise MalformedPayload(where, "must be a UTC offset such as +08:00")
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta > timedelta(hours=14) or int(minutes) >= 60:
        raise MalformedPayload(where, "must be a UTC offset between -14:00 and +14:00")
    return timezone(-delta if sign == "-" else delta)


def local_time(offset: timezone) -> TimeParser:
    """Parser for "YYYY-MM-DD HH:MM:SS" wall-clock times of a channel that sends no offset."""

    def parse(value: object, where: str) -> datetime:
        if not isinstance(value, str) or not _NAIVE.match(value.strip()):
            raise MalformedPayload(where, "must be a time like 2024-11-11 00:00:00")
        try:
            naive = datetime.fromisoformat(value.strip())
        except ValueError:
            raise MalformedPayload(where, "is not a valid date and time") from None
        return naive.replace(tzinfo=offset).astimezone(UTC)

    return parse


def unix_time(value: object, where: str) -> datetime:
    seconds = to_int(value, where)
    if not _UNIX_RANGE[0] <= seconds <= _UNIX_RANGE[1]:
        raise MalformedPayload(where, "must be unix seconds")
    return datetime.fromtimestamp(seconds, UTC)


def iso_time(value: object, where: str) -> datetime:
    """ISO 8601 with an explicit offset; a time without one is ambiguous and refused."""
    if not isinstance(value, str) or len(value) > 40:
        raise MalformedPayload(where, "must be an ISO 8601 time with an offset")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MalformedPayload(where, "must be an ISO 8601 time with an offset") from None
    if parsed.tzinfo is None:
        raise MalformedPayload(where, "must carry a UTC offset such as +08:00")
    return parsed.astimezone(UTC)


def _is_blank(value: object) -> bool:
    # Channels say "not yet" for a time or an amount with null, "" or 0 (Douyin's pay_time).
    return value is None or value == "" or (value == 0 and not isinstance(value, bool))


class Node:
    """One JSON object of a payload, with the path that leads to it for error messages."""

    __slots__ = ("data", "path")

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        self.data = data
        self.path = path

    @classmethod
    def root(cls, payload: object) -> Node:
        if not isinstance(payload, Mapping):
            raise MalformedPayload("payload", "must be a JSON object")
        return cls(payload)

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def has(self, key: str) -> bool:
        return not _is_blank(self.data.get(key))

    def _required(self, key: str) -> Any:
        value = self.data.get(key)
        if value is None:
            raise MalformedPayload(self.where(key), "is required")
        return value

    def text(self, key: str, default: str | None = None, max_length: int = MAX_TEXT) -> str:
        if default is not None and self.data.get(key) is None:
            return default
        return to_text(self._required(key), self.where(key), max_length)

    def filled(self, key: str, max_length: int = MAX_TEXT) -> str:
        """Text that must not be empty, such as a recipient's name or a city."""
        text = self.text(key, max_length=max_length)
        if not text:
            raise MalformedPayload(self.where(key), "must not be empty")
        return text

    def reference(self, key: str) -> str:
        return to_reference(self._required(key), self.where(key))

    def integer(self, key: str, default: int | None = None) -> int:
        if default is not None and self.data.get(key) is None:
            return default
        return to_int(self._required(key), self.where(key))

    def quantity(self, key: str) -> int:
        quantity = self.integer(key)
        if quantity < 1:
            raise MalformedPayload(self.where(key), "must be a positive integer")
        return quantity

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise MalformedPayload(self.where(key), "must be true or false")
        return value

    def money(self, key: str, currency: str, default: int | None = None) -> int:
        """Major-unit amount; `default` stands in when the channel leaves the field out or empty."""
        if default is not None and self.data.get(key) in (None, ""):
            return default
        return to_minor(self._required(key), currency, self.where(key))

    def minor(self, key: str, default: int | None = None) -> int:
        if default is not None and self.data.get(key) in (None, ""):
            return default
        return to_minor_int(self._required(key), self.where(key))

    def time(self, key: str, parser: TimeParser) -> datetime:
        if _is_blank(self.data.get(key)):
            raise MalformedPayload(self.where(key), "is required")
        return parser(self.data[key], self.where(key))

    def time_or_none(self, key: str, parser: TimeParser) -> datetime | None:
        return self.time(key, parser) if self.has(key) else None

    def node(self, key: str) -> Node:
        value = self._required(key)
        if not isinstance(value, Mapping):
            raise MalformedPayload(self.where(key), "must be an object")
        return Node(value, self.where(key))

    def node_or_none(self, key: str) -> Node | None:
        return self.node(key) if self.data.get(key) is not None else None

    def nodes(self, key: str, required: bool = True) -> list[Node]:
        """The objects of a list; a missing optional list is empty, a required one needs an item."""
        value = self.data.get(key)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            raise MalformedPayload(self.where(key), "must be a list" if value is not None else "is required")
        if required and not value:
            raise MalformedPayload(self.where(key), "must not be empty")
        items = []
        for index, item in enumerate(value):
            where = f"{self.where(key)}[{index}]"
            if not isinstance(item, Mapping):
                raise MalformedPayload(where, "must be an object")
            items.append(Node(item, where))
        return items

    def status(
        self, key: str, meanings: Mapping[str, Meaning], default: str | None = None
    ) -> tuple[str, Meaning]:
        """The raw status code, kept as received, and what it means; an unknown code is refused."""
        code = self.text(key, default=default, max_length=64)
        if code not in meanings:
            raise MalformedPayload(self.where(key), f"unknown status {code!r}")
        return code, meanings[code]


def settle(
    meaning: Meaning, paid_at: datetime | None, where: str, cash_on_delivery: bool = False
) -> tuple[datetime | None, bool]:
    """`(paid_at, cancelled)` for the command from a status meaning and the channel's pay time.

    A status that means paid without a pay time is contradictory and refused, except for cash on
    delivery, where the marketplace confirms the order before anyone has paid.
    """
    if meaning is Meaning.CANCELLED:
        return None, True
    if meaning is Meaning.UNPAID:
        return None, False
    if paid_at is None and not cash_on_delivery:
        raise MalformedPayload(where, "is required when the status means paid")
    return paid_at, False


def line(
    sku: str, title: str, quantity: int, unit_price_minor: int, discount_minor: int, where: str
) -> OrderLine:
    if discount_minor > quantity * unit_price_minor:
        raise MalformedPayload(where, "item discount exceeds the item's price")
    return OrderLine(sku, title, quantity, unit_price_minor, discount_minor)


def first_reference(node: Node, *keys: str) -> str:
    """The first non-empty of several SKU fields, as channels fill different ones per merchant."""
    for key in keys:
        if node.has(key):
            return node.reference(key)
    others = f" (or {', '.join(keys[1:])})" if len(keys) > 1 else ""
    raise MalformedPayload(node.where(keys[0]), f"is required{others}")


def lenient_ref(payload: object, *keys: str) -> str:
    """Best effort at a value nested under `keys`, for quarantine records; never raises."""
    value: object = payload
    for key in keys:
        if not isinstance(value, Mapping):
            return ""
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return str(value).strip()[:64]
