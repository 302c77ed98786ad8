"""Douyin shop (抖店): a shop order as order.orderDetail returns it; money in fen, times in unix seconds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.orders.domain.channels.base import (
    MAX_BUYER_ID,
    MAX_TITLE,
    MalformedPayload,
    Meaning,
    Node,
    first_reference,
    lenient_ref,
    line,
    settle,
    unix_time,
)
from services.orders.domain.model import Address, Channel, Discount, DiscountKind, IngestOrder, OrderLine

CHANNEL = Channel.DOUYIN
CURRENCY = "CNY"

STATUSES = {
    "1": Meaning.UNPAID,  # awaiting confirmation / payment
    "105": Meaning.PAID,  # paid, not yet released to the shop for stocking
    "2": Meaning.PAID,  # preparing (备货中)
    "101": Meaning.PAID,  # partly shipped
    "3": Meaning.PAID,  # shipped
    "4": Meaning.CANCELLED,
    "5": Meaning.PAID,  # completed
}

# Order-level promotions by who funds them; the sku rows' pay_amount already has them
# apportioned by Douyin, which is why lines are read at their origin price.
_DISCOUNTS = (
    ("promotion_shop_amount", DiscountKind.PROMOTION),
    ("promotion_talent_amount", DiscountKind.PROMOTION),
    ("promotion_pay_amount", DiscountKind.PROMOTION),
    ("promotion_platform_amount", DiscountKind.COUPON),
)


def order_ref(payload: object) -> str:
    return lenient_ref(payload, "order_id")


def parse(payload: Mapping[str, Any]) -> IngestOrder:
    order = Node.root(payload)
    code, meaning = order.status("order_status", STATUSES)
    paid_at, cancelled = settle(meaning, order.time_or_none("pay_time", unix_time), order.where("pay_time"))
    return IngestOrder(
        channel=CHANNEL,
        channel_order_id=order.reference("order_id"),
        buyer_id=order.text("doudian_open_id", default="", max_length=MAX_BUYER_ID),
        currency=CURRENCY,
        lines=tuple(_line(item) for item in order.nodes("sku_order_list")),
        shipping_address=_address(order),
        shipping_fee_minor=order.minor("post_amount", default=0),
        placed_at=order.time("create_time", unix_time),
        discounts=tuple(
            Discount(kind, amount, key) for key, kind in _DISCOUNTS if (amount := order.minor(key, default=0))
        ),
        channel_status=code,
        paid_at=paid_at,
        cancelled=cancelled,
        channel_modified_at=order.time("update_time", unix_time),
        buyer_note=order.text("buyer_words", default=""),
    )


def _line(item: Node) -> OrderLine:
    quantity = item.quantity("item_num")
    origin = item.minor("origin_amount")
    if origin % quantity:
        raise MalformedPayload(
            item.where("origin_amount"), f"is not a whole number of fen per item ({quantity})"
        )
    return line(
        first_reference(item, "out_sku_id", "code", "sku_id"),
        item.text("product_name", max_length=MAX_TITLE),
        quantity,
        origin // quantity,
        0,
        item.path,
    )


def _address(order: Node) -> Address:
    post_addr = order.node("post_addr")
    return Address(
        recipient_name=order.filled("post_receiver"),
        phone=order.filled("post_tel"),
        country_code="CN",
        province=post_addr.node("province").filled("name"),
        city=post_addr.node("city").filled("name"),
        district=post_addr.node("town").text("name", default="") if post_addr.get("town") else "",
        detail=post_addr.filled("detail"),
    )
