"""Pinduoduo: the `order_info` of pdd.order.information.get.

Pinduoduo shows a shop an order only after the buyer paid. Its meaning comes from three codes:
order_status (1 awaiting shipment, 2 shipped, 3 signed for), refund_status (1 none, 2 after-sales
open, 3 refunding, 4 refunded) and confirm_status (0 group deal not yet formed, 1 formed,
2 cancelled). A paid order whose group deal has not formed must not ship, so it is ingested as
unpaid and becomes paid with the later version that confirms it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.orders.domain.channels.base import (
    CHINA,
    MAX_TITLE,
    Meaning,
    Node,
    first_reference,
    lenient_ref,
    line,
    local_time,
    settle,
)
from services.orders.domain.model import Address, Channel, Discount, DiscountKind, IngestOrder, OrderLine

CHANNEL = Channel.PINDUODUO
CURRENCY = "CNY"

ORDER_STATUSES = {"1": Meaning.PAID, "2": Meaning.PAID, "3": Meaning.PAID}
# Only a refund completed before shipment cancels; after shipment it is an after-sales matter.
REFUND_STATUSES = {"1": Meaning.PAID, "2": Meaning.PAID, "3": Meaning.PAID, "4": Meaning.CANCELLED}
CONFIRM_STATUSES = {"0": Meaning.UNPAID, "1": Meaning.PAID, "2": Meaning.CANCELLED}
_AWAITING_SHIPMENT = "1"

# Order-level discounts; discount_amount is their sum and is not read.
_DISCOUNTS = (
    ("seller_discount", DiscountKind.PROMOTION),
    ("capital_free_discount", DiscountKind.PROMOTION),
    ("platform_discount", DiscountKind.COUPON),
)

_TIME = local_time(CHINA)


def order_ref(payload: object) -> str:
    return lenient_ref(payload, "order_sn")


def parse(payload: Mapping[str, Any]) -> IngestOrder:
    order = Node.root(payload)
    order_status, _ = order.status("order_status", ORDER_STATUSES)
    refund_status, refund = order.status("refund_status", REFUND_STATUSES, default="1")
    confirm_status, confirm = order.status("confirm_status", CONFIRM_STATUSES, default="1")
    if confirm is Meaning.CANCELLED or (refund is Meaning.CANCELLED and order_status == _AWAITING_SHIPMENT):
        meaning = Meaning.CANCELLED
    else:
        meaning = confirm
    paid_at, cancelled = settle(meaning, order.time_or_none("pay_time", _TIME), order.where("pay_time"))
    return IngestOrder(
        channel=CHANNEL,
        channel_order_id=order.reference("order_sn"),
        # Pinduoduo does not disclose the buyer's account to shops.
        buyer_id="",
        currency=CURRENCY,
        lines=tuple(_line(item) for item in order.nodes("item_list")),
        shipping_address=_address(order),
        shipping_fee_minor=order.money("postage", CURRENCY, default=0),
        placed_at=order.time("created_time", _TIME),
        discounts=tuple(
            Discount(kind, amount, key)
            for key, kind in _DISCOUNTS
            if (amount := order.money(key, CURRENCY, default=0))
        ),
        channel_status=f"order_status={order_status},refund_status={refund_status},confirm_status={confirm_status}",
        paid_at=paid_at,
        cancelled=cancelled,
        channel_modified_at=order.time("updated_at", _TIME),
        buyer_note=order.text("buyer_memo", default=""),
    )


def _line(item: Node) -> OrderLine:
    return line(
        first_reference(item, "outer_sku_id", "outer_goods_id", "sku_id"),
        item.text("goods_name", max_length=MAX_TITLE),
        item.quantity("goods_count"),
        item.money("goods_price", CURRENCY),
        0,
        item.path,
    )


def _address(order: Node) -> Address:
    return Address(
        recipient_name=order.filled("receiver_name"),
        phone=order.filled("receiver_phone"),
        country_code="CN",
        province=order.filled("province"),
        city=order.filled("city"),
        district=order.text("town", default=""),
        detail=order.filled("address"),
    )
