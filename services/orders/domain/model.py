"""The canonical order and the rules for accepting one from a channel."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from services.kit.errors import InvalidArgument

MAX_LINES = 500
MAX_QUANTITY = 100_000
MAX_UNIT_PRICE_MINOR = 10**12
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_REFERENCE = re.compile(r"^[\w.\-:/#]{1,64}$")


class Channel(StrEnum):
    TAOBAO = "TAOBAO"
    JD = "JD"
    PINDUODUO = "PINDUODUO"
    DOUYIN = "DOUYIN"
    KUAISHOU = "KUAISHOU"
    SHOPEE = "SHOPEE"
    OWN_SHOP = "OWN_SHOP"
    POS = "POS"


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    ALLOCATED = "ALLOCATED"
    PICKING = "PICKING"
    PACKED = "PACKED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    ON_HOLD = "ON_HOLD"
    EXCEPTION = "EXCEPTION"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


@dataclass(frozen=True)
class Address:
    recipient_name: str
    phone: str
    country_code: str
    province: str
    city: str
    district: str
    detail: str
    postal_code: str = ""


@dataclass(frozen=True)
class OrderLine:
    sku: str
    title: str
    quantity: int
    unit_price_minor: int

    @property
    def amount_minor(self) -> int:
        return self.quantity * self.unit_price_minor


@dataclass(frozen=True)
class IngestOrder:
    """A channel order as its adapter normalised it; amounts in minor units of `currency`."""

    channel: Channel | None
    channel_order_id: str
    buyer_id: str
    currency: str
    lines: tuple[OrderLine, ...]
    shipping_address: Address | None
    shipping_fee_minor: int
    placed_at: datetime | None


@dataclass
class Order:
    order_id: str
    channel: Channel
    channel_order_id: str
    buyer_id: str
    currency: str
    lines: tuple[OrderLine, ...]
    shipping_address: Address
    shipping_fee_minor: int
    placed_at: datetime
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    events: list[object] = field(default_factory=list, compare=False, repr=False)

    @property
    def total_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines) + self.shipping_fee_minor


@dataclass(frozen=True)
class OrderCreated:
    order_id: str
    channel: Channel
    channel_order_id: str
    status: OrderStatus
    buyer_id: str
    currency: str
    total_minor: int
    line_count: int


def is_currency_code(code: str) -> bool:
    return bool(_CURRENCY.match(code))


def accept(command: IngestOrder, order_id: str, now: datetime) -> Order:
    """Validate a channel order and make it a new canonical order awaiting payment."""
    channel = _validate(command)
    assert command.shipping_address is not None
    order = Order(
        order_id=order_id,
        channel=channel,
        channel_order_id=command.channel_order_id,
        buyer_id=command.buyer_id,
        currency=command.currency,
        lines=command.lines,
        shipping_address=command.shipping_address,
        shipping_fee_minor=command.shipping_fee_minor,
        placed_at=command.placed_at or now,
        status=OrderStatus.PENDING_PAYMENT,
        created_at=now,
        updated_at=now,
    )
    order.events.append(
        OrderCreated(
            order_id=order.order_id,
            channel=order.channel,
            channel_order_id=order.channel_order_id,
            status=order.status,
            buyer_id=order.buyer_id,
            currency=order.currency,
            total_minor=order.total_minor,
            line_count=len(order.lines),
        )
    )
    return order


def _validate(command: IngestOrder) -> Channel:
    if command.channel is None:
        raise InvalidArgument("channel", "is required")
    if not _REFERENCE.match(command.channel_order_id):
        raise InvalidArgument("channel_order_id", "must be 1-64 letters, digits or . - _ : / #")
    if len(command.buyer_id) > 128:
        raise InvalidArgument("buyer_id", "must be at most 128 characters")
    if not is_currency_code(command.currency):
        raise InvalidArgument("currency_code", "must be an ISO 4217 code such as CNY")
    if not command.lines:
        raise InvalidArgument("lines", "an order needs at least one line")
    if len(command.lines) > MAX_LINES:
        raise InvalidArgument("lines", f"at most {MAX_LINES} lines per order")
    for index, line in enumerate(command.lines):
        _validate_line(index, line)
    if not 0 <= command.shipping_fee_minor <= MAX_UNIT_PRICE_MINOR:
        raise InvalidArgument("shipping_fee.amount_minor", "must be between 0 and 10^12")
    _validate_address(command.shipping_address)
    return command.channel


def _validate_line(index: int, line: OrderLine) -> None:
    where = f"lines[{index}]"
    if not _REFERENCE.match(line.sku):
        raise InvalidArgument(f"{where}.sku", "must be 1-64 letters, digits or . - _ : / #")
    if len(line.title) > 500:
        raise InvalidArgument(f"{where}.title", "must be at most 500 characters")
    if not 1 <= line.quantity <= MAX_QUANTITY:
        raise InvalidArgument(f"{where}.quantity", f"must be between 1 and {MAX_QUANTITY}")
    if not 0 <= line.unit_price_minor <= MAX_UNIT_PRICE_MINOR:
        raise InvalidArgument(f"{where}.unit_price.amount_minor", "must be between 0 and 10^12")


def _validate_address(address: Address | None) -> None:
    if address is None:
        raise InvalidArgument("shipping_address", "is required")
    for name in ("recipient_name", "phone", "province", "city", "detail"):
        value = getattr(address, name)
        if not value.strip():
            raise InvalidArgument(f"shipping_address.{name}", "is required")
        if len(value) > 2000:
            raise InvalidArgument(f"shipping_address.{name}", "is too long")
    if not re.match(r"^[A-Z]{2}$", address.country_code):
        raise InvalidArgument(
            "shipping_address.country_code", "must be an ISO 3166-1 alpha-2 code such as CN"
        )
