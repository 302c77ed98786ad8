"""Taobao / Tmall: the `trade` object of taobao.trade.fullinfo.get (or its TMC push)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.orders.domain.channels.base import (
    CHINA,
    MAX_BUYER_ID,
    MAX_TITLE,
    Meaning,
    Node,
    first_reference,
    lenient_ref,
    line,
    local_time,
    settle,
)
from services.orders.domain.model import (
    Address,
    Channel,
    Discount,
    DiscountKind,
    IngestOrder,
    OrderLine,
)

CHANNEL = Channel.TAOBAO
CURRENCY = "CNY"

STATUSES = {
    "TRADE_NO_CREATE_PAY": Meaning.UNPAID,
    "WAIT_BUYER_PAY": Meaning.UNPAID,
    # a foreign-card payment still being cleared, or a pre-authorisation not yet confirmed
    "PAY_PENDING": Meaning.UNPAID,
    "WAIT_PRE_AUTH_CONFIRM": Meaning.UNPAID,
    "WAIT_SELLER_SEND_GOODS": Meaning.PAID,
    "SELLER_CONSIGNED_PART": Meaning.PAID,
    "WAIT_BUYER_CONFIRM_GOODS": Meaning.PAID,
    "TRADE_BUYER_SIGNED": Meaning.PAID,
    "TRADE_FINISHED": Meaning.PAID,
    # closed after payment because every item was refunded
    "TRADE_CLOSED": Meaning.CANCELLED,
    # closed before payment: by the buyer, the seller or the payment timeout
    "TRADE_CLOSED_BY_TAOBAO": Meaning.CANCELLED,
}

_TIME = local_time(CHINA)


def order_ref(payload: object) -> str:
    return lenient_ref(payload, "tid")


def parse(payload: Mapping[str, Any]) -> IngestOrder:
    trade = Node.root(payload)
    tid = trade.reference("tid")
    code, meaning = trade.status("status", STATUSES)
    paid_at, cancelled = settle(meaning, trade.time_or_none("pay_time", _TIME), trade.where("pay_time"))
    return IngestOrder(
        channel=CHANNEL,
        channel_order_id=tid,
        # buyer_nick is masked for most apps since 2021; the open uid is the stable id
        buyer_id=trade.text("buyer_open_uid", default="", max_length=MAX_BUYER_ID)
        or trade.text("buyer_nick", default="", max_length=MAX_BUYER_ID),
        currency=CURRENCY,
        lines=tuple(_line(item) for item in trade.node("orders").nodes("order")),
        shipping_address=_address(trade),
        shipping_fee_minor=trade.money("post_fee", CURRENCY, default=0),
        placed_at=trade.time("created", _TIME),
        discounts=_discounts(trade, tid),
        channel_status=code,
        paid_at=paid_at,
        cancelled=cancelled,
        channel_modified_at=trade.time("modified", _TIME),
        buyer_note=trade.text("buyer_message", default=""),
    )


def _line(item: Node) -> OrderLine:
    quantity = item.quantity("num")
    return line(
        first_reference(item, "outer_sku_id", "outer_iid", "sku_id", "num_iid"),
        item.text("title", max_length=MAX_TITLE),
        quantity,
        item.money("price", CURRENCY),
        item.money("discount_fee", CURRENCY, default=0),
        item.where("discount_fee"),
    )


def _discounts(trade: Node, tid: str) -> tuple[Discount, ...]:
    discounts = []
    details = trade.node_or_none("promotion_details")
    for detail in details.nodes("promotion_detail", required=False) if details else []:
        # Details whose id is a sub-order's oid are already in that item's discount_fee;
        # only those on the trade itself (id == tid) are order-level.
        if detail.text("id", default="") != tid:
            continue
        amount = detail.money("discount_fee", CURRENCY)
        if amount:
            reference = detail.text("promotion_id", default="") or detail.text("promotion_name", default="")
            discounts.append(Discount(DiscountKind.PROMOTION, amount, reference[:128]))
    # coupon_fee is in fen, point_fee in Tmall points (100 points = 1 yuan, so 1 point = 1 fen)
    coupon = trade.minor("coupon_fee", default=0)
    if coupon:
        discounts.append(Discount(DiscountKind.COUPON, coupon, "coupon_fee"))
    points = trade.minor("point_fee", default=0)
    if points:
        discounts.append(Discount(DiscountKind.POINTS, points, "point_fee"))
    return tuple(discounts)


def _address(trade: Node) -> Address:
    return Address(
        recipient_name=trade.filled("receiver_name"),
        phone=trade.text("receiver_mobile", default="") or trade.filled("receiver_phone"),
        country_code="CN",
        province=trade.filled("receiver_state"),
        city=trade.filled("receiver_city"),
        district=trade.text("receiver_district", default=""),
        detail=trade.filled("receiver_address"),
        postal_code=trade.text("receiver_zip", default=""),
    )
