"""The merchant's own mini-program, app and web shop: our own JSON, amounts already in minor units."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.orders.domain.channels.base import (
    MAX_BUYER_ID,
    MAX_TITLE,
    MalformedPayload,
    Meaning,
    Node,
    iso_time,
    lenient_ref,
    line,
    settle,
)
from services.orders.domain.model import (
    Address,
    Channel,
    Discount,
    DiscountKind,
    IngestOrder,
    OrderLine,
    Priority,
)

CHANNEL = Channel.OWN_SHOP

STATUSES = {"created": Meaning.UNPAID, "paid": Meaning.PAID, "cancelled": Meaning.CANCELLED}
DISCOUNT_KINDS = {
    "promotion": DiscountKind.PROMOTION,
    "coupon": DiscountKind.COUPON,
    "points": DiscountKind.POINTS,
}


def order_ref(payload: object) -> str:
    return lenient_ref(payload, "order_no")


def parse(payload: Mapping[str, Any]) -> IngestOrder:
    order = Node.root(payload)
    code, meaning = order.status("status", STATUSES)
    paid_at, cancelled = settle(meaning, order.time_or_none("paid_at", iso_time), order.where("paid_at"))
    buyer = order.node_or_none("buyer")
    return IngestOrder(
        channel=CHANNEL,
        channel_order_id=order.reference("order_no"),
        buyer_id=buyer.text("id", default="", max_length=MAX_BUYER_ID) if buyer else "",
        currency=order.text("currency", max_length=3),
        lines=tuple(_line(item) for item in order.nodes("items")),
        shipping_address=_address(order.node("shipping_address")),
        shipping_fee_minor=order.minor("shipping_cents", default=0),
        placed_at=order.time("created_at", iso_time),
        discounts=tuple(_discount(discount) for discount in order.nodes("discounts", required=False)),
        channel_status=code,
        paid_at=paid_at,
        cancelled=cancelled,
        channel_modified_at=order.time("updated_at", iso_time),
        buyer_note=order.text("note", default=""),
        priority=_priority(order, buyer),
    )


def _priority(order: Node, buyer: Node | None) -> Priority:
    """`expedited: true` (the buyer paid for express delivery) wins; a buyer with a member level is a
    member's order; anything else is standard."""
    if order.flag("expedited"):
        return Priority.EXPEDITED
    if buyer is not None and buyer.text("member_level", default="", max_length=32):
        return Priority.MEMBER
    return Priority.STANDARD


def _line(item: Node) -> OrderLine:
    return line(
        item.reference("sku"),
        item.text("title", max_length=MAX_TITLE),
        item.quantity("quantity"),
        item.minor("unit_price_cents"),
        item.minor("discount_cents", default=0),
        item.path,
    )


def _discount(discount: Node) -> Discount:
    kind = discount.text("kind", max_length=32)
    if kind not in DISCOUNT_KINDS:
        raise MalformedPayload(discount.where("kind"), f"must be one of {', '.join(DISCOUNT_KINDS)}")
    return Discount(
        DISCOUNT_KINDS[kind], discount.minor("amount_cents"), discount.text("code", default="")[:128]
    )


def _address(address: Node) -> Address:
    return Address(
        recipient_name=address.filled("name"),
        phone=address.filled("phone"),
        country_code=address.text("country", default="CN", max_length=2),
        province=address.filled("province"),
        city=address.filled("city"),
        district=address.text("district", default=""),
        detail=address.filled("line"),
        postal_code=address.text("postal_code", default=""),
    )
